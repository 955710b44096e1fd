"""JSON field grader: parse the JSON object in a response and compare one field to the target.

For structured-output tasks. The first `{...}` span that parses wins (models often wrap JSON
in prose or code fences). Dotted paths reach into nested objects: `field=result.label`.
"""

from __future__ import annotations

import json

from tinker_chief.evals.graders.base import RuleGrader, Verdict, grader
from tinker_chief.evals.graders.text import normalize_text


def find_json_object(text: str) -> dict[str, object] | None:
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char != "{":
            continue
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _lookup(obj: object, path: str) -> tuple[bool, object]:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


@grader("json_field")
class JsonFieldGrader(RuleGrader):
    """`response_json[field]` equals the target: JSON-decoded if it parses, else compared as
    normalized text."""

    def __init__(self, field: str = "answer") -> None:
        self.field = field

    def check(self, response: str, target: str) -> Verdict:
        obj = find_json_object(response)
        if obj is None:
            return Verdict(False, None, "no JSON object in response")
        found, value = _lookup(obj, self.field)
        if not found:
            return Verdict(False, None, f"field `{self.field}` missing")
        try:
            expected: object = json.loads(target)
        except json.JSONDecodeError:
            expected = target
        if isinstance(value, str) and isinstance(expected, str):
            return Verdict(normalize_text(value) == normalize_text(expected), value)
        return Verdict(value == expected, json.dumps(value))
