"""Cost and time estimates: Tinker dollars from a price table, local hours from measured speed.

Both tables ship as TOML beside this module (`prices.toml`, date-stamped; `throughput.toml`,
measured on this project's machine) and can be replaced per project through chief.toml's
`[estimates]`. A model missing from a table gets no number and a sentence saying so: the
plan never invents a price or a speed.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tinker_chief.errors import ConfigurationError
from tinker_chief.files import read_toml

_HERE = Path(__file__).parent
PRICES_FILE = _HERE / "prices.toml"
THROUGHPUT_FILE = _HERE / "throughput.toml"
STALE_PRICE_DAYS = 180


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


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigurationError(f"{path}: {what} not found")
    return read_toml(path)


def _rate(table: dict[str, Any], path: Path, model: str, key: str) -> float | None:
    entry = table.get("models", {}).get(model)
    if entry is None or key not in entry:
        return None
    value = entry[key]
    if not isinstance(value, (int, float)) or value < 0:
        raise ConfigurationError(f"{path}: field `models.\"{model}\".{key}`: expected a non-negative number, "
                                 f"got {value!r}")
    return float(value)


def tinker_cost(model: str, work: TokenWork, prices_file: Path | None = None, today: date | None = None
                ) -> CostEstimate:
    path = prices_file or PRICES_FILE
    table = _read_toml(path, "price table")
    as_of = str(table.get("as_of", "undated"))
    source = f"{path.name} (as of {as_of}; {table.get('source', 'no source given')})"
    train = _rate(table, path, model, "train")
    if train is None:
        return CostEstimate(dollars=None, source=source,
                            detail=f"no Tinker price for {model} in {path.name}; add one to estimate cost")
    sample = _rate(table, path, model, "sample") or 0.0
    prefill = _rate(table, path, model, "prefill") or 0.0
    dollars = (work.train_tokens * train + work.sample_tokens * sample + work.prefill_tokens * prefill) / 1e6
    detail = (f"{work.train_tokens:,} train tokens x ${train}/M"
              + (f" + {work.sample_tokens:,} sampled x ${sample}/M" if work.sample_tokens else "")
              + (f" + {work.prefill_tokens:,} prefill x ${prefill}/M" if work.prefill_tokens else ""))
    try:
        age = ((today or date.today()) - date.fromisoformat(as_of)).days
    except ValueError:
        age = None
    if age is None or age > STALE_PRICE_DAYS:
        detail += f"; prices dated {as_of}, check the current price list"
    return CostEstimate(dollars=round(dollars, 4), detail=detail, source=source)


def local_time(model: str, work: TokenWork, *, train_tps: float | None = None, sample_tps: float | None = None,
               throughput_file: Path | None = None) -> TimeEstimate:
    path = throughput_file or THROUGHPUT_FILE
    table = _read_toml(path, "throughput table")
    measured = f"{path.name} (measured {table.get('measured', '?')} on {table.get('machine', '?')}; " \
               f"{table.get('source', '')})"
    train_rate = train_tps or _rate(table, path, model, "train")
    source = "chief.toml [estimates]" if train_tps else measured
    if train_rate is None:
        return TimeEstimate(seconds=None, source=measured,
                            detail=f"no measured local training throughput for {model}; set "
                                   "[estimates] local_train_tokens_per_s in chief.toml")
    seconds = work.train_tokens / train_rate
    detail = f"{work.train_tokens:,} train tokens / {train_rate:,.0f} tok/s"
    conditions = table.get("models", {}).get(model, {}).get("conditions")
    if conditions and not train_tps:
        detail += f" (measured with {conditions})"
    if work.sample_tokens:
        sample_rate = sample_tps or _rate(table, path, model, "sample")
        if sample_rate is None:
            return TimeEstimate(seconds=None, source=source,
                                detail=f"no measured local sampling throughput for {model}; set "
                                       "[estimates] local_sample_tokens_per_s in chief.toml")
        seconds += work.sample_tokens / sample_rate
        detail += f" + {work.sample_tokens:,} sampled tokens / {sample_rate:,.0f} tok/s"
    return TimeEstimate(seconds=round(seconds, 1), detail=detail, source=source)
