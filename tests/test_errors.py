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
