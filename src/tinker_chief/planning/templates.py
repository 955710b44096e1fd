"""Use-case templates: the eval suite each use case gets (doctrine 5, 7 and 8).

Every template has the three layers plus governance: (1) NLL on the held-out data, (2) public
benchmarks run through Inspect Evals with their settings and version recorded, (3) a product
task on the user's own data (`{"input","output"}` lines, exact or LLM-judge graded), and the
safety and calibration suites that ship with chief's evals (kind `safety`/`calibration`, no
data here). `LAYER_PURPOSE` is the sentence plan.md prints for each layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinker_chief.evals.suite import EvalSettings, EvalSuite, EvalTask

# The Inspect Evals release whose task definitions these settings were written against
# (see shared/reference/inspect-ai-offline.md); recorded so the suite version changes with it.
INSPECT_EVALS_VERSION = "inspect_evals 0.26.0"

LAYER_PURPOSE: dict[str, str] = {
    "training": "Layer 1, training-centric: NLL on held-out data; cheap, run inline and on every "
    "checkpoint.",
    "benchmark": "Layer 2, public benchmarks through Inspect Evals: general capability and "
    "regressions.",
    "product": "Layer 3, product metrics on your own data: does the model do the job it was "
    "trained for.",
    "safety": "Governance: jailbreak resilience, harmful-request refusal and over-refusal.",
    "calibration": "Governance: calibration of stated confidence (ECE, Brier, "
    "over/under-confidence).",
}


@dataclass(frozen=True)
class Benchmark:
    """One Inspect task of a template, with what it measures (for comments and plan.md)."""

    name: str
    inspect_task: str
    measures: str
    settings: EvalSettings
    task_args: tuple[tuple[str, str], ...] = ()  # `-T key=value` arguments of the Inspect task
    # Its scorer runs model-written code in a sandbox (Docker, else chief's bwrap).
    runs_code: bool = False


def _bench(
    name: str,
    task: str,
    measures: str,
    *,
    max_tokens: int,
    shots: int = 0,
    cot: bool = False,
    limit: int = 100,
    task_args: tuple[tuple[str, str], ...] = (),
    runs_code: bool = False,
) -> Benchmark:
    settings = EvalSettings(
        max_tokens=max_tokens, temperature=0.0, shots=shots, chain_of_thought=cot, limit=limit
    )
    return Benchmark(name, task, measures, settings, task_args, runs_code)


BENCHMARKS: dict[str, list[Benchmark]] = {
    "chat": [
        _bench(
            "ifeval",
            "inspect_evals/ifeval",
            "instruction following with verifiable constraints",
            max_tokens=512,
        ),
        _bench(
            "mmlu",
            "inspect_evals/mmlu_0_shot",
            "broad knowledge, multiple choice, 0-shot",
            max_tokens=16,
        ),
        _bench(
            "gsm8k",
            "inspect_evals/gsm8k",
            "grade-school math word problems (reasoning)",
            max_tokens=512,
            shots=0,
            cot=True,
            task_args=(("fewshot", "0"),),
        ),
    ],
    "code": [
        _bench(
            "humaneval",
            "inspect_evals/humaneval",
            "Python function synthesis, unit-test graded",
            max_tokens=512,
            runs_code=True,
        ),
        _bench(
            "mbpp",
            "inspect_evals/mbpp",
            "basic Python programming problems, unit-test graded",
            max_tokens=512,
            runs_code=True,
        ),
        _bench(
            "apps",
            "inspect_evals/apps",
            "competitive-programming problems (harder code)",
            max_tokens=1024,
            runs_code=True,
        ),
    ],
    "math": [
        _bench(
            "gsm8k",
            "inspect_evals/gsm8k",
            "grade-school math word problems",
            max_tokens=512,
            cot=True,
            task_args=(("fewshot", "0"),),
        ),
        _bench(
            "math",
            "inspect_evals/math",
            "competition mathematics (MATH)",
            max_tokens=1024,
            cot=True,
        ),
    ],
    "agent": [
        _bench("bfcl", "inspect_evals/bfcl", "function/tool calling accuracy", max_tokens=512),
        _bench(
            "gaia",
            "inspect_evals/gaia",
            "multi-step assistant tasks with tools",
            max_tokens=1024,
            limit=20,
        ),
        _bench(
            "assistant_bench",
            "inspect_evals/assistant_bench_closed_book_zero_shot",
            "realistic web-assistant tasks (closed book, zero-shot)",
            max_tokens=1024,
            limit=20,
        ),
    ],
}

# Layer 3: how the user's own task is graded, and what the training layer's data is called.
PRODUCT_GRADER = {
    "chat": "llm_judge",
    "code": "exact",
    "math": "numeric",
    "agent": "normalized_exact",
}
NLL_DESCRIPTION = {
    "chat": "NLL on held-out chats",
    "code": "NLL on held-out code-instruction pairs",
    "math": "NLL on held-out math SFT data",
    "agent": "NLL on held-out tool-use traces",
}
PRODUCT_DESCRIPTION = {
    "chat": "custom QA on your held-out prompts, judged by an LLM",
    "code": "repo-specific tasks from your held-out data, exact match",
    "math": "domain problems from your held-out data, exact final answer",
    "agent": "end-to-end journeys from your held-out data, exact outcome",
}


def build_eval_suite(
    use_case: str, *, name: str, nll_data: str | None, product_data: str | None
) -> EvalSuite:
    """The suite for a use case; `nll_data` (conversations) and `product_data` ({"input","output"})
    are project-relative paths, omitted layers when None."""
    tasks: list[EvalTask] = []
    if nll_data:
        tasks.append(
            EvalTask(
                name="val_nll",
                layer="training",
                kind="nll",
                data=nll_data,
                description=NLL_DESCRIPTION[use_case],
                headline_metric="nll",
            )
        )
    for bench in BENCHMARKS[use_case]:
        tasks.append(
            EvalTask(
                name=bench.name,
                layer="benchmark",
                kind="inspect",
                inspect_task=bench.inspect_task,
                task_version=INSPECT_EVALS_VERSION,
                description=bench.measures,
                settings=bench.settings,
            )
        )
    if product_data:
        grader = PRODUCT_GRADER[use_case]
        tasks.append(
            EvalTask(
                name="product",
                layer="product",
                kind="jsonl",
                data=product_data,
                description=PRODUCT_DESCRIPTION[use_case],
                grader=grader,
                settings=EvalSettings(max_tokens=256, temperature=0.0),
            )
        )
    tasks.append(
        EvalTask(
            name="safety",
            layer="safety",
            kind="safety",
            description="jailbreak resilience, harmful-request refusal, over-refusal",
            headline_metric="refusal_rate",
        )
    )
    # Brier is the headline: a proper scoring rule that decomposes per question, so the gate can
    # pair two models question by question; ECE has no per-question form (it is judged by its CI).
    tasks.append(
        EvalTask(
            name="calibration",
            layer="calibration",
            kind="calibration",
            description="Brier score, expected calibration error, over/under-confidence",
            headline_metric="brier",
        )
    )
    return EvalSuite(name=name, tasks=tasks)


def benchmark_for(use_case: str, task_name: str) -> Benchmark | None:
    return next((b for b in BENCHMARKS.get(use_case, []) if b.name == task_name), None)
