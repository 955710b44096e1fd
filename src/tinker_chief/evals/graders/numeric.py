"""Numeric grader: the last number in a response (or its `\\boxed{}` answer) within a tolerance.

Math answers are usually worked solutions ending in the result, so the last number is the
answer unless the model boxed one. Thousands separators, `$`, `%` and trailing units are
ignored; fractions `a/b` are evaluated.
"""

from __future__ import annotations

import math
import re

from tinker_chief.evals.graders.base import RuleGrader, Verdict, grader

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|-?\.\d+")

_FRAC = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")


def _boxed(text: str) -> str | None:
    """Contents of the last `\\boxed{...}`, honouring nested braces."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def parse_number(token: str) -> float | None:
    token = token.replace(",", "").replace(" ", "")
    try:
        if "/" in token:
            num, den = token.split("/", 1)
            return float(num) / float(den)
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(text: str) -> float | None:
    """The boxed answer if any, else the last number in `text`."""
    boxed = _boxed(text)
    source = _FRAC.sub(r"\1/\2", boxed if boxed is not None else text)
    found = _NUMBER.findall(source)
    if not found:
        return None
    return parse_number(found[-1])


@grader("numeric")
class NumericGrader(RuleGrader):
    """|answer - target| <= tolerance (absolute, or relative to |target| with relative=true)."""

    def __init__(self, tolerance: str = "1e-6", relative: str = "false") -> None:
        self.tolerance = float(tolerance)
        if not 0 <= self.tolerance < math.inf:  # nan fails this too
            raise ValueError("tolerance must be a finite number >= 0")
        self.relative = relative.lower() in ("1", "true", "yes")

    def check(self, response: str, target: str) -> Verdict:
        expected = extract_number(target)
        if expected is None:
            return Verdict(None, None, f"target {target!r} has no number")
        answer = extract_number(response)
        if answer is None:
            return Verdict(False, None, "no number in response")
        bound = self.tolerance * abs(expected) if self.relative else self.tolerance
        return Verdict(
            math.isclose(answer, expected, rel_tol=0.0, abs_tol=bound) or answer == expected,
            _format(answer),
        )


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
