"""Cost and time estimates: Tinker dollars from a price table, local hours from measured speed.

Both tables ship as TOML beside this module (`prices.toml`, date-stamped; `throughput.toml`,
measured on this project's build machine) and can be replaced per project through chief.toml's
`[estimates]`. A model missing from a table gets no number and a sentence saying so: the
plan never invents a price or a speed. The local training speed is calibrated on the machine
that plans when it can be (`planning.calibration`: the project's last run here, else a probe);
the estimate's `basis` says which was used. `spent` states what a recorded run or eval cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from tinker_chief.errors import ConfigurationError
from tinker_chief.files import read_toml
from tinker_chief.planning.calibration import Measured

_HERE = Path(__file__).parent
PRICES_FILE = _HERE / "prices.toml"
THROUGHPUT_FILE = _HERE / "throughput.toml"
STALE_PRICE_DAYS = 180

# A model's Tinker prices: `train`, `sample` and `prefill` in $/M tokens (None: no rate), with the
# table's `as_of` date and `source`.
Prices = dict[str, float | str | None]


class TokenWork(BaseModel):
    """Tokens a run processes, by how they are billed."""

    train_tokens: int  # through forward_backward (all rendered tokens, every epoch)
    sample_tokens: int = 0  # generated (RL rollouts)
    prefill_tokens: int = 0  # prompts sent for sampling


class CostEstimate(BaseModel):
    dollars: float | None
    detail: str
    source: str


class TimeEstimate(BaseModel):
    seconds: float | None
    detail: str
    source: str
    # Where the training speed came from: chief.toml | last run | probe | table.
    basis: str = "table"


def _read_toml(path: Path, what: str) -> dict[str, object]:
    if not path.is_file():
        raise ConfigurationError(f"{path}: {what} not found")
    return read_toml(path)


def _model_entry(table: Mapping[str, object], path: Path, model: str) -> Mapping[str, object]:
    """The table's `[models."<model>"]` (empty when it has none)."""
    models = table.get("models", {})
    if not isinstance(models, Mapping):
        raise ConfigurationError(f"{path}: field `models`: expected a table, got {models!r}")
    entry = models.get(model, {})
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            f'{path}: field `models."{model}"`: expected a table, got {entry!r}'
        )
    return entry


def _rate(table: Mapping[str, object], path: Path, model: str, key: str) -> float | None:
    entry = _model_entry(table, path, model)
    if key not in entry:
        return None
    value = entry[key]
    if not isinstance(value, (int, float)) or value < 0:
        raise ConfigurationError(
            f'{path}: field `models."{model}".{key}`: expected a non-negative number, got {value!r}'
        )
    return float(value)


def price_of(model: str, prices_file: Path | None = None) -> Prices | None:
    """`model`'s Tinker prices in $/M tokens (train, sample, prefill) with the table's date and
    source, or None when the table has no price for it."""
    path = prices_file or PRICES_FILE
    table = _read_toml(path, "price table")
    train = _rate(table, path, model, "train")
    if train is None:
        return None
    return {
        "train": train,
        "sample": _rate(table, path, model, "sample"),
        "prefill": _rate(table, path, model, "prefill"),
        "as_of": str(table.get("as_of", "undated")),
        "source": f"{path.name} ({table.get('source', 'no source given')})",
    }


def tinker_cost(
    model: str, work: TokenWork, prices_file: Path | None = None, today: date | None = None
) -> CostEstimate:
    path = prices_file or PRICES_FILE
    table = _read_toml(path, "price table")
    as_of = str(table.get("as_of", "undated"))
    source = f"{path.name} (as of {as_of}; {table.get('source', 'no source given')})"
    train = _rate(table, path, model, "train")
    if train is None:
        return CostEstimate(
            dollars=None,
            source=source,
            detail=f"no known price for {model} in {path.name} (as of {as_of}); add one "
            "([estimates] prices_file) to estimate cost",
        )
    sample = _rate(table, path, model, "sample") or 0.0
    prefill = _rate(table, path, model, "prefill") or 0.0
    dollars = (
        work.train_tokens * train + work.sample_tokens * sample + work.prefill_tokens * prefill
    ) / 1e6
    parts = [
        f"{count:,} {what} x ${rate}/M"
        for count, what, rate in (
            (work.train_tokens, "train tokens", train),
            (work.sample_tokens, "sampled", sample),
            (work.prefill_tokens, "prefill", prefill),
        )
        if count
    ]
    detail = " + ".join(parts) or "no tokens"
    try:
        age = ((today or date.today()) - date.fromisoformat(as_of)).days
    except ValueError:
        age = None
    if age is None or age > STALE_PRICE_DAYS:
        detail += f"; prices dated {as_of}, check the current price list"
    return CostEstimate(dollars=round(dollars, 4), detail=detail, source=source)


def local_time(
    model: str,
    work: TokenWork,
    *,
    train_tps: float | None = None,
    sample_tps: float | None = None,
    throughput_file: Path | None = None,
    measured_here: Measured | None = None,
) -> TimeEstimate:
    """Seconds on the local engine. Training speed: chief.toml's override, else `measured_here`
    (this machine's last run or probe), else the shipped table measured on another machine."""
    path = throughput_file or THROUGHPUT_FILE
    table = _read_toml(path, "throughput table")
    measured = (
        f"{path.name} (measured {table.get('measured', '?')} on {table.get('machine', '?')}; "
        f"{table.get('source', '')}; not this machine: `chief plan --calibrate` measures it)"
    )
    basis, source, train_rate = "table", measured, _rate(table, path, model, "train")
    entry = _model_entry(table, path, model)
    precision = entry.get("precision")
    if measured_here is not None:
        basis, source, train_rate = (
            measured_here.basis,
            measured_here.source,
            measured_here.train_tokens_per_s,
        )
        precision = measured_here.precision
    if train_tps:
        basis, source, train_rate = "chief.toml", "chief.toml [estimates]", train_tps
        precision = None
    if train_rate is None:
        return TimeEstimate(
            seconds=None,
            source=measured,
            basis="table",
            detail=f"no measured local training throughput for {model}; run `chief plan "
            "--calibrate` or set [estimates] local_train_tokens_per_s in chief.toml",
        )
    seconds = work.train_tokens / train_rate
    # The precision the speed was measured in: the engine's choice on that machine (bf16 or fp32).
    measured_in = f", {precision}" if precision else ""
    detail = f"{work.train_tokens:,} train tokens / {train_rate:,.0f} tok/s ({basis}{measured_in})"
    conditions = entry.get("conditions")
    if conditions and basis == "table":
        detail += f" (measured with {conditions})"
    if work.sample_tokens:
        sample_rate = sample_tps or _rate(table, path, model, "sample")
        if sample_rate is None:
            return TimeEstimate(
                seconds=None,
                source=source,
                basis=basis,
                detail=f"no measured local sampling throughput for {model}; set "
                "[estimates] local_sample_tokens_per_s in chief.toml",
            )
        seconds += work.sample_tokens / sample_rate
        detail += f" + {work.sample_tokens:,} sampled tokens / {sample_rate:,.0f} tok/s"
    return TimeEstimate(seconds=round(seconds, 1), detail=detail, source=source, basis=basis)


class DescribedUsage(Protocol):
    """What `spent` needs of a registry `Usage` (planning does not import the registry)."""

    def describe(self, backend: str, price: Mapping[str, object] | None, no_price: str) -> str: ...


def spent(
    base_model: str, backend: str, usage: DescribedUsage, prices_file: Path | None = None
) -> str:
    """What a recorded run or eval cost, in words (a registry `Usage`), at the price table's
    rates."""
    table = (prices_file or PRICES_FILE).name
    return usage.describe(
        backend, price_of(base_model, prices_file), f"no known price for {base_model} in {table}"
    )
