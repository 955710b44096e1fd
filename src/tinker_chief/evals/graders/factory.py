"""Graders by name: `make_grader("numeric:tolerance=0.01")`, `grader_names()`, spec parsing.

Importing the built-in families below runs their `@grader` decorators, so every built-in is in
`base.GRADERS` before anything is looked up; a user's own `@grader` class registers the same way
once its module is imported. Specs like `numeric:tolerance=0.01` carry grader options.
"""

from __future__ import annotations

import re
from typing import cast

from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.graders import json_field, multiple_choice, numeric, text
from tinker_chief.evals.graders import judge as llm_judge
from tinker_chief.evals.graders.base import GRADERS, Grader, TextGenerator

# The built-in families; importing them registered their graders in `GRADERS`.
BUILTIN_FAMILIES = (json_field, llm_judge, multiple_choice, numeric, text)


def grader_names() -> list[str]:
    return sorted(GRADERS)


def parse_grader_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`"numeric:tolerance=0.01,relative=true"` -> `("numeric", {"tolerance": "0.01", ...})`."""
    name, _, rest = spec.strip().partition(":")
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"grader spec `{spec}`: option `{part}` is not key=value")
        options[key.strip()] = value.strip()
    return name.strip(), options


def grader_needs_judge(spec: str) -> bool:
    factory = GRADERS.get(parse_grader_spec(spec)[0])
    return bool(getattr(factory, "needs_judge", False))


def check_grader_spec(spec: str) -> None:
    """Raise `make_grader`'s `ConfigurationError` when no grader can be built from `spec` (an
    unknown name, an option it does not take, a value it cannot use); a model-graded grader is
    built with a stand-in judge, which is never called."""
    judge = cast(TextGenerator, object()) if grader_needs_judge(spec) else None
    make_grader(spec, judge=judge)


def make_grader(spec: str, *, judge: TextGenerator | None = None) -> Grader:
    """Build a grader from a spec string; `judge` is required by model-graded graders."""
    name, options = parse_grader_spec(spec)
    factory = GRADERS.get(name)
    if factory is None:
        raise ConfigurationError(
            f"unknown grader `{name}`; expected one of: {', '.join(sorted(GRADERS))}"
        )
    kwargs: dict[str, object] = dict(options)
    if getattr(factory, "needs_judge", False):
        if judge is None:
            raise ConfigurationError(
                f"grader `{name}` needs a judge model (--judge-model / judge_model)"
            )
        kwargs["judge"] = judge
    try:
        built = factory(**kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"grader `{spec}`: bad options ({exc})") from None
    except (ValueError, re.error) as exc:  # re.error: a `regex` grader's pattern
        raise ConfigurationError(f"grader `{spec}`: {exc}") from None
    built.name = name
    return built
