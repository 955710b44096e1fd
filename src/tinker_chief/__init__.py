"""tinker-chief: a chief officer for LLM post-training.

`chief` plans LoRA fine-tunes by a written doctrine, runs them through the official `tinker`
SDK (on Tinker's cloud or on the built-in local engine), evaluates every checkpoint in three
layers and keeps a registry that refuses to ship a worse model.

Subpackages, one per capability (see docs/ARCHITECTURE.md):
`models` (catalog shared by all), `engine` (local Tinker-compatible server), `planning`,
`training`, `evals`, `registry`, `reports`, `connection` (where models are reached), `demo`
(`chief demo` as a library), `cli`.
"""

from tinker_chief.errors import (
    ChiefError,
    ConfigurationError,
    DataError,
    EngineError,
    EvalError,
    ModelNotFoundError,
    PromotionRejected,
    RegistryError,
    RunStopped,
    TrainingError,
)
from tinker_chief.exit_codes import ExitCode

# The one place the version is written: pyproject.toml reads it (`[tool.setuptools.dynamic]`).
__version__ = "0.1.0"

__all__ = [
    "ChiefError",
    "ConfigurationError",
    "DataError",
    "EngineError",
    "EvalError",
    "ExitCode",
    "ModelNotFoundError",
    "PromotionRejected",
    "RegistryError",
    "RunStopped",
    "TrainingError",
    "__version__",
]
