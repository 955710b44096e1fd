"""Graders: turn a model response and a target into a `Verdict`.

Built-ins: `exact`, `normalized_exact`, `contains`, `regex`, `numeric`, `multiple_choice`,
`json_field`, `llm_judge`. Build one with `make_grader("numeric:tolerance=0.01")`; register
new ones with `@grader("name")` on a `Grader` subclass.
"""

from tinker_chief.evals.graders.base import (
    GradeInput,
    Grader,
    RuleGrader,
    TextGenerator,
    Verdict,
    grader,
)
from tinker_chief.evals.graders.factory import (
    grader_names,
    grader_needs_judge,
    make_grader,
    parse_grader_spec,
)

__all__ = [
    "GradeInput",
    "Grader",
    "RuleGrader",
    "TextGenerator",
    "Verdict",
    "grader",
    "grader_names",
    "grader_needs_judge",
    "make_grader",
    "parse_grader_spec",
]
