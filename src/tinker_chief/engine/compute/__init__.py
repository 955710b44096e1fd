"""The compute side of the local engine: LoRA training, scoring and sampling on PyTorch + PEFT.

`TorchBackend(device="auto", dtype="auto")` implements `engine.backend.ComputeBackend`; the
server (`engine/server/`) drives it from one worker thread. `export_merged` and
`export_adapter` turn a saved adapter directory into a merged Hugging Face model or a clean
PEFT adapter directory (in-process: tests, benchmarks).
"""

from tinker_chief.engine.compute.export import export_adapter, export_merged
from tinker_chief.engine.compute.torch_backend import TorchBackend

__all__ = ["TorchBackend", "export_adapter", "export_merged"]
