"""The grader contract (`Grader`, `Verdict`) and the `@grader("name")` decorator's table.

A grader turns (question, response, target) into a `Verdict`. Rule graders are pure and
synchronous underneath; the LLM judge samples a model, so the common interface is async.
`Verdict.correct is None` means the grader could not decide (e.g. a judge reply without a
parseable `GRADE:`); such samples are counted and reported as `unscored`, never silently
counted as wrong or dropped. A leaf: the grader families import it, and `factory.py` (which
imports the families) builds graders by name.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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
# Filled by `@grader` as each family module is imported; read by `factory.py`.
GRADERS: dict[str, GraderFactory] = {}


def grader(name: str) -> Callable[[GraderFactory], GraderFactory]:
    """Register a grader class or factory under `name` (options arrive as keyword args)."""

    def register(factory: GraderFactory) -> GraderFactory:
        if name in GRADERS and GRADERS[name] is not factory:
            raise ConfigurationError(f"grader `{name}` is registered twice")
        GRADERS[name] = factory
        return factory

    return register
