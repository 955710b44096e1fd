"""Leaving the registry: `chief export` and `chief publish`.

Owns what happens to a registry version once it leaves the project: its weights brought down
from the backend that trained it through the SDK (`weights.py`), written as a standard PEFT
adapter directory or a merged Hugging Face model (`layout.py`, `models.merge`), verified by a
round-trip check in a separate process that loads it with plain transformers + PEFT
(`roundtrip.py`, `_load_check.py`), described by a Hugging Face model card with the registry's
eval results (`card.py`), pushed to the hub in one commit (`hub_push.py`), and recorded in the
registry with an audit row (`exporting.py`). It imports registry, models, connection, planning and
reports (the learning-curve chart); nothing imports it but the CLI.

    from tinker_chief.planning import load_project
    from tinker_chief.publish import export_model, publish_model
    project = load_project(".")
    done = export_model(project, "support-bot:v3", out_dir=Path("exports/bot"))   # verified
    done = publish_model(project, "support-bot:v3", "my-org/support-bot")        # private repo
"""

from tinker_chief.publish.exporting import ExportResult, default_dir, export_model, publish_model

__all__ = ["ExportResult", "default_dir", "export_model", "publish_model"]
