"""The exception hierarchy every capability raises.

`ChiefError` is the root: the CLI turns any `ChiefError` into a one-line `Error: ...` and a
non-zero exit, never a traceback. Each category also inherits the stdlib class it stands in
for (a bad config is a `ValueError`, a missing model a `LookupError`), so callers that catch
the stdlib class keep working. Messages must name the file, line, field and what was expected
whenever the error is about user input, and must never contain secrets.
"""

from __future__ import annotations


class ChiefError(Exception):
    """Root of every error `chief` reports to a user."""

    exit_code: int = 1


class ConfigurationError(ChiefError, ValueError):
    """A project config, CLI flag or setting is invalid."""


class DataError(ChiefError, ValueError):
    """A data file (JSONL, dataset) is missing or malformed."""


class ModelNotFoundError(ChiefError, LookupError):
    """A model name, path or `tinker://` reference does not resolve."""


class EngineError(ChiefError, RuntimeError):
    """The local engine failed to start, or refused a request."""


class TrainingError(ChiefError, RuntimeError):
    """A training run cannot start or continue."""


class EvalError(ChiefError, RuntimeError):
    """An evaluation could not be run or read back."""


class RegistryError(ChiefError, RuntimeError):
    """The model registry is missing, corrupt, too new, or refused a change."""


class ExportError(ChiefError, RuntimeError):
    """A version could not be exported, verified or published (`chief export`, `chief publish`)."""


class PromotionRejected(RegistryError):
    """The promotion gate refused a model; `reasons` lists every failing rule."""

    exit_code = 3

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])

    def __reduce__(self):  # keep picklable across process pools
        return (type(self), (self.args[0], self.reasons))
