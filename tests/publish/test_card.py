"""The model card of an export, from a real registry: `huggingface_hub.ModelCard` parses its front
matter back with the eval results of a published benchmark (hub dataset, config, split and the
revision `chief eval` recorded), `.eval_results/<task>.yaml` holds the hub's newer format,
stored text (a promotion's reason) cannot add markup to the card, and the version's
experiment-tracker runs are named (linked when they are on the web; never a local path)."""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import ModelCard

from tinker_chief.publish import card
from tinker_chief.publish.layout import BaseModel
from tinker_chief.publish.roundtrip import RoundTrip
from tinker_chief.registry import MetricValue, Registry

REVISION = "e53f048856ff4f594e959d75785d2c2d37b678ee"
GSM8K = {
    "inspect_task": "inspect_evals/gsm8k",
    "task_version": "1.0.0",
    "dataset": [
        {
            "path": "openai/gsm8k",
            "name": "main",
            "split": "test",
            "revision": REVISION,
            "origin": "staged",
        }
    ],
}


def facts(tmp_path: Path, config: dict[str, object] | None = None) -> card.CardFacts:
    with Registry.open(tmp_path / "registry.db") as registry:
        base = registry.register_model(
            "base/tiny-random-llama", base_model="tiny-random-llama", recipe="base"
        )
        model = registry.register_model(
            "bot",
            base_model="tiny-random-llama",
            tinker_path="tinker://run-1/sampler_weights/final",
            config=config,
        )
        for ref, value in ((base.ref, 0.25), (model.ref, 0.5)):
            registry.record_eval(
                ref,
                suite_name="s",
                suite_version="v1",
                task="gsm8k",
                metrics=[MetricValue("accuracy", value, value - 0.1, value + 0.1, 200)],
                settings=GSM8K,
                headline_metric="accuracy",
            )
        registry.promote(model.ref, "staging", reason="<img src=x onerror=alert(1)> *bold*")
        record = registry.get_model(model.ref)
        return card.CardFacts(
            record=record,
            base=BaseModel(
                "tiny-random-llama",
                "tinker-chief/tiny-random-llama",
                "tinker-chief/tiny-random-llama",
                None,
                True,
                "llama",
            ),
            export_format="adapter",
            roundtrip=RoundTrip(1e-6, 1e-3, 1e-7, 1e-3, "float32", 0.5, 4, 100, "fixed prompts"),
            digests={"adapter_model.safetensors": "0" * 64},
            project_name="p",
            use_case="math",
            license="mit",
            results=registry.latest_results(record.ref),
            base_results=registry.latest_results(base.ref),
            base_ref=base.ref,
            history=registry.status_history(record.ref),
            promotions=[e for e in registry.audit_log() if e.command == "promote"],
            cost="1 token",
            plan={},
            curve_png=None,
            repo="org/bot",
        )


def test_front_matter_parses_back_with_the_benchmark_results(tmp_path):
    parsed = ModelCard(card.render(facts(tmp_path)))
    data = parsed.data
    assert (data.base_model, data.library_name, data.license) == (
        "tinker-chief/tiny-random-llama",
        "peft",
        "mit",
    )
    assert data.tags == ["tinker-chief", "lora", "math"] and data.model_name == "bot"
    (result,) = data.eval_results
    assert (result.task_name, result.metric_type, result.metric_value) == ("gsm8k", "accuracy", 0.5)
    assert (result.dataset_type, result.dataset_name) == ("openai/gsm8k", "inspect_evals/gsm8k")
    assert (result.dataset_config, result.dataset_split, result.dataset_revision) == (
        "main",
        "test",
        REVISION,
    )
    row = next(line for line in parsed.text.splitlines() if line.startswith("| gsm8k | accuracy |"))
    assert row.split(" | ")[2:6] == ["0.5", "[0.4, 0.6]", "200", "0.25"]  # value, CI, n, the base's


def test_eval_results_files_name_the_hub_dataset_and_revision(tmp_path):
    files = card.eval_result_files(facts(tmp_path))
    assert list(files) == ["gsm8k.yaml"]
    (entry,) = yaml.safe_load(files["gsm8k.yaml"])
    assert entry["dataset"] == {"id": "openai/gsm8k", "task_id": "gsm8k", "revision": REVISION}
    assert entry["value"] == 0.5 and "n=200" in entry["notes"]


def test_stored_text_cannot_add_markup(tmp_path):
    text = card.render(facts(tmp_path))
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt; \\*bold\\*" in text


def test_the_card_names_the_versions_tracker_runs_and_links_only_web_pages(tmp_path):
    trackers = {
        "wandb": {
            "backend": "wandb",
            "run_id": "ab12cd",
            "name": "lr1x-r4 run-1",
            "url": "https://wandb.ai/team/bot/runs/ab12cd",
            "project": "bot",
        },
        "mlflow": {
            "backend": "mlflow",
            "run_id": "9f00",
            "name": "run-1",
            "where": "sqlite:////home/someone/bot/.chief/tracking/mlflow.db",
            "project": "1",
        },
        "trackio": {
            "backend": "trackio",
            "run_id": "77",
            "name": "run-1",
            "url": "https://example.org/x)(javascript:alert(1)",
            "project": "bot",
        },
    }
    lines = card.render(facts(tmp_path, {"trackers": trackers})).splitlines()
    tracked = [line for line in lines if line.startswith("- experiment tracker: ")]
    assert sorted(line.removeprefix("- experiment tracker: ") for line in tracked) == [
        "[wandb run `lr1x-r4 run-1` (`ab12cd`)](https://wandb.ai/team/bot/runs/ab12cd)",
        "mlflow run `run-1` (`9f00`) in experiment `1`",
        "trackio run `run-1` (`77`) in project `bot`",
    ]
    assert "/home/someone" not in "\n".join(lines)
