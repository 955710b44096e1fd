"""`chief models` shows each model's Tinker price from the dated price table, and says so when
none is known."""

from __future__ import annotations

import json

from cli_support import chief_in_process as chief


def test_chief_models_lists_prices_per_million_tokens(capsys):
    code, out, _ = chief(capsys, "models", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)["models"]}
    qwen = rows["Qwen/Qwen3-8B"]["price"]
    assert (qwen["train"], qwen["sample"], qwen["prefill"], qwen["as_of"]) == (
        0.40,
        0.40,
        0.13,
        "2025-10-01",
    )
    assert qwen["source"].startswith("prices.toml (")
    assert rows["tiny-random-llama"]["price"] is None  # no made-up number

    code, out, _ = chief(capsys, "models")
    assert code == 0
    assert (
        "$/M train / sample / prefill" in out
        and "(2025-10-01)" in out
        and "0.4 / 0.4 / 0.13" in out
    )
    assert "no known price" in out
