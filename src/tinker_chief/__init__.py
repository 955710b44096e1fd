"""tinker-chief: a chief officer for LLM post-training.

`chief` plans LoRA fine-tunes by a written doctrine, runs them through the official `tinker`
SDK (on Tinker's cloud or on the built-in local engine), evaluates every checkpoint in three
layers and keeps a registry that refuses to ship a worse model.

Subpackages, one per capability (see docs/ARCHITECTURE.md): `models` (the catalog shared by
all), `engine` (the local Tinker-compatible server), `planning`, `training`, `evals`,
`registry`, `connection` (where models are reached), `workspace` (the opened project),
`workflows` (what a command does across capabilities, `chief demo` included), `spend`,
`tracking`, `reports`, `playground`, `publish` and `cli`. This package re-exports only the
shared leaves every part raises or exits with: the `ChiefError` hierarchy, the
`ChiefDeprecation` warning and the `ExitCode` table (and `__version__`), so importing it loads
no capability.
"""

from tinker_chief.errors import (
    ChiefDeprecation,
    ChiefError,
    ConfigurationError,
    DataError,
    EngineError,
    EvalError,
    ExportError,
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
    "ChiefDeprecation",
    "ChiefError",
    "ConfigurationError",
    "DataError",
    "EngineError",
    "EvalError",
    "ExitCode",
    "ExportError",
    "ModelNotFoundError",
    "PromotionRejected",
    "RegistryError",
    "RunStopped",
    "TrainingError",
    "__version__",
]
