"""The opened project: what every command that works on a project gets its pieces from.

One object, `Workspace`, owns a project's `chief.toml` (read and validated by `planning`), its
`.chief/` paths down to each run's files (`paths`: `ProjectPaths`, `RunPaths`, `SweepPaths`),
its registry by the one precedence (`--registry` > `$CHIEF_REGISTRY` > chief.toml's `registry`
> `.chief/registry.db`) and its connection (the backend precedence of `connection` with the
project's `[backend]` applied, an engine started here keeping its state in `.chief/engine`).
A `Workspace` is a `planning.Project`, so it goes wherever a project does. Imports `planning`,
`registry` and `connection`; `training`, the `workflows` and the CLI import it.

    workspace = Workspace.open("my-project", registry=None)
    workspace.paths.run("run-1").metrics            # .chief/runs/run-1/metrics.jsonl
    with workspace.open_registry() as registry: ...
    with workspace.connect(workspace.backend_choice(backend, base_url)) as connection: ...
"""

from tinker_chief.workspace.opened import Workspace, connect_at, registry_location

__all__ = ["Workspace", "connect_at", "registry_location"]
