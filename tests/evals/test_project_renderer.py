"""A project's renderer (chief.toml `renderer`) is the chat format its base model is trained and
evaluated in: `chief eval`, the Inspect provider and the run's own samplers render that model's
prompts with it, and other models keep their own.

Against the session's real engine (tiny-random-llama, whose own renderer is `chatml`). The
project picks `qwen3_disable_thinking`, the realistic case (a Qwen3 project trained without a
thinking block), which renders ChatML plus `<think>\\n\\n</think>\\n\\n` after the assistant header:
so every sampled prompt is exactly that suffix's tokens longer, and the engine's prefill counts
show which renderer chief used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinker_chief.models import RendererChoice, get_renderer, load_tokenizer

from cli_support import assert_one_line_error, init_math_project
from cli_support import run_chief as chief

TINY = "tiny-random-llama"
PROJECT_RENDERER = "qwen3_disable_thinking"


def _suffix_tokens() -> int:
    """How many tokens longer a generation prompt is under the project's renderer."""
    tokenizer = load_tokenizer(TINY)
    prompt = [{"role": "user", "content": "What is 1 plus 2?"}]
    lengths = [
        len(get_renderer(name, tokenizer).build_generation_prompt(prompt).to_ints())  # type: ignore[arg-type]
        for name in ("chatml", PROJECT_RENDERER)
    ]
    assert lengths[1] > lengths[0]
    return lengths[1] - lengths[0]


def _eval(project: Path, engine) -> dict[str, dict]:
    result = chief(
        "eval", TINY, "-p", str(project), "--task", "product", "--task", "val_nll",
        "--base-url", engine.base_url, "--json", cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {task["task"]: task for task in json.loads(result.stdout)["tasks"]}


def test_chief_eval_renders_the_base_model_with_the_projects_renderer(engine, tmp_path):
    project = init_math_project(tmp_path)
    config = project / "chief.toml"
    assert 'renderer = "chatml"' in config.read_text()
    own = _eval(project, engine)

    config.write_text(
        config.read_text().replace('renderer = "chatml"', f'renderer = "{PROJECT_RENDERER}"')
    )
    chosen = _eval(project, engine)

    # Another chat format is another eval: nothing is reused from the first one's cache.
    assert not chosen["product"]["reused_task"] and chosen["product"]["reused_samples"] == 0
    product = [task["tokens"]["prefill/tokens"] for task in (own["product"], chosen["product"])]
    samples = own["product"]["ran_samples"]
    assert samples > 0 and product[1] - product[0] == samples * _suffix_tokens()
    # Held-out NLL scores the conversations as the project renders them (as training's does).
    nll = [task["tokens"]["prefill/tokens"] for task in (own["val_nll"], chosen["val_nll"])]
    assert nll[1] != nll[0]
    assert own["val_nll"]["metrics"] != chosen["val_nll"]["metrics"]


@pytest.mark.parametrize(
    ("model_args", "longer"),
    [
        ({}, False),
        ({"renderer": PROJECT_RENDERER, "renderer_for": TINY}, True),
        ({"renderer": PROJECT_RENDERER}, True),  # no base named: this model, whatever its base
        ({"renderer": PROJECT_RENDERER, "renderer_for": "Qwen/Qwen3-8B"}, False),
    ],
)
def test_the_inspect_provider_takes_the_renderer_as_model_args(
    engine, qa_file, tmp_path, model_args, longer
):
    from inspect_ai import eval as inspect_eval

    from tinker_chief.evals.inspect_tasks import jsonl_task

    def prompt_tokens(args: dict[str, str]) -> list[int]:
        (log,) = inspect_eval(
            jsonl_task(data=str(qa_file), scorer="includes"),
            model=f"tinker/{TINY}",
            model_base_url=engine.base_url,
            model_args=args,
            log_dir=str(tmp_path / "logs"),
            display="none",
            max_tokens=2,
            temperature=0.0,
        )
        assert log.status == "success", log.error
        return [sample.output.usage.input_tokens for sample in sorted(log.samples, key=str)]

    own, chosen = prompt_tokens({}), prompt_tokens(model_args)
    suffix = _suffix_tokens() if longer else 0
    assert chosen == [tokens + suffix for tokens in own]


def test_the_provider_refuses_renderer_for_without_a_renderer():
    from tinker_chief.errors import EvalError
    from tinker_chief.evals.inspect_provider import TinkerModelAPI

    with pytest.raises(EvalError, match="renderer_for needs -M renderer"):
        TinkerModelAPI(f"tinker/{TINY}", renderer_for=TINY)


def test_the_choice_applies_to_its_base_model_only():
    choice = RendererChoice(PROJECT_RENDERER, TINY)
    assert choice.name_for(TINY) == PROJECT_RENDERER
    assert choice.name_for("SmolLM2-135M-Instruct-Q4_1") == "chatml"  # that model's own
    assert RendererChoice(PROJECT_RENDERER).name_for("SmolLM2-135M-Instruct-Q4_1") == (
        PROJECT_RENDERER
    )
    assert RendererChoice("chatml", TINY).is_models_own()
    assert not choice.is_models_own()


def test_a_training_run_samples_its_base_model_with_the_projects_renderer(tmp_path):
    """The run renders its training data and its inline sampled evals with the project's
    renderer (an `llm_judge` on the base model takes the same `spec.renderer_choice`)."""
    from tinker_chief.planning import load_project
    from tinker_chief.training.from_project import spec_from_project
    from tinker_chief.training.session import evaluator_builders, prepare

    project = init_math_project(tmp_path)
    config = project / "chief.toml"
    text = config.read_text().replace('renderer = "chatml"', f'renderer = "{PROJECT_RENDERER}"')
    config.write_text(text.replace("sampled_every_steps = 0", "sampled_every_steps = 5"))
    spec = spec_from_project(load_project(project))
    assert spec.renderer_choice == RendererChoice(PROJECT_RENDERER, TINY)
    prepared = prepare(spec, project)
    prompt = [{"role": "user", "content": "What is 1 plus 2?"}]
    expected = get_renderer(PROJECT_RENDERER, load_tokenizer(TINY))
    rendered = prepared.renderer.build_generation_prompt(prompt)  # type: ignore[arg-type]
    assert rendered.to_ints() == expected.build_generation_prompt(prompt).to_ints()  # type: ignore[arg-type]
    _frequent, infrequent = evaluator_builders(prepared)
    assert infrequent, "the sampled inline eval is on"
    assert all(builder().renderer == spec.renderer_choice for builder in infrequent)


def test_a_renderer_name_the_cookbook_does_not_know_is_one_error_line(tmp_path):
    project = init_math_project(tmp_path)
    config = project / "chief.toml"
    config.write_text(
        config.read_text().replace('renderer = "chatml"', 'renderer = "qwen3-nothink"')
    )
    assert_one_line_error(
        chief("plan", "-p", str(project)),
        "renderer 'qwen3-nothink' is not one of tinker-cookbook's renderers",
        "chief.toml's `renderer`",
    )


def test_eval_offline_takes_the_renderer_the_checkpoint_was_trained_with(engine, qa_file, tmp_path):
    def run(*renderer: str) -> dict:
        result = chief(
            "eval-offline", "--base-model", TINY, "--data", str(qa_file), "--max-tokens", "2",
            "--base-url", engine.base_url, "-o", str(tmp_path / "-".join(renderer or ["own"])),
            "--json", *renderer,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    own, chosen = run(), run("--renderer", PROJECT_RENDERER)
    assert (own["renderer"], chosen["renderer"]) == ("chatml", PROJECT_RENDERER)
    prefill = [summary["tokens"]["prefill/tokens"] for summary in (own, chosen)]
    assert prefill[1] - prefill[0] == own["total"] * _suffix_tokens()
