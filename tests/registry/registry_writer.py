"""A registry writer process for the crash tests: registers models and evals until killed.

Usage: python registry_writer.py DB_PATH PREFIX. Prints "ready" once the registry is open.
Every eval run it finishes has exactly METRICS metrics and SAMPLES samples, so the test can
tell a half-written run from a whole one.
"""

from __future__ import annotations

import itertools
import sys

from tinker_chief.registry import MetricValue, Registry, SampleOutcome

METRICS = 20
SAMPLES = 200


def main(path: str, prefix: str) -> None:
    reg = Registry.open(path)
    print("ready", flush=True)
    for i in itertools.count():
        model = reg.register_model(
            f"w{prefix}",
            base_model="b",
            config={"i": i},
            lora={"rank": 4},
            data={"files": [{"path": "d.jsonl", "sha256": "f" * 64}], "examples": i},
        )
        metrics = [MetricValue(f"m{k}", k / METRICS, n=SAMPLES) for k in range(METRICS)]
        samples = [SampleOutcome(f"s{k}", float(k % 2), bool(k % 2)) for k in range(SAMPLES)]
        reg.record_eval(
            model.ref,
            suite_name="s",
            suite_version="v1",
            task="t",
            metrics=metrics,
            samples=samples,
            headline_metric="m0",
        )
        run_id = reg.start_eval_run(model.ref, suite_name="s", suite_version="v1", task="u")
        reg.finish_eval_run(run_id, metrics=metrics, samples=samples)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
