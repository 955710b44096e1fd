"""`chief export` and `chief publish`: parse, call `tinker_chief.publish`, print.

`--json` prints exactly one JSON object on stdout (progress stays off stdout), so scripts and CI
can read where the export went, its weight hashes and the round-trip check's numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tinker_chief.cli.options import F, backend_options, json_option, project_option

if TYPE_CHECKING:  # imported lazily at run time so `chief --help` stays fast
    from tinker_chief.publish import ExportResult


def _merged_option(function: F) -> F:
    return click.option(
        "--merged",
        is_flag=True,
        help="A full Hugging Face model (the adapter merged into the base's weights, float32 "
        "safetensors) for servers that take no adapters, instead of a PEFT adapter directory.",
    )(function)


def _print(result: ExportResult, as_json: bool, lines: list[str]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), sort_keys=True) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for line in lines:
        console.print(escape(line), soft_wrap=True)


def _check_line(result: ExportResult) -> str:
    rt, peft = result.roundtrip, " + PEFT" if result.format == "adapter" else ""
    return (
        f"round-trip check passed: plain transformers{peft} match the serving backend within "
        f"{rt.max_abs_diff:.3g}, mean {rt.mean_abs_diff:.3g} (tolerance {rt.tolerance:g}, mean "
        f"{rt.mean_tolerance:g}, {rt.precision}) "
        f"on {rt.canaries} canary prompt(s); differs from the base by {rt.adapter_effect:.3g}"
    )


@click.command(name="export")
@click.argument("model")
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write it: a new or empty directory [default: <project>/exports/<name>-v<N>].",
)
@_merged_option
@project_option
@backend_options
@json_option
def export_command(
    model: str,
    out_dir: Path | None,
    merged: bool,
    project_dir: Path,
    backend: str | None,
    base_url: str | None,
    as_json: bool,
) -> None:
    """Export a registry version (name, name:vN or tinker:// path) as a verified model directory.

    Default: a standard PEFT adapter directory (adapter_config.json naming the base by its hub
    id, adapter_model.safetensors, tokenizer and chat template, README.md model card) that
    PeftModel.from_pretrained loads with no chief code. The weights come down through the SDK
    from the backend that trained it (chosen as for `chief eval`). Before the directory appears,
    a separate process loads it with plain transformers + PEFT and must reproduce the serving
    backend's next-token log-probs on canary prompts; a failed check exits 1 and leaves
    nothing. The registry records the directory, the weights' sha256 and the check's result.

    \b
    Examples:
      chief export support-bot:v3
      chief export support-bot --dir ./bot-adapter --json
      chief export support-bot:v3 --merged --dir ./bot-merged
    """
    from tinker_chief.planning import load_project
    from tinker_chief.publish import export_model

    project = load_project(project_dir)
    result = export_model(
        project, model, out_dir=out_dir, merged=merged, backend=backend, base_url=base_url
    )
    kind = "merged Hugging Face model" if merged else "PEFT adapter"
    lines = [
        f"exported {result.record.ref} as a {kind} to {result.directory}",
        _check_line(result),
        *(f"  {name}  sha256 {digest}" for name, digest in result.digests.items()),
        f"recorded in the registry (export #{result.export.id}); publish it with "
        f"`chief publish {result.record.ref} --repo ORG/NAME`",
    ]
    _print(result, as_json, lines)


@click.command(name="publish")
@click.argument("model")
@click.option("--repo", required=True, help="The Hugging Face repository to push to, ORG/NAME.")
@click.option(
    "--private/--public",
    default=True,
    show_default=True,
    help="Visibility of a repository created now (an existing one keeps its own).",
)
@_merged_option
@click.option(
    "--force", is_flag=True, help="Publish a candidate or retired version (needs --reason)."
)
@click.option("--reason", default="", help="Why it is forced; recorded in the audit log.")
@project_option
@backend_options
@json_option
def publish_command(
    model: str,
    repo: str,
    private: bool,
    merged: bool,
    force: bool,
    reason: str,
    project_dir: Path,
    backend: str | None,
    base_url: str | None,
    as_json: bool,
) -> None:
    """Export MODEL (verified, as `chief export` does) and push it to the Hugging Face hub.

    Only staging and prod versions publish unless --force --reason TEXT. Needs `license` in
    chief.toml and a token with write access (HF_TOKEN or `hf auth login`; never printed or
    stored). Creates the repository if it is missing (private by default) and commits the whole
    export in one commit; publishing again after new evals updates the card in a new commit.
    The registry records the repo, commit and URL with an audit row.

    \b
    Examples:
      chief publish support-bot --repo my-org/support-bot
      chief publish support-bot:v3 --repo my-org/support-bot-merged --merged --public
    """
    from tinker_chief.planning import load_project
    from tinker_chief.publish import publish_model

    project = load_project(project_dir)
    result = publish_model(
        project,
        model,
        repo,
        private=private,
        merged=merged,
        force=force,
        reason=reason,
        backend=backend,
        base_url=base_url,
    )
    pushed = result.pushed
    assert pushed is not None  # publish_model always pushes
    lines = [
        f"published {result.record.ref} to {pushed.repo_url} in commit {pushed.commit_sha[:12]}",
        f"commit: {pushed.commit_url}",
        _check_line(result),
        f"recorded in the registry (export #{result.export.id})",
    ]
    _print(result, as_json, lines)
