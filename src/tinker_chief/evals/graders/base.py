"""The grader contract and registry: `@grader("name")`, `make_grader("name:opt=value")`.

A grader turns (question, response, target) into a `Verdict`. Rule graders are pure and
synchronous underneath; the LLM judge samples a model, so the common interface is async.
`Verdict.correct is None` means the grader could not decide (e.g. a judge reply without a
parseable `GRADE:`); such samples are counted and reported as `unscored`, never silently
counted as wrong or dropped. Specs like `numeric:tolerance=0.01` carry grader options.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tinker_chief.errors import ConfigurationError


@dataclass(frozen=True)
class Verdict:
    """One grading decision. `answer` is what the grader extracted from the response."""

    correct: bool | None
    answer: str | None = None
    explanation: str = ""

    @property
    def scored(self) -> bool:
        return self.correct is not None


@dataclass(frozen=True)
class GradeInput:
    question: str
    response: str
    target: str


class TextGenerator(Protocol):
    """Anything that answers chat messages with text; the judge grader's model handle."""

    async def generate_text(self, messages: list[dict[str, str]], max_tokens: int = 256) -> str: ...


class Grader(abc.ABC):
    """Base of every grader; `name` is the registry name it was built from."""

    name: str = ""

    @abc.abstractmethod
    async def grade(self, item: GradeInput) -> Verdict: ...


class RuleGrader(Grader):
    """A grader that needs no model: implement `check`."""

    @abc.abstractmethod
    def check(self, response: str, target: str) -> Verdict: ...

    async def grade(self, item: GradeInput) -> Verdict:
        return self.check(item.response, item.target)


GraderFactory = Callable[..., Grader]
_REGISTRY: dict[str, GraderFactory] = {}


def grader(name: str) -> Callable[[GraderFactory], GraderFactory]:
    """Register a grader class or factory under `name` (options arrive as keyword args)."""

    def register(factory: GraderFactory) -> GraderFactory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ConfigurationError(f"grader `{name}` is registered twice")
        _REGISTRY[name] = factory
        return factory

    return register


def grader_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


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
    _load_builtins()
    factory = _REGISTRY.get(parse_grader_spec(spec)[0])
    return bool(getattr(factory, "needs_judge", False))


def make_grader(spec: str, *, judge: TextGenerator | None = None) -> Grader:
    """Build a grader from a spec string; `judge` is required by model-graded graders."""
    _load_builtins()
    name, options = parse_grader_spec(spec)
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ConfigurationError(f"unknown grader `{name}`; expected one of: {', '.join(sorted(_REGISTRY))}")
    kwargs: dict[str, Any] = dict(options)
    if getattr(factory, "needs_judge", False):
        if judge is None:
            raise ConfigurationError(f"grader `{name}` needs a judge model (--judge-model / judge_model)")
        kwargs["judge"] = judge
    try:
        built = factory(**kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"grader `{spec}`: bad options ({exc})") from None
    except ValueError as exc:
        raise ConfigurationError(f"grader `{spec}`: {exc}") from None
    built.name = name
    return built


def _load_builtins() -> None:
    # Importing the family modules runs their @grader decorators.
    from tinker_chief.evals.graders import choice, json_field, judge, numeric, text  # noqa: F401
