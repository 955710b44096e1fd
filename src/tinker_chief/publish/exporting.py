"""`export_model` and `publish_model`: a registry version out of the registry, verified, recorded.

Both run the same steps, cheapest checks first so bad input fails before any work: the version
(known, with a saved training state), the destination (`--dir` new or empty; for publish: status
staging or prod unless forced with a reason, a `license` in chief.toml, a repo id, a hub token),
then the backend's scores of the canary prompts, the weights down through the SDK
(`publish.weights`), the layout (`publish.layout`), the round-trip check in a separate process
(`publish.roundtrip`) and the card (`publish.card`). Everything is written into a staging
directory beside the destination and renamed into place only once the check passed, so a failure
leaves no directory behind; the registry row (and its audit row) is written last, in one
transaction. `publish_model` builds the export in a temporary directory and pushes it in one
commit (`publish.hub_push`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinker_chief.errors import ConfigurationError, ExportError
from tinker_chief.publish import card, hub_push, layout, roundtrip, weights
from tinker_chief.registry import Export, ModelRecord, Registry
from tinker_chief.workspace import Workspace

if TYPE_CHECKING:
    from tinker_chief.connection import Connection
    from tinker_chief.planning import Project

PUBLISHABLE = ("staging", "prod")


@dataclass(frozen=True)
class ExportResult:
    """A verified export and its registry row (`export.location`: the directory or the repo)."""

    record: ModelRecord
    format: str
    roundtrip: roundtrip.RoundTrip
    digests: dict[str, str]
    base_hub_id: str | None
    export: Export
    directory: Path | None = None  # `chief export`
    pushed: hub_push.Pushed | None = None  # `chief publish`

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.record.ref,
            "format": self.format,
            "directory": str(self.directory) if self.directory else None,
            "repo": self.pushed.repo if self.pushed else None,
            "commit": self.pushed.commit_sha if self.pushed else None,
            "url": self.pushed.commit_url if self.pushed else None,
            "base_model": self.base_hub_id,
            "weights": self.digests,
            "roundtrip": self.roundtrip.to_dict(),
            "registry_export_id": self.export.id,
        }


def default_dir(project: Project, record: ModelRecord, merged: bool) -> Path:
    """`<project>/exports/<name>-v<N>` (`-merged` for a merged model)."""
    return (
        project.root / "exports" / f"{record.name}-v{record.version}{'-merged' if merged else ''}"
    )


def export_model(
    project: Project,
    model_ref: str,
    *,
    out_dir: Path | None = None,
    merged: bool = False,
    backend: str | None = None,
    base_url: str | None = None,
    connection: Connection | None = None,
    actor: str | None = None,
) -> ExportResult:
    """Export `model_ref` of `project` (a `planning.Project`) to `out_dir` (default `default_dir`),
    verified, and record it. Raises a `ChiefError` with nothing written on any failure."""
    with Registry.open(project.registry_path, create=False) as registry:
        record = registry.get_model(model_ref)
        weights.state_path_of(record)
        target = Path(out_dir) if out_dir is not None else default_dir(project, record, merged)
        _check_destination(target)
        export_format = "merged" if merged else "adapter"
        with (
            Workspace.of(project).connected(
                connection, backend=backend, base_url=base_url, models=[record.base_model]
            ) as conn,
            _staging(target) as staging,
        ):
            built = _build(project, registry, record, conn, staging, merged)
            _move_into_place(staging, target)
            try:
                row = registry.record_export(
                    record.ref,
                    format=export_format,
                    target="dir",
                    location=str(target.resolve()),
                    weights=built.digests,
                    max_abs_diff=built.roundtrip.max_abs_diff,
                    tolerance=built.roundtrip.tolerance,
                    details=_details(built),
                    actor=actor,
                )
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)  # not recorded: not kept
                raise
    return ExportResult(
        record, export_format, built.roundtrip, built.digests, built.base.hub_id, row, target
    )


def publish_model(
    project: Project,
    model_ref: str,
    repo: str,
    *,
    private: bool = True,
    merged: bool = False,
    force: bool = False,
    reason: str = "",
    backend: str | None = None,
    base_url: str | None = None,
    connection: Connection | None = None,
    actor: str | None = None,
) -> ExportResult:
    """Export `model_ref` (verified, with its card) and push it to the hub repository `repo` in one
    commit; only staging and prod versions unless `force` with a `reason`. Records the repo,
    commit and URL. Raises a `ChiefError` with the registry unchanged on any failure."""
    hub_push.check_repo_id(repo)
    if force and not reason.strip():
        raise ConfigurationError("--force needs --reason TEXT (recorded in the audit log)")
    if not project.config.license:
        raise ConfigurationError(
            f'{project.config_path}: field "license": expected the license of what you publish, '
            'a Hugging Face license id (e.g. license = "apache-2.0"); a model card without one '
            "cannot be published"
        )
    with Registry.open(project.registry_path, create=False) as registry:
        record = registry.get_model(model_ref)
        if record.status not in PUBLISHABLE and not force:
            raise ExportError(
                f"{record.ref} is {record.status}: only staging or prod versions are published "
                f"(promote it through the gate with `chief promote {record.ref} --to staging`, or "
                "pass --force --reason TEXT)"
            )
        weights.state_path_of(record)
        hub_push.token_or_error()
        export_format = "merged" if merged else "adapter"
        with (
            Workspace.of(project).connected(
                connection, backend=backend, base_url=base_url, models=[record.base_model]
            ) as conn,
            tempfile.TemporaryDirectory(prefix="chief-publish-") as scratch,
        ):
            folder = Path(scratch) / "export"
            folder.mkdir()
            built = _build(project, registry, record, conn, folder, merged, repo)
            message = f"{record.ref} ({export_format}) from tinker-chief: round-trip max abs diff "
            pushed = hub_push.push(
                folder,
                repo,
                private=private,
                message=message + f"{built.roundtrip.max_abs_diff:.3g}",
            )
        details = {
            **_details(built),
            "repo_url": pushed.repo_url,
            "created_private": pushed.private,
        }
        if force:
            details.update({"forced": True, "reason": reason, "status": record.status})
        row = registry.record_export(
            record.ref,
            format=export_format,
            target="hub",
            location=repo,
            commit_sha=pushed.commit_sha,
            url=pushed.commit_url,
            weights=built.digests,
            max_abs_diff=built.roundtrip.max_abs_diff,
            tolerance=built.roundtrip.tolerance,
            details=details,
            actor=actor,
        )
    return ExportResult(
        record, export_format, built.roundtrip, built.digests, built.base.hub_id, row, pushed=pushed
    )


# ------------------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class _Built:
    base: layout.BaseModel
    roundtrip: roundtrip.RoundTrip
    digests: dict[str, str]


def _build(
    project: Project,
    registry: Registry,
    record: ModelRecord,
    connection: Connection,
    out: Path,
    merged: bool,
    repo: str | None = None,
) -> _Built:
    """The export in the existing, empty `out`: layout, check, card."""
    from tinker_chief.models import get_renderer, load_tokenizer

    base = layout.resolve_base(record.base_model)
    if base.weights_dir is None:
        raise ExportError(
            f"cannot verify an export of {record.ref}: its base {base.name} has no weights on this "
            "machine (it runs on Tinker's cloud), and the round-trip check loads it; put its "
            f"weights in the Hugging Face cache (`hf download {base.name}`) and export again"
        )
    assert record.tinker_path is not None  # weights.state_path_of passed: a trained version
    renderer_name = record.config.get("renderer") or project.config.renderer
    canaries = roundtrip.canary_prompts(
        project, get_renderer(renderer_name, load_tokenizer(base.name))
    )
    served = roundtrip.served_logprobs(connection, record.tinker_path, canaries)
    export_format = "merged" if merged else "adapter"
    with tempfile.TemporaryDirectory(prefix=".chief-download-", dir=out.parent) as scratch:
        downloaded = Path(scratch) / "download"
        downloaded.mkdir()
        weights.download_adapter(connection, record, downloaded)
        adapter_dir = Path(scratch) / "adapter" if merged else out
        adapter_dir.mkdir(exist_ok=True)
        layout.write_adapter_dir(downloaded, adapter_dir, base)
        if merged:
            layout.write_merged_dir(adapter_dir, out, base)
    checked = roundtrip.check_export(
        out,
        export_format,
        str(base.weights_dir),
        canaries,
        served,
        connection.engine_precision,
        record.ref,
    )
    digests = layout.weight_digests(out)
    card.write_card(
        out, card.gather(project, registry, record, base, export_format, checked, digests, repo)
    )
    return _Built(base, checked, digests)


def _details(built: _Built) -> dict[str, object]:
    rt = built.roundtrip
    return {
        "base_model": built.base.hub_id,
        "precision": rt.precision,
        "mean_abs_diff": rt.mean_abs_diff,
        "mean_tolerance": rt.mean_tolerance,
        "adapter_effect": rt.adapter_effect,
        "canaries": rt.canaries,
        "canary_tokens": rt.tokens,
    }


def _check_destination(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise ExportError(
            f"{target}: exists and is not a directory; expected a new or empty directory"
        )
    if target.is_dir() and any(target.iterdir()):
        raise ExportError(
            f"{target}: exists and is not empty; choose a new --dir (nothing was written)"
        )


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A fresh directory beside `target` (same file system, so the final rename is atomic); it and
    any parent directories made for it are removed again unless `_move_into_place` took it."""
    made = [p for p in [*reversed(target.parents)] if not p.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
        staging.mkdir()
    except OSError as exc:
        _remove_empty(made)
        raise ExportError(
            f"{target}: cannot create the export directory ({exc.strerror or exc})"
        ) from None
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists():
            _remove_empty(made)
        raise


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished export onto `target` (absent, or an empty directory it replaces)."""
    try:
        os.rename(staging, target)
    except OSError as exc:
        raise ExportError(
            f"{target}: cannot move the export into place ({exc.strerror or exc})"
        ) from None


def _remove_empty(directories: list[Path]) -> None:
    for directory in reversed(directories):
        with contextlib.suppress(OSError):
            directory.rmdir()
