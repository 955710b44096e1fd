"""`chief eval` and `chief eval-offline`: parse flags, call `tinker_chief.evals`, print results.

`--json` prints exactly one JSON object on stdout and nothing else (progress and notes go to
stderr), so scripts and CI can parse it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


def _emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        table.add_row(key, str(value))
    Console().print(table)


@click.command(name="eval-offline")
@click.option("--model-path", help="A tinker:// checkpoint path (from `chief train` or Tinker's cloud).")
@click.option("--base-model", help="A base model name, e.g. SmolLM2-135M-Instruct-Q4_1.")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help='JSONL with {"input","output"} lines (optional "messages", "system", "id").')
@click.option("--grader", default="exact", show_default=True,
              help="exact | normalized_exact | contains | regex | numeric | multiple_choice | json_field | "
                   "llm_judge; options as name:key=value,... e.g. numeric:tolerance=0.01")
@click.option("--judge-model", help="Model (name or tinker:// path) that grades for --grader llm_judge.")
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(min=0.0))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N samples.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1),
              help="Requests in flight at once.")
@click.option("--output", type=click.Path(path_type=Path),
              help="Directory for samples.jsonl and summary.json [default: .chief/eval-offline/<model>__<data>].")
@click.option("--base-url", help="Engine or Tinker URL [default: $CHIEF_ENGINE_URL, $TINKER_BASE_URL, "
                                 "Tinker's cloud if $TINKER_API_KEY, else a local engine].")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
def eval_offline_command(model_path: str | None, base_model: str | None, data: Path, grader: str,
                         judge_model: str | None, max_tokens: int, temperature: float, seed: int,
                         limit: int | None, concurrency: int, output: Path | None, base_url: str | None,
                         as_json: bool) -> None:
    """Grade one model on one JSONL file; per-sample records go to a JSONL file.

    \b
    Examples:
      chief eval-offline --base-model tiny-random-llama --data qa.jsonl --grader contains
      chief eval-offline --model-path tinker://run-1/sampler_weights/final --data math.jsonl \\
          --grader numeric --max-tokens 512 --json
    """
    from tinker_chief.errors import ConfigurationError
    from tinker_chief.evals.offline import OfflineConfig, run_offline
    from tinker_chief.evals.sampling import GenerationSettings

    if bool(model_path) == bool(base_model):
        raise ConfigurationError("give exactly one of --model-path tinker://... or --base-model NAME")
    if model_path and not model_path.startswith("tinker://"):
        raise ConfigurationError(f"--model-path must start with tinker://, got {model_path!r}")
    config = OfflineConfig(
        model=model_path or base_model or "", data=data, grader=grader, judge_model=judge_model,
        settings=GenerationSettings(max_tokens=max_tokens, temperature=temperature, seed=seed),
        limit=limit, concurrency=concurrency, output_dir=output,
    )
    result = run_offline(config, base_url=base_url)
    _emit(result.as_json(), as_json, f"eval-offline: {config.model} on {data}")
