"""Tinker's model lineup as the installed cookbook knows it (`listing.py` builds `chief models`).

The lineup is every model named in `tinker_cookbook.model_info` (renderers) or
`tinker_cookbook.hyperparam_utils` (LoRA counts, hidden sizes): models that run on Tinker's
cloud and need no local weights to plan. Their numbers come from the cookbook's own functions
(`get_lora_param_count`, `get_lr`, `get_recommended_renderer_name`), so chief's figures are
theirs. Nothing here touches the network: `get_lr` could fetch a config for a model without a
known hidden size, so it is asked only about lineup models, and any failure is reported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache


@cache
def cookbook_lineup() -> tuple[str, ...]:
    """Every hub id the installed cookbook has a renderer, a LoRA count or a hidden size for."""
    from tinker_cookbook import model_info

    names: set[str] = set()
    for getter in (
        model_info.get_llama_info,
        model_info.get_qwen_info,
        model_info.get_deepseek_info,
        model_info.get_gpt_oss_info,
        model_info.get_moonshot_info,
        model_info.get_zai_info,
        model_info.get_nvidia_info,
        model_info.get_thinkingmachines_info,
    ):
        org = next(iter(getter().values())).organization
        names.update(f"{org}/{version}" for version in getter())
    # the table get_lora_param_count reads
    names.update(_hyperparam_table("_LORA_PARAMS_PER_RANK_BY_COMPONENT"))
    return tuple(sorted(names))


def lineup_name(name: str) -> str | None:
    """The lineup's spelling of `name` (matched case-insensitively), else None."""
    wanted = name.strip().lower()
    return next((known for known in cookbook_lineup() if known.lower() == wanted), None)


def near_matches(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Up to `n` candidates close to `name` (difflib), for 'did you mean' in errors."""
    lowered = {c.lower(): c for c in candidates}
    return [
        lowered[m]
        for m in difflib.get_close_matches(name.strip().lower(), list(lowered), n=n, cutoff=0.6)
    ]


def cookbook_lora_per_rank(name: str) -> dict[str, int] | None:
    """`get_lora_param_count` at rank 1 per component (attn, mlp, unembed), or None when the
    cookbook's table lacks the model."""
    from tinker_cookbook import hyperparam_utils

    def component(mlp: bool, attn: bool, unembed: bool) -> int:
        return hyperparam_utils.get_lora_param_count(
            name, 1, train_mlp=mlp, train_attn=attn, train_unembed=unembed
        )

    try:
        mlp = component(True, False, False)
    except Exception:  # the cookbook raises its own ConfigurationError for models not in its table
        return None
    return {
        "attn": component(False, True, False),
        "mlp": mlp,
        "unembed": component(False, False, True),
    }


@dataclass(frozen=True)
class CookbookLr:
    """What `get_lr(name, is_lora=True)` says: a value, or why it has none."""

    value: float | None
    reason: str | None  # set when value is None: "not calibrated: ..." or "unknown: ..."
    hidden_size: int | None  # the cookbook's known hidden size, when it has one


def cookbook_lr(name: str) -> CookbookLr:
    from tinker_cookbook import hyperparam_utils

    hidden = cookbook_hidden_size(name)
    if hidden is None and lineup_name(name) is None:
        # get_lr would fetch the config from the hub for such a model: never from here.
        return CookbookLr(None, "unknown: not in the cookbook's lineup", None)
    try:
        return CookbookLr(hyperparam_utils.get_lr(name, is_lora=True), None, hidden)
    except NotImplementedError as exc:
        return CookbookLr(None, f'not calibrated: the cookbook\'s get_lr says "{exc}"', hidden)
    except Exception as exc:  # its ConfigurationError, or a config it could not fetch offline
        return CookbookLr(None, f"unknown: get_lr failed ({type(exc).__name__}: {exc})", hidden)


def cookbook_hidden_size(name: str) -> int | None:
    """The hidden size the cookbook knows without a network call, else None."""
    # `_get_hidden_size` falls back to downloading the config; read only its baked-in table,
    # which it keeps as a literal inside the function.
    return _hyperparam_table("_KNOWN_HIDDEN_SIZES").get(name.split(":", 1)[0])


@cache
def _hyperparam_table(table: str) -> dict:
    """A literal table of `tinker_cookbook.hyperparam_utils`, read from its source, or {}.

    Read, not imported: importing that module imports transformers and torch (seconds of every
    `chief` command that only resolves a model name); its functions are imported where called.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec("tinker_cookbook.hyperparam_utils")
    if spec is None or spec.origin is None:
        return {}
    with open(spec.origin, encoding="utf-8") as handle:
        source = handle.read()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            named = any(isinstance(t, ast.Name) and t.id == table for t in targets)
            if named and node.value is not None:
                return ast.literal_eval(node.value)
    return {}


def recommended_renderer(name: str) -> str | None:
    from tinker_cookbook import model_info

    try:
        return model_info.get_recommended_renderer_name(name)
    except Exception:  # unknown organization or version
        return None
