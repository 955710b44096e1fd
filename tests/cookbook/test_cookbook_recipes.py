"""The cookbook's own recipes, unmodified, against the session's engine (tiny-random-llama).

Each recipe runs with its default configuration apart from sizes (steps, batch, rank, and a
learning rate a two-layer random model can learn from in a few steps), checkpoint TTLs at
their defaults included, and each test asserts what the recipe wrote: metrics.jsonl rows,
checkpoints.jsonl `tinker://` paths the engine lists (periodic ones expiring after the
default 7 days, final ones kept), and what the final checkpoint samples. The cookbook sees
our model only by name (`model_name="tiny-random-llama"`), loading its tokenizer through
`transformers` from the Hugging Face cache, and renders with its own `qwen3_instruct`
renderer (the ChatML that chief registers as `chatml`).
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import tinker

from jsonl_support import read_jsonl, write_jsonl

TINY = "tiny-random-llama"
RENDERER = "qwen3_instruct"
DEFAULT_TTL = timedelta(seconds=604800)  # the recipes' default ttl_seconds for periodic checkpoints
ANSWER = "7"
INSPECT_TASK = f'''
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def secret():
    samples = [Sample(input=f"Secret number {{i}}?", target="{ANSWER}") for i in (3, 5)]
    return Task(dataset=MemoryDataset(samples, name="secret"), solver=generate(), scorer=includes())
'''


@pytest.fixture(scope="module")
def cookbook_env(engine):
    """What a cookbook user exports: the engine's URL and a key (the SDK requires one)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINKER_BASE_URL", engine.base_url)
        patch.setenv("TINKER_API_KEY", engine.api_key_for_clients)
        yield engine


@pytest.fixture(scope="module")
def rest(cookbook_env) -> tinker.RestClient:
    return tinker.RestClient(
        base_url=cookbook_env.base_url, api_key=cookbook_env.api_key_for_clients
    )


@pytest.fixture(scope="module")
def sl_run(cookbook_env, tmp_path_factory) -> Path:
    """`supervised.train.main`: chat SFT from a conversation file; 14 steps of batch 8."""
    from tinker_cookbook.supervised import train
    from tinker_cookbook.supervised.data import FromConversationFileBuilder
    from tinker_cookbook.supervised.types import ChatDatasetBuilderCommonConfig

    root = tmp_path_factory.mktemp("cookbook-sl")
    data = write_jsonl(
        root / "conversations.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": f"Secret number {i}?"},
                    {"role": "assistant", "content": ANSWER},
                ]
            }
            for i in range(64)
        ],
    )
    common = ChatDatasetBuilderCommonConfig(
        model_name_for_tokenizer=TINY, renderer_name=RENDERER, max_length=None, batch_size=8
    )
    dataset = FromConversationFileBuilder(common_config=common, file_path=str(data), test_size=8)
    config = train.Config(
        log_path=str(root / "log"),
        model_name=TINY,
        recipe_name="chief_test_sl",
        renderer_name=RENDERER,
        dataset_builder=dataset,
        learning_rate=1e-2,
        num_epochs=2,
        base_url=cookbook_env.base_url,
        save_every=5,
        eval_every=5,
    )
    asyncio.run(train.main(config))
    return root / "log"


def test_supervised_recipe(sl_run, rest):
    rows = read_jsonl(sl_run / "metrics.jsonl")
    assert [row["step"] for row in rows] == list(range(14))
    assert all(math.isfinite(row["train_mean_nll"]) for row in rows)
    assert rows[-1]["train_mean_nll"] < rows[0]["train_mean_nll"] - 1.0
    evals = [row["test/nll"] for row in rows if "test/nll" in row]  # the held-out conversations
    assert len(evals) >= 2 and evals[-1] < evals[0]
    final = _assert_checkpoints(sl_run, rest, periodic=["000005", "000010"])

    # The final sampler has learned the answer: far likelier than under the base model.
    tokenizer, renderer = _chat(TINY)
    prompt = renderer.build_generation_prompt([{"role": "user", "content": "Secret number 99?"}])
    answer = tokenizer.encode(ANSWER + "<|im_end|>", add_special_tokens=False)
    client = tinker.ServiceClient()
    trained = client.create_sampling_client(model_path=final["sampler_path"]).result()
    base = client.create_sampling_client(base_model=TINY).result()
    assert _answer_logprob(trained, prompt, answer) > _answer_logprob(base, prompt, answer) + 5.0
    # Greedy from the final checkpoint stops at the renderer's stop token or the answer's own
    # first token. 14 steps leave this byte-level model's two answer tokens ("7", then the end
    # of the turn) likely, but in some runs near a tie with each other (p ~ 0.5 each, the train
    # NLL near ln 2), so greedy may give either first, and "7" again after "7": either is the
    # learned answer (about 1 run in 14 failed when only the stop token ended it).
    stops = [*renderer.get_stop_sequences(), answer[0]]
    sample = trained.sample(
        prompt, 1, tinker.SamplingParams(max_tokens=8, temperature=0.0, stop=stops)
    ).result()
    assert sample.sequences[0].stop_reason == "stop"
    assert sample.sequences[0].tokens[0] in answer
    client.close("success").result()


def test_rl_recipe_with_the_arithmetic_environment(cookbook_env, rest, tmp_path):
    from tinker_cookbook.recipes.math_rl.arithmetic_env import ArithmeticDatasetBuilder
    from tinker_cookbook.rl import train

    builder = ArithmeticDatasetBuilder(
        batch_size=2,
        group_size=4,
        model_name_for_tokenizer=TINY,
        renderer_name=RENDERER,
        n_batches=3,
    )
    config = train.Config(
        learning_rate=1e-3,
        dataset_builder=builder,
        model_name=TINY,
        recipe_name="chief_test_rl",
        max_tokens=8,
        log_path=str(tmp_path / "log"),
        renderer_name=RENDERER,
        base_url=cookbook_env.base_url,
        save_every=2,
        lora_rank=8,
    )
    asyncio.run(train.main(config))

    rows = read_jsonl(tmp_path / "log" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert row["env/all/total_episodes"] == 8 and row["env/all/total_ac_tokens"] > 0
        assert -0.1 <= row["env/all/reward/total"] <= 1.0
        # The engine's sampler and trainer agree on the sampled tokens' logprobs.
        assert abs(row["optim/kl_sample_train_v1"]) < 1e-3
    final = _assert_checkpoints(tmp_path / "log", rest, periodic=["000002"])
    sampler = (
        tinker.ServiceClient().create_sampling_client(model_path=final["sampler_path"]).result()
    )
    tokenizer, renderer = _chat(TINY)
    prompt = renderer.build_generation_prompt([{"role": "user", "content": "What is 2 + 3?"}])
    result = sampler.sample(prompt, 2, tinker.SamplingParams(max_tokens=4, seed=1)).result()
    assert len(result.sequences) == 2 and all(1 <= len(s.tokens) <= 4 for s in result.sequences)


def test_dpo_recipe(cookbook_env, rest, tmp_path):
    from tinker_cookbook.preference import train_dpo
    from tinker_cookbook.preference.dpo_datasets import DPODatasetBuilderFromComparisons
    from tinker_cookbook.preference.preference_datasets import ComparisonBuilderFromJsonl
    from tinker_cookbook.supervised.types import ChatDatasetBuilderCommonConfig

    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "comparison": {
                    "prompt_conversation": [{"role": "user", "content": f"Secret number {i}?"}],
                    "completion_A": [{"role": "assistant", "content": ANSWER}],
                    "completion_B": [{"role": "assistant", "content": "I do not know."}],
                },
                "label": "A",
            }
            for i in range(12)
        ],
    )
    common = ChatDatasetBuilderCommonConfig(
        model_name_for_tokenizer=TINY, renderer_name=RENDERER, max_length=None, batch_size=4
    )
    builder = DPODatasetBuilderFromComparisons(
        common_config=common, comparison_builder=ComparisonBuilderFromJsonl(train_path=str(pairs))
    )
    config = train_dpo.Config(
        log_path=str(tmp_path / "log"),
        model_name=TINY,
        recipe_name="chief_test_dpo",
        renderer_name=RENDERER,
        dataset_builder=builder,
        base_url=cookbook_env.base_url,
        save_every=2,
        lora_rank=8,
    )
    train_dpo.main(config)

    rows = read_jsonl(tmp_path / "log" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [0, 1, 2]
    assert (
        abs(rows[0]["dpo_loss"] - math.log(2)) < 1e-4
    )  # policy == reference before the first step
    assert rows[-1]["dpo_loss"] < rows[0]["dpo_loss"] and rows[-1]["margin"] > 0
    _assert_checkpoints(tmp_path / "log", rest, periodic=["000002"])


def test_run_inspect_evals_on_the_sl_checkpoint(sl_run, cookbook_env, tmp_path):
    """The documented command, in a process of its own that never imports chief."""
    final = read_jsonl(sl_run / "checkpoints.jsonl")[-1]["sampler_path"]
    (tmp_path / "secret_task.py").write_text(INSPECT_TASK)
    command = [
        sys.executable,
        "-m",
        "tinker_cookbook.eval.run_inspect_evals",
        f"model_path={final}",
        "tasks=secret_task.py@secret",
        f"log_dir={tmp_path / 'logs'}",
        "max_tokens=8",
        "temperature=0",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]

    from inspect_ai.log import list_eval_logs, read_eval_log

    log = read_eval_log(list_eval_logs(str(tmp_path / "logs"))[0])
    assert log.status == "success" and log.eval.model == f"tinker-sampling/{TINY}"
    # One generation per sample. Its text may be empty: the recipe creates its LoRA client without a
    # seed (the SDK's default), so the init depends on the engine's RNG history, and the tiny random
    # model sometimes ends at once (seen in a full-suite run); what is checked is the round trip.
    assert len(log.samples) == 2 and all(len(s.output.choices) == 1 for s in log.samples)
    assert all(s.output.stop_reason in ("stop", "max_tokens") for s in log.samples)
    assert 0.0 <= log.results.scores[0].metrics["accuracy"].value <= 1.0


def _assert_checkpoints(log_dir: Path, rest: tinker.RestClient, periodic: list[str]) -> dict:
    """checkpoints.jsonl names the periodic and final checkpoints, and the engine lists them all
    with the recipe's TTLs: 7 days for periodic ones, none for the final one.
    Returns the final row."""
    rows = read_jsonl(log_dir / "checkpoints.jsonl")
    assert [row["name"] for row in rows] == [*periodic, "final"]
    run_id = rows[0]["state_path"].removeprefix("tinker://").split("/")[0]
    listed = {c.tinker_path: c for c in rest.list_checkpoints(run_id).result().checkpoints}
    for row in rows:
        for key, kind in (("state_path", "weights"), ("sampler_path", "sampler_weights")):
            assert row[key] == f"tinker://{run_id}/{kind}/{row['name']}" and row[key] in listed
            checkpoint = listed[row[key]]
            if row["name"] == "final":
                assert checkpoint.expires_at is None
            else:
                assert abs(checkpoint.expires_at - checkpoint.time - DEFAULT_TTL) < timedelta(
                    seconds=60
                )
    assert rest.get_training_run(run_id).result().user_metadata["renderer_name"] == RENDERER
    return rows[-1]


def _chat(model: str):
    from tinker_cookbook import renderers
    from tinker_cookbook.tokenizer_utils import get_tokenizer

    tokenizer = get_tokenizer(model)
    return tokenizer, renderers.get_renderer(RENDERER, tokenizer)


def _answer_logprob(
    client: tinker.SamplingClient, prompt: tinker.ModelInput, answer: list[int]
) -> float:
    full = tinker.ModelInput.from_ints(prompt.to_ints() + answer)
    return sum(client.compute_logprobs(full).result()[-len(answer) :])
