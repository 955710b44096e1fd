"""Local training throughput measured on the machine that plans, not the one the table came from.

`calibrated(project_root, model)` returns, in this order of preference, the throughput of this
project's last local run of `model` on this machine (its metrics.jsonl: trained tokens over
step seconds of the pure training steps, the first step left out as warm-up when there are
others), else the last probe measured here (`chief plan --calibrate`, cached per machine and
model under the chief cache dir), else None (the plan falls back to the shipped table and says
so). A machine is its CPU model, a hash of its CPU flags and its core count (and the
instruction-set caps set in the environment, `cpuinfo.isa_caps`): a run or probe from another
machine is never used. Each measurement keeps the precision the engine computed
in (its `engine_stats`: `auto` is bf16 or fp32, whichever its GEMM probe found faster here),
and the estimate says it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from tinker_chief.cpuinfo import cpu_info, isa_caps
from tinker_chief.errors import ChiefError
from tinker_chief.files import read_json
from tinker_chief.paths import ProjectPaths
from tinker_chief.runfiles import RunFiles, run_dirs


@dataclass(frozen=True)
class Measured:
    """A training throughput measured on this machine, and where it came from."""

    train_tokens_per_s: float
    basis: str  # "last run" | "probe"
    source: str
    precision: str | None = None  # the engine's, e.g. "bfloat16-autocast"; None: not recorded


class Machine(TypedDict):
    """This machine as calibration keys it."""

    cpu: str  # the CPU model
    flags: str  # a hash of the CPU flags
    cores: int
    id: str  # a hash of the three above


def machine() -> Machine:
    """This machine as calibration keys it: CPU model, CPU-flags hash, core count, and their id."""
    cpu = cpu_info()
    flags = hashlib.sha256(" ".join(sorted(cpu.flags)).encode()).hexdigest()[:12]
    cores = os.cpu_count() or 1
    keyed: dict[str, object] = {"cpu": cpu.model, "flags": flags, "cores": cores}
    if caps := isa_caps():  # a capped run is not this CPU's speed (absent when unset: ids stay)
        keyed["isa_caps"] = caps
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    return Machine(cpu=cpu.model, flags=flags, cores=cores, id=key)


def machine_id() -> str:
    return machine()["id"]


def _run_throughput(run: RunFiles) -> float | None:
    """Trained tokens per second over the run's pure training steps (no sampling in the step)."""
    rows = [
        row
        for row in run.metrics()
        if "train/loss" in row
        and not row.get("prefill/tokens")
        and not row.get("sample/tokens")
        and row.get("time/step_s", 0) > 0
    ]
    rows = rows[1:] if len(rows) > 1 else rows  # the first step pays for warm-up
    seconds = sum(float(r["time/step_s"]) for r in rows)
    tokens = sum(float(r.get("train/tokens", 0)) for r in rows)
    return tokens / seconds if seconds > 0 and tokens > 0 else None


def last_run(project_root: Path, model: str, machine_key: str) -> Measured | None:
    """The newest local run of `model` in this project made on this machine, as a throughput."""
    for run_dir in reversed(run_dirs(ProjectPaths(project_root).runs)):
        run = RunFiles(run_dir)
        try:
            status, spec = run.status(), run.spec()
        except ChiefError:  # an unreadable run is simply not evidence
            continue
        if (
            status.get("machine") != machine_key
            or status.get("backend") != "local"
            or spec.get("base_model") != model
        ):
            continue
        rate = _run_throughput(run)
        if rate is not None:
            here = machine()
            return Measured(
                round(rate, 1),
                "last run",
                f"run {run.run_id} of this project on this machine ({here['cpu']}, "
                f"{here['cores']} cores)",
                status.get("engine_precision"),
            )
    return None


def probe_cache(machine_key: str) -> Path:
    """Where this machine's probes are kept: `<chief cache>/throughput/<machine id>.json`."""
    from tinker_chief.models.catalog import cache_dir

    return cache_dir().parent / "throughput" / f"{machine_key}.json"


def cached_probe(model: str, machine_key: str) -> Measured | None:
    path = probe_cache(machine_key)
    try:
        table = read_json(path) if path.is_file() else {}
    except ChiefError:  # a damaged cache is re-measured, not trusted
        return None
    entry = table.get(model) if isinstance(table, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("train_tokens_per_s"), (int, float)):
        return None
    return Measured(
        float(entry["train_tokens_per_s"]),
        "probe",
        f"probe measured {entry.get('measured_at', '?')} on this machine ({entry.get('cpu', '?')}, "
        f"{entry.get('cores', '?')} cores; {entry.get('conditions', '')}), cached in {path}",
        entry.get("precision"),
    )


def save_probe(
    model: str,
    tokens_per_s: float,
    conditions: str,
    precision: str | None = None,
) -> Path:
    """Record a probe's throughput for `model` on this machine (other models' entries kept)."""
    facts = machine()
    path = probe_cache(facts["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        table = read_json(path) if path.is_file() else {}
    except ChiefError:
        table = {}
    table = table if isinstance(table, dict) else {}
    table[model] = {
        "train_tokens_per_s": round(tokens_per_s, 1),
        "conditions": conditions,
        "precision": precision,
        "cpu": facts["cpu"],
        "cores": facts["cores"],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def calibrated(project_root: Path, model: str) -> Measured | None:
    """This machine's measured training throughput for `model`: the last run here, else a probe."""
    key = machine_id()
    return last_run(project_root, model, key) or cached_probe(model, key)
