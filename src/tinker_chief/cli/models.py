"""`chief models`: the models chief can use, one row each (the listing lives in `models.lineup`)."""

from __future__ import annotations

import json
import sys

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def models_command(as_json: bool) -> None:
    """List every model chief can plan and train: the built-ins and Tinker's lineup.

    Each row says where the model runs (embedded, a local directory, the local HF cache or
    Tinker's cloud), its renderer, hidden size, LoRA parameters per unit of rank
    (attention / MLP / unembedding), the learning-rate rule and whether its weights are here.
    """
    from tinker_chief.models.lineup import list_models

    rows = list_models()
    if as_json:
        sys.stdout.write(json.dumps({"models": [row.as_dict() for row in rows]}, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Models ({len(rows)})")
    for column in ("model", "runs on", "renderer", "hidden", "LoRA/rank attn / mlp / unembed", "LR rule", "weights"):
        table.add_column(column, overflow="fold")
    for row in rows:
        lora = " / ".join(f"{row.lora_per_rank[k]:,}" for k in ("attn", "mlp", "unembed")) if row.lora_per_rank \
            else "from config.json"
        table.add_row(escape(row.name), escape(row.runs_on), escape(row.renderer or "—"),
                      f"{row.hidden_size:,}" if row.hidden_size else "—", lora, escape(row.lr_rule),
                      "here" if row.weights_here else "cloud only")
    Console(width=200).print(table)
