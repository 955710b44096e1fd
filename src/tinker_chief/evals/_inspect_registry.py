"""Inspect AI entry point (`[project.entry-points.inspect_ai]`): the `tinker` provider and chief tasks.

Tasks: `tinker_chief/jsonl_task` (project JSONL) and `tinker_chief/<benchmark>` for each offline
benchmark builder (gsm8k, mmlu_0_shot, arc_easy, arc_challenge, hellaswag, humaneval, mbpp).

Kept import-light: the provider class (SDK, renderers) loads only when `tinker/...` is used.
"""

from inspect_ai.model import modelapi


@modelapi(name="tinker")
def tinker():  # noqa: ANN201 - Inspect's registry convention
    from tinker_chief.evals.inspect_provider import TinkerModelAPI

    return TinkerModelAPI


from tinker_chief.evals.benchmarks import register_offline_tasks  # noqa: E402
from tinker_chief.evals.inspect_tasks import jsonl_task  # noqa: E402,F401  (registers the @task)

register_offline_tasks()
