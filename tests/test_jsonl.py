"""Shared JSONL reading reports file, line and field."""

from __future__ import annotations

import pytest

from tinker_chief.errors import DataError
from tinker_chief.jsonl import read_jsonl_objects, require_str


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"input": "a"}\n\n{bad\n')
    with pytest.raises(DataError, match=r"d.jsonl:3: invalid JSON"):
        list(read_jsonl_objects(path))


def test_missing_and_wrong_type_fields(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"input": 3}\n')
    line = next(read_jsonl_objects(path))
    with pytest.raises(DataError, match=r'd.jsonl:1: field "input": expected a string, got int'):
        require_str(line, "input")
    with pytest.raises(
        DataError, match=r'field "output": expected a string \(the key is missing\)'
    ):
        require_str(line, "output")


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="file is empty"):
        list(read_jsonl_objects(empty))
    with pytest.raises(DataError, match="file not found"):
        list(read_jsonl_objects(tmp_path / "missing.jsonl"))
