"""Public benchmarks offline: Inspect tasks built from locally staged files in each dataset's schema.

Inspect Evals tasks load their data from the Hugging Face hub (pinned revisions), which is not
reachable here. chief therefore stages benchmark data as local JSONL files, one row per line in
the hub dataset's own schema, at `<project>/.chief/benchmarks/<name>.jsonl` (or
`$CHIEF_BENCHMARK_DIR/<name>.jsonl`), and builds the equivalent Inspect task from them with
Inspect's own solvers and scorers (recipe 3 of reference/inspect-ai-offline.md §4). Code tasks
(HumanEval, MBPP) run the model's code in chief's bubblewrap sandbox, never Inspect's `local`
sandbox. Task versions are `chief-offline-1@<file hash>` so results on other data never compare.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspect_ai import Task
from inspect_ai.dataset import Sample, json_dataset
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Scorer, Target, accuracy, choice, match, scorer, stderr
from inspect_ai.solver import TaskState, generate, multiple_choice, prompt_template

from tinker_chief.errors import EvalError
from tinker_chief.evals.inspect_tasks import file_version
from tinker_chief.evals.suite import OFFLINE_BENCHMARKS, EvalTask

BUILDER_VERSION = "chief-offline-1"
MATH_TEMPLATE = ("Solve the following math problem step by step. The last line of your response should be "
                 "of the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer.\n\n{prompt}")
CODE_TEMPLATE = ("Complete the following Python function. Reply with the complete function in a single "
                 "```python code block.\n\n{prompt}")


def _gsm8k(record: dict[str, Any]) -> Sample:
    return Sample(input=record["question"], target=record["answer"].split("####")[-1].strip().replace(",", ""))


def _mmlu(record: dict[str, Any]) -> Sample:
    return Sample(input=record["question"], choices=list(record["choices"]), target="ABCDEFGHIJ"[int(record["answer"])],
                  metadata={"subject": record.get("subject")})


def _arc(record: dict[str, Any]) -> Sample:
    labels = list(record["choices"]["label"])
    return Sample(input=record["question"], choices=list(record["choices"]["text"]),
                  target="ABCDEFGHIJ"[labels.index(record["answerKey"])])


def _hellaswag(record: dict[str, Any]) -> Sample:
    return Sample(input=f"Choose the most plausible continuation.\n{record['ctx']}", choices=list(record["endings"]),
                  target="ABCD"[int(record["label"])])


def _humaneval(record: dict[str, Any]) -> Sample:
    return Sample(id=record["task_id"], input=record["prompt"], target=record["canonical_solution"],
                  metadata={"test": record["test"], "entry_point": record["entry_point"], "prompt": record["prompt"]})


def _mbpp(record: dict[str, Any]) -> Sample:
    text = record.get("prompt") or record["text"]
    tests = list(record["test_list"])
    return Sample(id=str(record["task_id"]), input=f"{text}\nYour code should pass these tests:\n" + "\n".join(tests),
                  target=record["code"], metadata={"tests": tests})


def extract_code(completion: str) -> str:
    blocks = re.findall(r"```(?:python|py)?\n(.*?)```", completion, re.DOTALL)
    return blocks[0] if blocks else completion


@scorer(metrics=[accuracy(), stderr()])
def sandboxed_tests(kind: str, timeout_s: float = 10.0) -> Scorer:
    """Run the completion against the sample's tests in chief's sandbox; pass iff exit code 0."""
    from tinker_chief.evals.sandbox import SandboxLimits, run_python

    async def score(state: TaskState, target: Target) -> Score:
        import anyio

        code = extract_code(state.output.completion)
        meta = state.metadata
        if kind == "humaneval":
            if f"def {meta['entry_point']}" not in code:
                code = meta["prompt"] + code
            program = f"{code}\n\n{meta['test']}\n\ncheck({meta['entry_point']})\n"
        else:
            program = code + "\n\n" + "\n".join(meta["tests"]) + "\n"
        result = await anyio.to_thread.run_sync(lambda: run_python(program, limits=SandboxLimits(timeout_s=timeout_s)))
        explanation = "timed out" if result.timed_out else result.stderr[-500:]
        return Score(value=CORRECT if result.ok else INCORRECT, answer=code[:2000], explanation=explanation)

    return score


def _mc_task(name: str, record_to_sample: Callable[[dict[str, Any]], Sample]) -> Callable[[Path], Task]:
    def build(path: Path) -> Task:
        return Task(dataset=json_dataset(str(path), record_to_sample), solver=multiple_choice(), scorer=choice(),
                    name=name, version=f"{BUILDER_VERSION}@{file_version(path)}")
    return build


def _gsm8k_task(path: Path) -> Task:
    return Task(dataset=json_dataset(str(path), _gsm8k), solver=[prompt_template(MATH_TEMPLATE), generate()],
                scorer=match(numeric=True), name="gsm8k", version=f"{BUILDER_VERSION}@{file_version(path)}")


def _code_task(name: str, record_to_sample: Callable[[dict[str, Any]], Sample],
               template: str) -> Callable[[Path], Task]:
    def build(path: Path) -> Task:
        return Task(dataset=json_dataset(str(path), record_to_sample), solver=[prompt_template(template), generate()],
                    scorer=sandboxed_tests(name), name=name, version=f"{BUILDER_VERSION}@{file_version(path)}")
    return build


# inspect_evals task name -> (staged file stem, builder). Schemas are the hub datasets' rows.
_BUILD: dict[str, Callable[[Path], Task]] = {
    "gsm8k": _gsm8k_task,
    "mmlu_0_shot": _mc_task("mmlu_0_shot", _mmlu),
    "arc_easy": _mc_task("arc_easy", _arc),
    "arc_challenge": _mc_task("arc_challenge", _arc),
    "hellaswag": _mc_task("hellaswag", _hellaswag),
    "humaneval": _code_task("humaneval", _humaneval, "{prompt}"),
    "mbpp": _code_task("mbpp", _mbpp, CODE_TEMPLATE.replace("function", "program")),
}
BUILDERS: dict[str, tuple[str, Callable[[Path], Task]]] = {
    name: (stem, _BUILD[name]) for name, stem in OFFLINE_BENCHMARKS.items()
}


def staged_path(stem: str, project_dir: Path) -> Path | None:
    for root in (os.environ.get("CHIEF_BENCHMARK_DIR"), str(project_dir / ".chief" / "benchmarks")):
        if root and (Path(root) / f"{stem}.jsonl").is_file():
            return Path(root) / f"{stem}.jsonl"
    return None


def inspect_task_for(task: EvalTask, project_dir: Path) -> tuple[Any, dict[str, Any], str | None]:
    """(task to pass to inspect eval, task args, sandbox) for a suite task of kind `inspect`."""
    ref = task.inspect_task or ""
    name = ref.removeprefix("inspect_evals/")
    if name in BUILDERS:
        stem, build = BUILDERS[name]
        path = staged_path(stem, project_dir)
        if path is not None:
            return build(path), {}, None
        raise EvalError(
            f"benchmark `{ref}` needs its data offline: stage rows in the {name} hub schema at "
            f"{project_dir / '.chief' / 'benchmarks' / (stem + '.jsonl')} (or $CHIEF_BENCHMARK_DIR/{stem}.jsonl)")
    if ref.startswith("inspect_evals/"):
        raise EvalError(f"benchmark `{ref}` has no offline builder in chief (supported: "
                        f"{', '.join('inspect_evals/' + n for n in BUILDERS)}); it needs network access or "
                        "a pre-populated Hugging Face datasets cache")
    task_args = {"data": str(project_dir / task.data)} if task.data else {}
    return ref, task_args, None


def _offline_task(name: str) -> Callable[..., Task]:
    stem, build = BUILDERS[name]

    def offline(data: str | None = None) -> Task:
        path = Path(data) if data else staged_path(stem, Path.cwd())
        if path is None or not path.is_file():
            raise EvalError(f"`tinker_chief/{name}` needs staged data: -T data=FILE.jsonl, or "
                            f".chief/benchmarks/{stem}.jsonl / $CHIEF_BENCHMARK_DIR/{stem}.jsonl")
        return build(path)

    offline.__name__ = name
    offline.__doc__ = f"{name} from locally staged rows in the hub dataset's schema (offline)."
    return offline


def register_offline_tasks() -> None:
    """Register `tinker_chief/<name>` Inspect tasks (called from the entry-point module)."""
    from inspect_ai import task

    for name in BUILDERS:
        task(name=name)(_offline_task(name))
