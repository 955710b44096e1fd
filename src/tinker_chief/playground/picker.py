"""What the model pickers offer, and how a picked name becomes something to sample.

Three kinds of choice, each named by the `ref` its `<select>` option carries:
- `version`: a registry version (`name:vN`) with its status and headline metrics (each task's
  latest finished run); sampled at its `tinker://` path (a `base` recipe: its base model);
- `base`: a base model the backend serves (the project's first);
- `path`: any `tinker://` path typed in, taken as is (the backend says if it has no such model).
A name that is none of these is refused with what was expected, before anything is sampled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from tinker_chief.errors import ModelNotFoundError

if TYPE_CHECKING:
    from tinker_chief.registry import Registry

MAX_REF_CHARS = 1000
_TINKER_PATH = re.compile(r"tinker://[^\s\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class ModelChoice:
    ref: str
    kind: str  # "version" | "base" | "path"
    target: str  # what the SDK samples: a tinker:// path or a base model name
    base_model: str | None = None
    status: str | None = None
    headline: dict[str, float] = field(default_factory=dict)  # "task/metric" -> value

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def version_choices(registry: Registry) -> list[ModelChoice]:
    """Every registry version (by name, then version) with each evaluated task's headline metric."""
    choices = []
    for model in registry.list_models():
        headline = {
            f"{task}/{run.headline_metric}": run.metrics[run.headline_metric].value
            for task, run in registry.latest_results(model.ref).items()
            if run.headline_metric in run.metrics
        }
        target = model.tinker_path or model.base_model
        choices.append(
            ModelChoice(model.ref, "version", target, model.base_model, model.status, headline)
        )
    return choices


def base_choices(served: Iterable[str], project_base: str | None) -> list[ModelChoice]:
    """The backend's base models, the project's own first (offered even if the list failed)."""
    names = [project_base] if project_base else []
    names += [name for name in served if name not in names]
    return [ModelChoice(name, "base", name, name) for name in names]


def resolve_choice(
    ref: object, choices: Sequence[ModelChoice], registry: Registry | None
) -> ModelChoice:
    """The choice `ref` names: one on offer, a `tinker://` path, or another name the registry
    resolves (`name` alone: its latest version); else `ModelNotFoundError` saying what fits."""
    if not isinstance(ref, str) or not ref.strip():
        raise ModelNotFoundError(f"expected a model name, got {ref!r}")
    shown = ref if len(ref) <= 80 else ref[:77] + "..."
    if len(ref) > MAX_REF_CHARS:
        raise ModelNotFoundError(f"model name {shown!r} is longer than {MAX_REF_CHARS} characters")
    for choice in choices:
        if choice.ref == ref:
            return choice
    if ref.startswith("tinker://"):
        if not _TINKER_PATH.fullmatch(ref):
            raise ModelNotFoundError(
                f"{shown!r} is not a tinker:// path (no spaces or control characters)"
            )
        return ModelChoice(ref, "path", ref)
    if registry is not None:
        try:
            model = registry.get_model(ref)
        except ModelNotFoundError:
            pass
        else:
            return ModelChoice(
                model.ref,
                "version",
                model.tinker_path or model.base_model,
                model.base_model,
                model.status,
            )
    bases = ", ".join(c.ref for c in choices if c.kind == "base") or "none listed"
    raise ModelNotFoundError(
        f"unknown model {shown!r}: expected a registry version (name:vN), a base model the backend "
        f"serves ({bases}) or a tinker:// path"
    )
