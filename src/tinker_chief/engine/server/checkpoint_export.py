"""`chief engine export`: a saved `tinker://` checkpoint as a PEFT adapter or merged HF model.

Resolves the path in the engine's state directory (no running engine needed) and delegates
the file work to the compute side's `export_adapter` / `export_merged`, which know the
adapter format they wrote.
"""

from __future__ import annotations

from pathlib import Path

from tinker_chief.engine.server.store import CheckpointStore
from tinker_chief.paths import ENGINE_STATE


def export_checkpoint(tinker_path: str, out_dir: Path, *, merged: bool = False, state_dir: Path = ENGINE_STATE) -> Path:
    """Write the checkpoint to `out_dir` (must be absent or empty); returns `out_dir`."""
    store = CheckpointStore(Path(state_dir))
    record, directory = store.resolve(tinker_path)  # before importing torch: bad paths fail fast
    from tinker_chief.engine.compute import export_adapter, export_merged

    if merged:
        export_merged(directory, store.get_run(record.run_id).base_model, Path(out_dir))
    else:
        export_adapter(directory, Path(out_dir))
    return Path(out_dir)
