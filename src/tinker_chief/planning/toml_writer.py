"""Writes `chief.toml` as a documented file: every section and key carries a comment.

A small emitter rather than `tomli-w` because the point of the file is the comments (tomli-w
cannot write any), and the shapes we emit are few: scalars, lists of scalars, tables and arrays
of tables. The comments come from the pydantic field descriptions in `planning.config`, so the
schema and its documentation cannot drift apart. `None` is omitted (TOML has no null), which
reloads as the field's default; every optional field in the schema defaults to `None` or to a
value whose absence means the same. `save_project` writes the file atomically.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TypeGuard

from pydantic import BaseModel

from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.suite import EvalSettings, EvalSuite, EvalTask
from tinker_chief.planning.config import CONFIG_FILENAME, Project, ProjectConfig

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

HEADER = """\
# chief.toml: the project file of a tinker-chief fine-tune.
# Written by `chief init`; edit freely, then run `chief plan` to see what the doctrine says
# about your settings (plan.md explains every recommendation and the rule behind it).
# Paths are relative to this directory.
"""

SECTION_NOTES: dict[str, str] = {
    "data": 'Training data. Formats: conversations {"messages": [...]}, '
    'prompt/answer {"input","output"},\n'
    'preferences {"prompt","chosen","rejected"} (DPO), RL prompts {"prompt","answer"}.',
    "lora": "LoRA on MLP + attention (+ unembedding) by default: attention-only LoRA "
    "underperforms\n(LoRA Without Regret). Supervised runs stay low-regret while LoRA params >= "
    "completion tokens.",
    "optimizer": "AdamW. The LoRA learning rate is ~10x the full fine-tune rate (cookbook get_lr).",
    "schedule": "Moderate batch sizes: LoRA pays a larger penalty than full fine-tuning at "
    "large batches.",
    "checkpoints": "Resumable training state (save_state) plus sampler weights at each save.",
    "inline_evals": "Sparse evals during training; the full suite runs offline on checkpoints "
    "(`chief eval`).",
    "rl": 'RL with verifiable rewards (recipe = "rl"). Rank 1-8 suffices: an episode carries '
    "~1 bit.",
    "dpo": 'Direct preference optimization (recipe = "dpo").',
    "distill": 'Prompt / on-policy distillation (recipe = "distill").',
    "backend": "Where training runs: the built-in local engine or Tinker's cloud.",
    "estimates": "Overrides for the plan's cost (price table) and local time "
    "(measured throughput).",
    "budget": "Spend limits: train, sweep, eval and select refuse to start past them, training "
    "stops at a checkpoint.",
    "tracking": "Experiment tracker the runs, sweeps and evals are mirrored to (docs/TRACKING.md).",
    "eval_suite": "The agreed eval suite: layer 1 training metrics, layer 2 public benchmarks "
    "(Inspect),\nlayer 3 product metrics on your data, plus safety and calibration. Its hash is "
    "the suite version\nthe registry uses to detect stale results.",
    "gate": "Promotion-gate rules (see `chief promote`).",
}


def format_value(value: object) -> str:
    """One TOML value (scalars and lists of scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _comment(text: str | None) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()] if text else []


def _description(model: type[BaseModel] | None, name: str) -> str | None:
    if model is None or name not in model.model_fields:
        return None
    return model.model_fields[name].description


def _submodel(model: type[BaseModel] | None, name: str) -> type[BaseModel] | None:
    """The pydantic class of a nested field, for its descriptions (None when untyped)."""
    if model is None:
        return None
    nested: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
        (EvalSuite, "tasks"): EvalTask,
        (EvalTask, "settings"): EvalSettings,
    }
    if (model, name) in nested:
        return nested[(model, name)]
    if name not in model.model_fields:
        return None
    annotation = model.model_fields[name].annotation
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _is_table_list(value: object) -> TypeGuard[list[dict[str, object]]]:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _scalar_lines(table: Mapping[str, object], model: type[BaseModel] | None) -> list[str]:
    lines: list[str] = []
    for name, value in table.items():
        if isinstance(value, dict) or _is_table_list(value):
            continue
        lines += _comment(_description(model, name))
        lines.append(f"{_key(name)} = {format_value(value)}")
    return lines


def _table_lines(
    path: list[str],
    table: Mapping[str, object],
    model: type[BaseModel] | None,
    *,
    array_item: bool = False,
    note: str | None = None,
) -> list[str]:
    dotted = ".".join(_key(part) for part in path)
    lines = [""] + _comment(note)
    lines.append(f"[[{dotted}]]" if array_item else f"[{dotted}]")
    lines += _scalar_lines(table, model)
    for name, value in table.items():
        if isinstance(value, dict) and value:
            lines += _table_lines(path + [name], value, _submodel(model, name))
        elif _is_table_list(value):
            for item in value:
                lines += _table_lines(path + [name], item, _submodel(model, name), array_item=True)
    return lines


def dump_config(config: ProjectConfig) -> str:
    """The documented TOML text of a `ProjectConfig`."""
    data = config.model_dump(mode="json", exclude_none=True)
    data["gate"] = config.gate_dict()
    lines = HEADER.splitlines()
    lines += [""] + _scalar_lines(data, ProjectConfig)
    for name, value in data.items():
        if isinstance(value, dict):
            lines += _table_lines(
                [name], value, _submodel(ProjectConfig, name), note=SECTION_NOTES.get(name)
            )
    return "\n".join(lines) + "\n"


def save_project(
    project_or_root: Project | str | Path, config: ProjectConfig | None = None
) -> Path:
    """Write a documented `chief.toml`; returns its path. The write is atomic (temp file +
    rename)."""
    if isinstance(project_or_root, Project):
        root, config = project_or_root.root, config or project_or_root.config
    else:
        root = Path(project_or_root)
    if config is None:
        raise ConfigurationError("save_project needs a config")
    root.mkdir(parents=True, exist_ok=True)
    target = root / CONFIG_FILENAME
    staging = target.with_suffix(".toml.tmp")
    staging.write_text(dump_config(config), encoding="utf-8")
    staging.replace(target)
    return target
