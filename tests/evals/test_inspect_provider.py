"""Provider argument checking and registration (no engine needed: nothing is sampled)."""

from __future__ import annotations

import pytest

from tinker_chief.errors import EvalError


def test_provider_is_registered_under_tinker_and_rejects_unknown_args():
    from inspect_ai.model import get_model

    import tinker_chief.evals._inspect_registry  # noqa: F401

    model = get_model("tinker/tiny-random-llama", concurrency=3, memoize=False)
    assert model.api.max_connections() == 3 and model.api.model_name == "tiny-random-llama"
    with pytest.raises(EvalError, match="unknown model args \\['temprature'\\]"):
        get_model("tinker/tiny-random-llama", temprature=0.5, memoize=False)


def test_tinker_paths_keep_their_scheme():
    from inspect_ai.model import get_model

    import tinker_chief.evals._inspect_registry  # noqa: F401

    model = get_model("tinker/tinker://run-1/sampler_weights/final", memoize=False)
    assert model.api.model_name == "tinker://run-1/sampler_weights/final"
