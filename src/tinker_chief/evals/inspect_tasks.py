"""Inspect tasks built from project JSONL files (`tinker_chief/jsonl_task`).

`inspect eval tinker_chief/jsonl_task -T data=qa.jsonl -T scorer=includes --model tinker/<m>`.
Lines use the same schema as `chief eval-offline` (`eval_samples.py`). Scorers are Inspect's own:
`exact`, `match`, `includes`, `model_graded_qa` (the judge is Inspect's `grader` model role,
e.g. `--model-role grader=tinker/<judge>`). The task version is a hash of the file, so results
on edited data are never mistaken for comparable ones.
"""

from __future__ import annotations

from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import Scorer, exact, includes, match, model_graded_qa
from inspect_ai.solver import generate

from tinker_chief.errors import ConfigurationError
from tinker_chief.evals.eval_samples import EvalSample, load_samples
from tinker_chief.files import sha256_file

SCORERS = {"exact": exact, "match": match, "includes": includes, "model_graded_qa": model_graded_qa}
_MESSAGE_TYPES = {
    "system": ChatMessageSystem,
    "user": ChatMessageUser,
    "assistant": ChatMessageAssistant,
}


def file_version(path: str | Path) -> str:
    return sha256_file(Path(path))[:12]


def to_inspect_sample(sample: EvalSample) -> Sample:
    messages = [_MESSAGE_TYPES[m["role"]](content=m["content"]) for m in sample.messages]
    return Sample(
        id=sample.id, input=messages, target=sample.target, metadata=sample.metadata or None
    )


def make_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ConfigurationError(f"inspect scorer `{name}`: expected one of {', '.join(SCORERS)}")
    return SCORERS[name]()


@task
def jsonl_task(data: str, scorer: str = "includes", name: str | None = None) -> Task:
    """A generate-then-score task over a chief JSONL file."""
    samples = load_samples(data)
    return Task(
        dataset=MemoryDataset(
            [to_inspect_sample(s) for s in samples], name=name or Path(data).stem
        ),
        solver=generate(),
        scorer=make_scorer(scorer),
        name=name or f"jsonl_{Path(data).stem}",
        version=file_version(data),
    )
