"""The `chief models` listing: the built-ins, then Tinker's lineup, one `ModelRow` each.

Above the catalog, the lineup and the renderers (it reads all three), so none of them has to
import it back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tinker_chief.models.catalog import list_builtin_models, resolve_model
from tinker_chief.models.lineup import (
    cookbook_hidden_size,
    cookbook_lineup,
    cookbook_lora_per_rank,
    cookbook_lr,
)
from tinker_chief.models.renderers import renderer_name_for

# Names `chief models` uses for where a model runs.
RUNS_ON = {
    "gguf": "embedded",
    "tiny": "embedded",
    "local": "local directory",
    "hub-cache": "local HF cache",
    "cloud": "Tinker's cloud",
}


@dataclass(frozen=True)
class ModelRow:
    """One row of `chief models`."""

    name: str
    runs_on: str
    renderer: str | None
    hidden_size: int | None
    lora_per_rank: dict[str, int] | None  # attn / mlp / unembed at rank 1
    lr_rule: str
    weights_here: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _lr_rule(name: str) -> str:
    lr = cookbook_lr(name)
    return f"get_lr = {lr.value:.4g}" if lr.value is not None else (lr.reason or "unknown")


def list_models() -> list[ModelRow]:
    """The built-ins, then every lineup model (with its local weights when the HF cache has
    them)."""
    rows = []
    for spec in list_builtin_models():
        rows.append(
            ModelRow(
                spec.name,
                RUNS_ON[spec.source],
                spec.renderer,
                None,
                None,
                "formula from config.json (see chief plan)",
                True,
            )
        )
    for name in cookbook_lineup():
        spec = resolve_model(name)
        per_rank = cookbook_lora_per_rank(name)
        rows.append(
            ModelRow(
                name,
                RUNS_ON[spec.source],
                renderer_name_for(name) if spec.local_dir else spec.renderer,
                cookbook_hidden_size(name),
                per_rank,
                _lr_rule(name),
                spec.local_dir is not None,
            )
        )
    return rows
