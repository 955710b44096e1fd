"""Inspect AI entry point (`[project.entry-points.inspect_ai]`): chief's provider, task and sandbox.

`tinker/<model>`: the model provider; `tinker_chief/jsonl_task`: a task over project JSONL;
`chief`: the bubblewrap sandbox environment (`--sandbox chief`).

Kept import-light: the provider class (SDK, renderers) loads only when `tinker/...` is used.
"""

from inspect_ai.model import modelapi


@modelapi(name="tinker")
def tinker():  # noqa: ANN201 - Inspect's registry convention
    from tinker_chief.evals.inspect_provider import TinkerModelAPI

    return TinkerModelAPI


from tinker_chief.evals.inspect_sandbox import ChiefSandboxEnvironment  # noqa: E402,F401  (registers `chief`)
from tinker_chief.evals.inspect_tasks import jsonl_task  # noqa: E402,F401  (registers the @task)
