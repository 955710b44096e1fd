"""The exception hierarchy every capability raises.

`ChiefError` is the root: the CLI turns any `ChiefError` into a one-line `Error: ...` and a
non-zero exit (its `exit_code`, from the one table in `exit_codes.py`), never a traceback. Each
category also inherits the stdlib class it stands in for (a bad config is a `ValueError`, a
missing model a `LookupError`), so callers that catch the stdlib class keep working. Messages
must name the file, line, field and what was expected whenever the error is about user input,
and never contain secrets: a `ChiefError` replaces key-looking text in its message and reasons
(`redaction.py`) as it is made, so even a value quoted back never carries a key. An error that
is several findings at once (every invalid field of a config, every failing gate rule) carries
them as `reasons`, which the CLI lists under its one line.
"""

from __future__ import annotations

from collections.abc import Iterable

from tinker_chief.exit_codes import ExitCode
from tinker_chief.redaction import scrub_text


class ChiefError(Exception):
    """Root of every error `chief` reports to a user; `reasons` lists its findings, if several."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, *args: object, reasons: Iterable[str] = ()) -> None:
        # Messages quote what the user gave; a key given in the wrong place must not travel on.
        super().__init__(*(scrub_text(arg) if isinstance(arg, str) else arg for arg in args))
        # An attribute, not an argument, so pickling (process pools) keeps it: Exception
        # pickles `args` and the instance's `__dict__`.
        self.reasons = [scrub_text(str(reason)) for reason in reasons]


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


class RunStopped(TrainingError):
    """The recipe stopped a run by its own rule (RL: no learning signal); it saved a checkpoint
    and `--resume` continues it, so scripts get their own exit code rather than an error's."""

    exit_code = ExitCode.STOPPED


class EvalError(ChiefError, RuntimeError):
    """An evaluation could not be run or read back."""


class RegistryError(ChiefError, RuntimeError):
    """The model registry is missing, corrupt, too new, or refused a change."""


class ExportError(ChiefError, RuntimeError):
    """A version could not be exported, verified or published (`chief export`, `chief publish`)."""


class PromotionRejected(RegistryError):
    """The promotion gate refused a model; `reasons` lists every failing rule."""

    exit_code = ExitCode.GATE_REFUSED

    def __init__(self, message: str, reasons: Iterable[str] = ()) -> None:
        super().__init__(message, reasons=reasons)


class ChiefDeprecation(FutureWarning):
    """An old spelling chief still reads (a renamed `chief.toml` key or flag), until the next
    release; the CLI prints it as one `Note: ...` line on stderr. A `FutureWarning`, the category
    Python shows to end users by default."""
