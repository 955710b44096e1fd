"""Graders: each family on responses that should pass and fail, plus registry/spec errors."""

from __future__ import annotations

import asyncio

import pytest

from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.graders import GradeInput, grader_names, make_grader, parse_grader_spec


def grade(spec: str, response: str, target: str, judge=None):
    return asyncio.run(make_grader(spec, judge=judge).grade(GradeInput("q?", response, target)))


@pytest.mark.parametrize(
    ("spec", "response", "target", "expected"),
    [
        ("exact", " Paris\n", "Paris", True),
        ("exact", "paris", "Paris", False),
        ("normalized_exact", "Answer: The Paris!", "paris", True),
        ("normalized_exact", "Paris, France", "paris", False),
        ("contains", "I think it is Paris, France.", "paris", True),
        ("contains", "Parisian", "paris", False),
        ("regex", "the code is AB-123 ok", r"[A-Z]{2}-\d{3}", True),
        ("regex", "no code", r"[A-Z]{2}-\d{3}", False),
        ("regex:pattern=code (\\d+)", "code 42", "42", True),
        ("numeric", "3 + 4 = 7, so 7 apples", "7", True),
        ("numeric", "It costs $1,234.50 in total", "1234.5", True),
        ("numeric", "first 7 then \\boxed{12} and 99 later", "12", True),
        ("numeric", "\\boxed{\\frac{1}{2}} wait 1/2", "0.5", True),
        ("numeric", "about 3.14", "3.14159", False),
        ("numeric:tolerance=0.01", "about 3.14", "3.14159", True),
        ("numeric:tolerance=0.01,relative=true", "101", "100", True),
        ("numeric", "no digits", "4", False),
        ("multiple_choice", "ANSWER: C", "C", True),
        ("multiple_choice", "The answer is (b).", "B", True),
        ("multiple_choice", "B) because A is wrong", "A", False),
        ("multiple_choice", "**D**", "(D) blue", True),
        ("json_field", 'Here: ```json\n{"answer": "Blue", "x": 1}\n```', "blue", True),
        ("json_field:field=r.n", '{"r": {"n": 3}}', "3", True),
        ("json_field", '{"answer": 4}', "5", False),
        ("json_field", "not json", "5", False),
    ],
)
def test_rule_graders(spec, response, target, expected):
    assert grade(spec, response, target).correct is expected


def test_numeric_grader_reports_extracted_answer():
    verdict = grade("numeric", "so the result is 42.", "42")
    assert verdict.answer == "42"


def test_unusable_target_is_unscored_not_wrong():
    assert grade("numeric", "5", "five").correct is None
    assert grade("multiple_choice", "A", "not a letter at all!").correct is None


class FixedJudge:
    def __init__(self, reply: str):
        self.reply = reply
        self.prompts: list[str] = []

    async def generate_text(self, messages, max_tokens=256):
        self.prompts.append(messages[-1]["content"])
        return self.reply


def test_llm_judge_last_grade_binds_and_prompt_has_the_data():
    judge = FixedJudge("GRADE: I at first, but on reflection GRADE: C")
    verdict = grade("llm_judge", "Paris", "The capital of France", judge=judge)
    assert verdict.correct is True
    assert "[Submission]: Paris" in judge.prompts[0] and "The capital of France" in judge.prompts[0]


@pytest.mark.parametrize("reply", ["I think it's fine", "GRADE: X", ""])
def test_llm_judge_unparseable_verdict_is_unscored(reply):
    verdict = grade("llm_judge", "Paris", "Paris", judge=FixedJudge(reply))
    assert verdict.correct is None
    assert "unparseable" in verdict.explanation


def test_registry_errors_are_configuration_errors():
    assert {"exact", "numeric", "llm_judge", "json_field"} <= set(grader_names())
    with pytest.raises(ConfigurationError, match="unknown grader `nope`"):
        make_grader("nope")
    with pytest.raises(ConfigurationError, match="needs a judge"):
        make_grader("llm_judge")
    with pytest.raises(ConfigurationError, match="bad options"):
        make_grader("exact:foo=1")
    with pytest.raises(ConfigurationError, match="not key=value"):
        parse_grader_spec("numeric:tolerance")
    with pytest.raises(ConfigurationError, match="tolerance"):
        make_grader("numeric:tolerance=-1")
