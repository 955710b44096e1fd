"""`chief eval-offline`: grade one model on one JSONL file and write per-sample records.

Reads `{"input","output"}` lines (see `eval_samples.py`), renders each with the model's renderer,
samples concurrently through the tinker SDK, grades, and returns a compact metrics dict
(accuracy, n, 95% Wilson interval, unscored, errors) plus the settings that produced it.
Records go to `<output>/samples.jsonl`, the summary to `<output>/summary.json`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinker_chief.connection import BackendChoice, Connection, choose_backend, open_connection
from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.defaults import DEFAULT_CONCURRENCY
from tinker_chief.evals.eval_samples import load_samples
from tinker_chief.evals.graders import make_grader
from tinker_chief.evals.model_sampler import GenerationSettings, ModelSampler
from tinker_chief.evals.records import SampleRecord, summarize, write_records
from tinker_chief.evals.scoring import grade_samples
from tinker_chief.evals.usage import TokenUsage
from tinker_chief.models import RendererChoice, chosen_renderer_name
from tinker_chief.paths import EVAL_OFFLINE


@dataclass
class OfflineConfig:
    model: str
    data: Path
    grader: str = "exact"
    judge_model: str | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    limit: int | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    output_dir: Path | None = None
    renderer: str | None = None  # the model's prompts (not the judge's): None, the model's own

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigurationError(f"`concurrency` must be >= 1, got {self.concurrency}")
        if self.limit is not None and self.limit < 1:
            raise ConfigurationError(f"`limit` must be >= 1, got {self.limit}")
        if self.grader.startswith("llm_judge") and not self.judge_model:
            raise ConfigurationError("grader `llm_judge` needs --judge-model")
        # Checked before any sampling, not when the records are written after it.
        output = self.output_dir
        if output is not None and output.exists() and not output.is_dir():
            raise ConfigurationError(f"--output {output}: a file; expected a directory")


@dataclass
class OfflineResult:
    metrics: dict[str, object]
    records: list[SampleRecord]
    records_path: Path
    elapsed_s: float

    def as_json(self) -> dict[str, object]:
        return {
            **self.metrics,
            "records": str(self.records_path),
            "elapsed_s": round(self.elapsed_s, 3),
        }


def default_output_dir(model: str, data: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model.replace("tinker://", ""))[-60:]
    return EVAL_OFFLINE / f"{slug}__{data.stem}"


async def run_offline_async(config: OfflineConfig, connection: Connection) -> OfflineResult:
    samples = load_samples(config.data, config.limit)
    service = connection.service_client()
    usage = TokenUsage()
    choice = RendererChoice(config.renderer) if config.renderer else None
    sampler = await ModelSampler.create(service, config.model, config.concurrency, usage, choice)
    judge = None
    if config.judge_model:
        judge = (
            sampler
            if config.judge_model == config.model
            else await ModelSampler.create(service, config.judge_model, config.concurrency, usage)
        )
    grader = make_grader(config.grader, judge=judge)
    started = time.perf_counter()
    records = await grade_samples(sampler, samples, grader, config.settings)
    elapsed = time.perf_counter() - started
    output = config.output_dir or default_output_dir(config.model, config.data)
    records_path = output / "samples.jsonl"
    write_records(records_path, records)
    metrics = {
        **summarize(records),
        "model": config.model,
        "base_model": sampler.base_model,
        "renderer": chosen_renderer_name(sampler.base_model, choice),
        "data": str(config.data),
        "grader": config.grader,
        "judge_model": config.judge_model,
        "settings": asdict(config.settings),
        "backend": connection.kind,
        "engine_precision": connection.engine_precision,
        "samples_per_s": round(len(records) / elapsed, 3) if elapsed > 0 else None,
        "tokens": usage.since((0, 0)),  # prompts prefilled and tokens sampled, the judge's included
    }
    (output / "summary.json").write_text(json.dumps(metrics, indent=2, default=str))
    return OfflineResult(metrics, records, records_path, elapsed)


def run_offline(
    config: OfflineConfig,
    choice: BackendChoice | None = None,
    api_key: str | None = None,
    state_dir: Path | None = None,
) -> OfflineResult:
    """Validate the data first (no engine start for a bad file), then connect and run. `choice`:
    where to go (default: `choose_backend()`, the environment's choice)."""
    load_samples(config.data, config.limit)
    make_grader(config.grader, judge=_PlaceholderJudge()) if config.judge_model else make_grader(
        config.grader
    )
    with open_connection(
        choice or choose_backend(),
        state_dir=state_dir,
        api_key=api_key,
        models=[config.model, config.judge_model or ""],
    ) as connection:
        return asyncio.run(run_offline_async(config, connection))


class _PlaceholderJudge:
    """Lets grader options be validated before any model is opened."""

    async def generate_text(
        self, messages: list[dict[str, str]], max_tokens: int = 256
    ) -> str:  # pragma: no cover
        raise NotImplementedError
