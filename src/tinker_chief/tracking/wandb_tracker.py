"""Weights & Biases: one W&B run per chief run, a sweep's runs in one W&B group, offline unless
W&B is logged in or `$WANDB_MODE` says otherwise (the run directories are then under
`.chief/tracking/wandb`; `wandb sync` uploads them later).

Each run is a `wandb.init(reinit="create_new")` run object: a sweep trains its points in
threads at once, and the cookbook's `ml_log.WandbLogger` logs through the module-level
`wandb.log` / `wandb.finish` (the latest run only) and cannot pass a group, an entity or a run
id to resume. `WandbRun` keeps the cookbook logger's interface and URL, and logs through its
own run. W&B drops a step lower than the run's current one, so results for an earlier
checkpoint (`chief eval` of version N) are logged at the run's current step and into its summary.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from tinker_cookbook.utils.ml_log import WandbLogger

from tinker_chief.tracking.contract import Cell, EndStatus, RunLink
from tinker_chief.tracking.target import TrackingTarget

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

_EXIT_CODE = {"finished": 0, "interrupted": 1, "stopped": 1, "failed": 1}


def _logged_in() -> bool:
    """W&B has a key: `$WANDB_API_KEY`, or `wandb login`'s entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbTracker:
    name = "wandb"

    def __init__(self, target: TrackingTarget) -> None:
        self.target = target
        # Local-first: without a key or an explicit mode, never prompt for a login; log offline.
        self.mode: Literal["offline"] | None = (
            None if os.environ.get("WANDB_MODE") or _logged_in() else "offline"
        )
        self.dir = target.local_dir
        self.dir.mkdir(parents=True, exist_ok=True)

    def _init(
        self, name: str, config: dict[str, str] | None, group: str | None, run_id: str | None
    ) -> WandbRun:
        import wandb

        run = wandb.init(
            project=self.target.project,
            entity=self.target.entity,
            name=name,
            group=group,
            id=run_id,
            resume="allow" if run_id else None,
            config=config,
            dir=str(self.dir),
            mode=self.mode,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
        )
        link = RunLink(
            "wandb",
            run.id,
            name,
            url=run.url,
            where=run.dir,
            project=self.target.project,
            group=group,
        )
        return WandbRun(run, link)

    def start_run(
        self,
        name: str,
        params: dict[str, str],
        *,
        group: RunLink | None = None,
        resume: RunLink | None = None,
    ) -> WandbRun:
        if resume is not None:
            return self._init(resume.name, None, resume.group, resume.run_id)
        return self._init(name, params, group.name if group else None, None)

    def start_group(
        self, name: str, params: dict[str, str], *, resume: RunLink | None = None
    ) -> RunLink:
        return RunLink("wandb", name, name, project=self.target.project, group=name)

    def attach(self, link: RunLink) -> WandbRun:
        return self._init(link.name, None, link.group, link.run_id)

    def group_run(self, group: RunLink) -> None:
        return None


class WandbRun(WandbLogger):
    def __init__(self, run: Run, link: RunLink) -> None:
        # Not the cookbook's __init__ (see the module docstring); `get_logger_url` is its own.
        self.run, self.link = run, link

    def log_hparams(self, config: object) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_params(self, params: dict[str, str]) -> None:
        self.log_hparams(params)

    def log_metrics(self, metrics: Mapping[str, object], step: int | None = None) -> None:
        if step is not None and step < self.run.step:
            self.run.summary.update(dict(metrics))
            self.run.log(dict(metrics))
        else:
            self.run.log(dict(metrics), step=step)

    def log_table(
        self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], step: int
    ) -> None:
        import wandb

        table = wandb.Table(columns=list(columns), data=[list(row) for row in rows])
        self.log_metrics({key: table}, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.run.summary.update(tags)

    def close(self) -> None:
        self.run.finish()

    def finish(self, status: EndStatus) -> None:
        self.run.finish(exit_code=_EXIT_CODE[status])
