"""`reasons` is part of every `ChiefError`: the findings behind one error line, kept when the
error crosses a process pool (pickled) and listed by the CLI under its `Error:` line."""

from __future__ import annotations

import pickle

import pytest

from tinker_chief.errors import ChiefError, ConfigurationError, DataError, PromotionRejected


@pytest.mark.parametrize("error", [ChiefError("x"), DataError("x"), PromotionRejected("x")])
def test_every_chief_error_has_reasons_even_without_any(error):
    assert error.reasons == []


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("chief.toml: 2 invalid fields", reasons=["field `a`", "field `b`"]),
        PromotionRejected("refused", ["regression on `qa/accuracy`", "safety below the minimum"]),
    ],
)
def test_reasons_survive_pickling(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.reasons == error.reasons


def test_the_package_exports_every_error_and_the_deprecation_warning():
    """`tinker_chief` re-exports each exception and warning class of `errors`, so a library user
    can catch any of them from the package itself."""
    import inspect

    import tinker_chief
    from tinker_chief import errors

    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, (ChiefError, Warning))
        and value.__module__ == errors.__name__
    }
    assert defined <= set(tinker_chief.__all__)
    assert all(getattr(tinker_chief, name) is getattr(errors, name) for name in defined)
    assert tinker_chief.__all__ == sorted(tinker_chief.__all__)


def test_an_error_never_carries_a_key_it_quotes():
    """A message or reason that quotes what the user gave (a key pasted where a name belongs)
    has the key replaced as the error is made: library callers, logs and tracebacks see the
    redacted text, and so does a copy from another process."""
    key = "tml-" + "A1b2C3d4E5f6G7h8"
    error = ConfigurationError(
        f"chief.toml: name `{key}` is not a valid name", reasons=[f"field `name`: `{key}`"]
    )
    for copy in (error, pickle.loads(pickle.dumps(error))):
        assert key not in str(copy) and key not in repr(copy) and key not in " ".join(copy.reasons)
        assert "[REDACTED]" in str(copy) and "[REDACTED]" in copy.reasons[0]
        assert "is not a valid name" in str(copy)  # the rest of the message stays
    rejected = PromotionRejected(f"refused {key}", [f"rule {key}"])
    assert key not in str(rejected) and key not in rejected.reasons[0]
