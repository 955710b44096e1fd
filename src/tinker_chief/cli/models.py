"""`chief models`: the models chief can use, one row each (the listing lives in `models.lineup`)."""

from __future__ import annotations

from collections.abc import Mapping

import click

from tinker_chief.cli.options import json_option, print_json, trust_remote_code_option


@click.group("models", invoke_without_command=True)
@json_option
@click.pass_context
def models_command(ctx: click.Context, as_json: bool) -> None:
    """List every model chief can plan and train: the built-ins and Tinker's lineup.

    Each row says where the model runs (embedded, a local directory, the local HF cache or
    Tinker's cloud), its renderer, hidden size, LoRA parameters per unit of rank
    (attention / MLP / unembedding), the learning-rate rule, its price per million tokens
    trained / sampled / prefilled at the dated price table (`price` in --json) and whether its
    weights are here.
    Any other hub id (org/name) works too, planned from its config.json and tokenizer; `chief
    models fetch ID` puts those in the local Hugging Face cache for offline use.
    """
    if ctx.invoked_subcommand is not None:
        return
    from tinker_chief.models.listing import list_models
    from tinker_chief.planning.estimates import price_of

    rows = list_models()
    prices = {
        row.name: price_of(row.name) for row in rows
    }  # $/M tokens from the dated price table, or None
    if as_json:
        print_json(
            {"models": [{**row.as_dict(), "price": prices[row.name]} for row in rows]}, indent=2
        )
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Models ({len(rows)})")
    dated = next((p for p in prices.values() if p), None)
    price_column = (
        f"$/M train / sample / prefill ({dated['as_of']})"
        if dated
        else "$/M train / sample / prefill"
    )
    for column in (
        "model",
        "runs on",
        "renderer",
        "hidden",
        "LoRA/rank attn / mlp / unembed",
        "LR rule",
        price_column,
        "weights",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        lora = (
            " / ".join(f"{row.lora_per_rank[k]:,}" for k in ("attn", "mlp", "unembed"))
            if row.lora_per_rank
            else "from config.json"
        )
        table.add_row(
            escape(row.name),
            escape(row.runs_on),
            escape(row.renderer or "—"),
            f"{row.hidden_size:,}" if row.hidden_size else "—",
            lora,
            escape(row.lr_rule),
            _price(prices[row.name]),
            "here" if row.weights_here else "cloud only",
        )
    Console(width=200).print(table)


def _price(price: Mapping[str, object] | None) -> str:
    if price is None:
        return "no known price"
    return " / ".join(
        "—" if price[k] is None else f"{price[k]:g}" for k in ("train", "sample", "prefill")
    )


@models_command.command("fetch")
@click.argument("model")
@trust_remote_code_option
@json_option
def fetch_command(model: str, trust_remote_code: bool, as_json: bool) -> None:
    """Download a hub model's config.json and tokenizer files (never its weights).

    They go into the local Hugging Face cache, from which `chief init` and `chief plan` read
    them offline. Any hub id (org/name) works, Tinker's lineup included; it asks the hub again
    even when the files are cached, so a changed tokenizer is refreshed. Nothing is written
    unless every file passes chief's checks (sizes, names, content) within CHIEF_HUB_TIMEOUT
    seconds (default 120).

    \b
    Example:
      chief models fetch Qwen/Qwen3-8B
    """
    from tinker_chief.errors import ConfigurationError
    from tinker_chief.models import hub, lineup

    name = lineup.lineup_name(model) or model.strip()
    if not hub.is_repo_id(name):
        raise ConfigurationError(
            f"chief models fetch {model}: expected a Hugging Face hub id (org/name)"
        )

    def progress(line: str) -> None:
        click.echo(line, err=True)

    files = hub.fetch(name, progress=progress, trust_remote_code=trust_remote_code)
    if as_json:
        print_json({"model": name, "files": list(files.names), "directory": str(files.directory)})
        return
    click.echo(f"{name}: {len(files.names)} files ({', '.join(files.names)}) in {files.directory}")
