"""From a `chief.toml` project to a run: the `TrainSpec` it implies and its registry sink.

`spec_from_project` is a pure mapping of the planner's `ProjectConfig` fields (each already
decided and justified by the plan) onto the loop's `TrainSpec`. `RegistrySink` registers every
checkpoint as a version of the project's model with lineage: the run id, the step, the
config hash, and each data file's sha256.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.errors import ConfigurationError
from tinker_chief.files import sha256_file
from tinker_chief.planning import Project
from tinker_chief.runfiles import TRACKER_LINKS
from tinker_chief.training.runlog import CheckpointRecord, RunLog
from tinker_chief.training.spec import TrainSpec

if TYPE_CHECKING:
    from tinker_chief.connection import Connection
    from tinker_chief.registry import Usage
    from tinker_chief.training.data import Prepared
    from tinker_chief.training.loop import SinkFactory


def spec_from_project(project: Project) -> TrainSpec:
    """The project's run: its chief.toml sections as they are, with the sampled inline eval's data
    resolved from the suite task it names. Config mistakes name the file and field."""
    c = project.config
    if c.recipe == "distill" and not c.distill.teacher_prompt:
        raise ConfigurationError(
            f'{project.config_path}: field "distill.teacher_prompt": expected the teacher\'s '
            'system prompt (recipe = "distill" trains the student to answer as the teacher does '
            "with it)"
        )
    sampled_data = None
    if c.inline_evals.sampled_task:
        try:
            sampled_data = c.eval_suite.task(c.inline_evals.sampled_task).data
        except KeyError:
            raise ConfigurationError(
                f'{project.config_path}: field "inline_evals.sampled_task": expected a task of '
                f"the eval suite ({', '.join(t.name for t in c.eval_suite.tasks)}), "
                f"got {c.inline_evals.sampled_task!r}"
            ) from None
    return TrainSpec.from_config(c, sampled_eval_data=sampled_data)


class RegistrySink:
    """Registers each checkpoint as a new version of `name` (status `candidate`); `extra_config`
    (a sweep's id and grid point) is stored in each version's config next to the spec."""

    def __init__(
        self,
        registry_path: Path,
        name: str,
        spec: TrainSpec,
        project_dir: Path,
        log: RunLog,
        backend: str,
        examples: int,
        extra_config: Mapping[str, object] | None = None,
    ) -> None:
        from tinker_chief.registry import DataFile, DataSummary

        self.registry_path, self.name, self.spec, self.log, self.backend = (
            registry_path,
            name,
            spec,
            log,
            backend,
        )
        self.extra_config = extra_config or {}
        files = tuple(
            DataFile(
                str(p.relative_to(project_dir)) if p.is_relative_to(project_dir) else str(p),
                sha256_file(p),
                examples if i == 0 else None,
            )
            for i, p in enumerate(spec.data_paths(project_dir))
            if p.exists()
        )
        self.data = DataSummary(files=files, examples=examples)

    def _usage(self, up_to_step: int) -> Usage:
        from tinker_chief.registry import Usage

        spent = self.log.usage(up_to_step)
        return Usage(
            train_tokens=int(spent["train/tokens"]),
            prefill_tokens=int(spent["prefill/tokens"]),
            sample_tokens=int(spent["sample/tokens"]),
            machine_seconds=round(spent["time/step_s"] + spent["time/eval_s"], 3),
        )

    def register(self, record: CheckpointRecord, final: bool) -> str | None:
        from tinker_chief.registry import LoraSpec, Registry

        s = self.spec
        usage = self._usage(record.step)
        config: dict[str, object] = {
            **s.model_dump(mode="json"),
            **self.extra_config,
            "state_path": record.state_path,
            "engine_run_id": record.training_run_id,
            "final": final,
        }
        trackers = self.log.status().get(TRACKER_LINKS)
        if trackers:  # the run's mirror in experiment trackers (`--track`), so evals can join it
            config[TRACKER_LINKS] = trackers
        with Registry.open(self.registry_path) as registry:
            model = registry.register_model(
                self.name,
                base_model=s.base_model,
                backend=self.backend,
                recipe=s.recipe,
                tinker_path=record.sampler_path,
                display_name=f"{self.name} {self.log.run_id} step {record.step}",
                lora=LoraSpec(
                    s.lora.rank, s.lora.train_mlp, s.lora.train_attn, s.lora.train_unembed
                ),
                optimizer={
                    "name": "adamw",
                    "lr": s.optimizer.learning_rate,
                    "schedule": s.schedule.lr_schedule,
                    "warmup_steps": s.schedule.warmup_steps,
                    "batch_size": s.batch_size,
                },
                data=self.data,
                training_run_id=self.log.run_id,
                training_step=record.step,
                config=config,
                config_hash=s.config_hash(),
                usage=usage,
            )
            registry.record_run_usage(self.log.run_id, s.base_model, usage)
            if s.checkpoints.ttl_days:  # the TTL the loop saved the checkpoint with
                expires = datetime.now(UTC) + timedelta(days=s.checkpoints.ttl_days)
                registry.set_weights_expiry(
                    model.ref, expires, reason="new checkpoint ([checkpoints] ttl_days)"
                )
        return model.ref

    def record_run(self, session_ids: list[str], backend: str) -> None:
        """At the end of the run (however it ended): its whole count, and the SDK sessions it used,
        attributed to it (`run:<run id>`) for `chief cost`."""
        from tinker_chief.registry import Registry

        with Registry.open(self.registry_path) as registry:
            registry.record_run_usage(self.log.run_id, self.spec.base_model, self._usage(2**62))
            for session_id in session_ids:
                registry.record_session(
                    session_id, backend=backend, command="train", scope=f"run:{self.log.run_id}"
                )


def registry_sink_factory(
    project: Project, extra_config: Mapping[str, object] | None = None
) -> SinkFactory:
    """A `sink_factory` for `training.session.train` that registers into the project's registry."""

    def factory(log: RunLog, prepared: Prepared, connection: Connection) -> RegistrySink:
        return RegistrySink(
            project.registry_path,
            project.config.name,
            prepared.spec,
            project.root,
            log,
            connection.kind,
            len(prepared.train_items),
            extra_config,
        )

    return factory
