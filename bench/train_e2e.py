"""Orchestration overhead of `chief train`: its loop vs a raw tinker SDK loop, same data, same run.

Both drive one local engine (started once through the launcher, as `bench/engine_train.py`
does) with the same datums in the same order: the demo's secret-code skill rendered by the
cookbook. The raw loop is the engine benchmark's: `forward_backward` + `optim_step`, wait,
repeat. `chief train`'s loop adds the LR schedule, per-step metrics (NLL from the returned
logprobs), `metrics.jsonl`, the observer and the stop flag. Inline evals are off and only the
final checkpoint is saved, and steps/s is measured between the first and the last step's
completion on both sides, so what differs is exactly the per-step orchestration. Runs are
interleaved (raw, chief, raw, chief) so load drifts hit both; medians are reported. On a shared
machine the A/B ratio is noisy, so the bench also reports the load-independent measure: the
share of `chief train`'s wall time between steps spent outside the SDK calls.

Usage: python bench/train_e2e.py [--model tiny-random-llama] [--steps 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_common import machine  # noqa: E402
from tinker_chief.training import TrainSpec, write_secret_code_skill  # noqa: E402
from tinker_chief.training.loop import Trainer, batch_indices  # noqa: E402
from tinker_chief.training.runlog import RunLog  # noqa: E402
from tinker_chief.training.session import prepare  # noqa: E402
from tinker_chief.training.steps import SupervisedSteps  # noqa: E402


class _Clock:
    """Observer recording when each step completed."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_start(self, *_: object) -> None: ...
    def on_eval(self, *_: object) -> None: ...
    def on_checkpoint(self, *_: object) -> None: ...
    def on_end(self, *_: object) -> None: ...

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.times.append(time.perf_counter())


def rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def raw_loop(service, spec: TrainSpec, data: list) -> float:
    import tinker

    client = service.create_lora_training_client(
        base_model=spec.base_model,
        rank=spec.lora.rank,
        seed=spec.seed,
        train_unembed=spec.lora.train_unembed,
    ).result()
    adam = tinker.AdamParams(learning_rate=spec.optimizer.learning_rate)
    times = []
    for step in range(spec.schedule.steps or 0):
        batch = [data[i] for i in batch_indices(len(data), spec.batch_size, spec.seed, step)]
        fb = client.forward_backward(batch, "cross_entropy")
        opt = client.optim_step(adam)
        fb.result()
        opt.result()
        times.append(time.perf_counter())
    return rate(times)


def chief_loop(service, spec: TrainSpec, data: list, project: Path) -> tuple[float, float]:
    """Steps/s, and the share of wall time between steps spent outside the SDK calls."""
    clock = _Clock()
    log = RunLog.create(project, spec.model_dump(mode="json"), {})
    Trainer(spec, service, SupervisedSteps(data), log, observer=clock).run()
    in_sdk = sum(
        row["time/step_s"] for row in log.metrics() if "time/step_s" in row and row["step"] > 1
    )
    wall = clock.times[-1] - clock.times[0]
    return rate(clock.times), max(0.0, 1 - in_sdk / wall)


def main() -> None:
    import tinker

    from tinker_chief.engine.server.launcher import start_engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random-llama")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        project = Path(tmp)
        write_secret_code_skill(project / "data", 200, 50)
        spec = TrainSpec.model_validate(
            {
                "base_model": args.model,
                "data": {"train": "data/train.jsonl", "max_length": 64},
                "lora": {"rank": 16, "train_unembed": False},
                "optimizer": {"learning_rate": 5e-4},
                "schedule": {"batch_size": 8, "steps": args.steps},
                "checkpoints": {"every_steps": 0},
                "inline_evals": {"nll_every_steps": 0},
            }
        )
        data = prepare(spec, project).train_items
        tokens_per_step = statistics.mean(
            sum(data[i].model_input.length for i in batch_indices(len(data), 8, spec.seed, s))
            for s in range(args.steps)
        )
        with start_engine(state_dir=project / "engine", dtype=args.dtype) as engine:
            service = tinker.ServiceClient(
                base_url=engine.base_url, api_key=engine.api_key_for_clients
            )
            warm_up = spec.model_copy(
                update={"schedule": spec.schedule.model_copy(update={"steps": 2})}
            )
            raw_loop(service, warm_up, data)  # warm-up: load the base model
            raw, chief, outside = [], [], []
            for _ in range(args.rounds):
                raw.append(raw_loop(service, spec, data))
                steps_per_s, share = chief_loop(service, spec, data, project)
                chief.append(steps_per_s)
                outside.append(share)
    raw_s, chief_s = statistics.median(raw), statistics.median(chief)
    print(f"machine: {machine()}")
    print(
        f"model {args.model}, batch 8, ~{tokens_per_step:.0f} tokens/step, "
        f"{args.steps} steps x {args.rounds} rounds"
    )
    print(
        f"raw SDK loop : {raw_s:6.2f} steps/s  {raw_s * tokens_per_step:8.0f} tokens/s  "
        f"(runs {raw})"
    )
    print(
        f"chief train  : {chief_s:6.2f} steps/s  {chief_s * tokens_per_step:8.0f} tokens/s  "
        f"(runs {chief})"
    )
    print(
        f"ratio chief/raw: {chief_s / raw_s:.3f}  "
        f"(orchestration overhead {100 * (1 - chief_s / raw_s):+.1f}%; target < 10%)"
    )
    print(
        "chief train time outside forward_backward+optim_step "
        "(schedule, metrics, logs, observer): "
        f"{100 * statistics.median(outside):.2f}% of the wall time between steps "
        "(load-independent measure)"
    )


if __name__ == "__main__":
    main()
