"""`chief engine serve` and `chief engine export`: thin wrappers over `engine.server`.

`serve` is the engine's own command (`engine.server.command`), the one `python -m
tinker_chief.engine.server` runs too, so the two share every flag.
"""

from __future__ import annotations

from pathlib import Path

import click

from tinker_chief.cli.options import json_option, print_json
from tinker_chief.engine.server.command import STATE_DIR_HELP, serve_command
from tinker_chief.paths import ENGINE_STATE


@click.group(name="engine")
def engine_group() -> None:
    """The local Tinker-compatible engine (LoRA training and sampling on this machine)."""


engine_group.add_command(serve_command)


@engine_group.command("export")
@click.argument("tinker_path")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--merged", is_flag=True, help="Merge into the base model (a plain Hugging Face model directory).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=ENGINE_STATE, help=STATE_DIR_HELP)
@json_option
def export_command(tinker_path: str, out_dir: Path, merged: bool, state_dir: Path, as_json: bool) -> None:
    """Write TINKER_PATH (tinker://<run>/<weights|sampler_weights>/<name>) to OUT_DIR.

    Without --merged: a PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
    """
    from tinker_chief.engine.server.checkpoint_export import export_checkpoint

    written = export_checkpoint(tinker_path, out_dir, merged=merged, state_dir=state_dir)
    kind = "merged Hugging Face model" if merged else "PEFT adapter"
    if as_json:
        print_json({"tinker_path": tinker_path, "kind": "merged" if merged else "adapter", "directory": str(written)})
        return
    click.echo(f"Wrote {kind} for {tinker_path} to {written}")
