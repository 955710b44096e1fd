"""`chief export` and `chief publish` end to end: a version trained by `chief train` on the shared
engine is exported as a verified PEFT directory, published to a stand-in hub on 127.0.0.1,
downloaded elsewhere by `snapshot_download` and loaded with plain PEFT in a process that imports
nothing of chief, where it gives the log-probs the engine served to the registry's evals.

The project trains the output embedding of the tiny model, whose embeddings are tied (as
SmolLM2's): the export must load without PEFT's tied-layer warning and merge correctly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.training.conftest import make_project
from tinker_chief.cli.main import cli
from tinker_chief.registry import Registry

from cli_support import assert_one_line_error, run_chief
from hub_support import hub_stand_in, online_env

LICENSE = "apache-2.0"
TOKEN = "hf_standInToken0123456789abcdefghijklmnop"
SUITE = {
    "name": "tiny-suite",
    "tasks": [
        {
            "name": "val_nll",
            "layer": "training",
            "kind": "nll",
            "data": "data/heldout.jsonl",
            "headline_metric": "nll",
        }
    ],
}
SESSION_CACHE = os.environ["HF_HUB_CACHE"]  # tests/conftest.py's: chief registers built-ins there
PROMPTS = [[60, 61, 62, 63, 64, 65, 66, 67], [3, 90, 120, 7, 200, 11, 42, 42, 9]]

# Loads an export as its users will, in `python -I` (no worktree, no PYTHONPATH): PEFT over the
# base the adapter config names, or plain transformers for a merged directory.
LOAD_AND_SCORE = """
import json, sys, warnings
import torch
from transformers import AutoModelForCausalLM
warnings.simplefilter("always")
directory, prompts = sys.argv[1], json.loads(sys.argv[2])
with warnings.catch_warnings(record=True) as caught:
    try:
        config = json.load(open(directory + "/adapter_config.json"))
    except FileNotFoundError:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    else:
        from peft import PeftModel
        base_id = config["base_model_name_or_path"]
        base = AutoModelForCausalLM.from_pretrained(base_id, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, directory)
scores = []
with torch.no_grad():
    for tokens in prompts:
        ids = torch.tensor([tokens])
        logits = model(input_ids=ids).logits[0].float()
        scores.append(torch.log_softmax(logits[:-1], -1).gather(1, ids[0, 1:, None])[:, 0].tolist())
print(json.dumps({
    "scores": scores,
    "warnings": [str(w.message) for w in caught],
    "chief": [name for name in sys.modules if name.startswith("tinker_chief")],
}))
"""
DOWNLOAD = """
import sys
from huggingface_hub import snapshot_download
print(snapshot_download(sys.argv[1], local_dir=sys.argv[2]))
"""


def load_and_score(directory: Path, prompts: list[list[int]] = PROMPTS) -> dict:
    done = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_AND_SCORE, str(directory), json.dumps(prompts)],
        capture_output=True,
        text=True,
        env=_env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env(**changes: str | None) -> dict[str, str]:
    merged = {**os.environ, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def served(
    engine, tinker_path: str | None, prompts: list[list[int]] = PROMPTS
) -> list[list[float]]:
    """What the engine serves for the version (the log-probs its evals were computed from), or
    with no path for the base model itself."""
    import tinker
    from tinker import types

    client = tinker.ServiceClient(base_url=engine.base_url, api_key=engine.api_key_for_clients)
    if tinker_path is None:
        sampler = client.create_sampling_client(base_model="tiny-random-llama").result()
    else:
        sampler = client.create_sampling_client(model_path=tinker_path).result()
    return [
        [float(v) for v in sampler.compute_logprobs(types.ModelInput.from_ints(p)).result()[1:]]
        for p in prompts
    ]


def max_diff(left: list[list[float]], right: list[list[float]]) -> float:
    return max(
        abs(a - b) for x, y in zip(left, right, strict=True) for a, b in zip(x, y, strict=True)
    )


def registry_state(project: Path) -> tuple[dict, int]:
    with Registry.open(
        project / ".chief" / "registry.db", create=False, read_only=True
    ) as registry:
        return registry.export_json(), len(registry.audit_log())


@pytest.fixture(scope="module")
def trained(engine, tmp_path_factory) -> dict:
    """A project trained (unembedding LoRA on tied embeddings), evaluated (version and base model)
    and promoted to staging; its versions are tiny:v1..v3, the base model's record
    base/tiny-random-llama:v1."""
    project = make_project(
        tmp_path_factory.mktemp("publish") / "proj",
        license=LICENSE,
        lora={"rank": 4, "train_unembed": True},
        eval_suite=SUITE,
    )
    where = ("--project", str(project), "--base-url", engine.base_url)
    # Set-up only, so in this process (training and evals have their own `chief` process tests).
    for args in (("train",), ("eval", "tiny:v3"), ("eval", "tiny-random-llama")):
        done = CliRunner().invoke(cli, [*args, *where])
        assert done.exit_code == 0, done.output
    promote = ["promote", "tiny:v3", "--to", "staging", "--project", str(project)]
    promoted = CliRunner().invoke(cli, promote)
    assert promoted.exit_code == 0, promoted.output
    with Registry.open(project / ".chief" / "registry.db", create=False) as registry:
        record = registry.get_model("tiny:v3")
    return {"project": project, "where": where, "record": record}


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> dict:
    """`chief export tiny:v3 --dir DIR --json` run once: the directory and the printed result,
    read by the tests of what an export holds (and copied, never changed, by the check tests)."""
    out = tmp_path_factory.mktemp("exported") / "adapter"
    done = run_chief("export", "tiny:v3", "--dir", str(out), "--json", *trained["where"])
    assert done.returncode == 0, done.stderr
    return {"dir": out, "result": json.loads(done.stdout)}


def test_export_is_a_standard_peft_directory_that_reproduces_the_served_logprobs(
    trained, exported, engine
):
    out, result = exported["dir"], exported["result"]
    assert result["directory"] == str(out) and result["format"] == "adapter"

    config = json.loads((out / "adapter_config.json").read_text())
    assert (
        config["base_model_name_or_path"] == "tinker-chief/tiny-random-llama"
    )  # a hub id, not a path
    assert config["r"] == 4 and config["lora_alpha"] and "q_proj" in config["target_modules"]
    assert config["target_parameters"] == ["lm_head.weight"]  # the unembedding LoRA, tied base
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
        "README.md",
    } <= names
    assert not any(name.startswith("chief_") for name in names)

    loaded = load_and_score(out)
    assert loaded["chief"] == []
    assert not [w for w in loaded["warnings"] if "tie" in w], loaded["warnings"]
    assert max_diff(loaded["scores"], served(engine, trained["record"].tinker_path)) < 1e-4

    with Registry.open(trained["project"] / ".chief" / "registry.db", read_only=True) as registry:
        (row,) = [r for r in registry.exports("tiny:v3") if r.location == str(out.resolve())]
    from tinker_chief.files import sha256_file

    assert (row.target, row.location, row.format) == ("dir", str(out.resolve()), "adapter")
    assert row.weights == {
        "adapter_model.safetensors": sha256_file(out / "adapter_model.safetensors")
    }
    assert row.max_abs_diff == result["roundtrip"]["max_abs_diff"] <= row.tolerance == 1e-3
    assert row.details["adapter_effect"] > 1e-2 and row.details["precision"] == "float32"


def test_merged_export_loads_without_peft_and_keeps_the_base_input_embeddings(
    trained, engine, tmp_path
):
    out = tmp_path / "merged"
    done = run_chief("export", "tiny:v3", "--merged", "--dir", str(out), *trained["where"])
    assert done.returncode == 0, done.stderr
    assert not (out / "adapter_config.json").exists()
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "chat_template.jinja",
    } <= {p.name for p in out.iterdir()}
    loaded = load_and_score(out)
    assert max_diff(loaded["scores"], served(engine, trained["record"].tinker_path)) < 1e-4

    import torch
    from transformers import AutoModelForCausalLM

    from tinker_chief.models import materialize_model

    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(
        str(materialize_model("tiny-random-llama")), dtype=torch.float32
    )
    assert torch.equal(merged.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert not torch.equal(
        merged.get_output_embeddings().weight, base.get_output_embeddings().weight
    )


def test_publish_download_elsewhere_load_with_plain_peft_then_republish(trained, engine, tmp_path):
    from huggingface_hub import ModelCard

    from tinker_chief.registry import MetricValue

    project, record = trained["project"], trained["record"]
    with hub_stand_in({}, token=TOKEN) as hub:
        env = {**online_env(hub, tmp_path / "hub-cache", tmp_path / "home"), "HF_TOKEN": TOKEN}
        env["HF_HUB_CACHE"] = SESSION_CACHE
        publish = ("publish", "tiny:v3", "--repo", "org/tiny-bot", *trained["where"])
        done = run_chief(*publish, "--json", env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert TOKEN not in done.stdout + done.stderr

        assert hub.private == {"org/tiny-bot": True}  # private by default
        (commit,) = hub.commits["org/tiny-bot"]
        assert (
            result["commit"] == commit["oid"]
            and result["url"] == f"{hub.url}/org/tiny-bot/commit/{commit['oid']}"
        )
        assert {
            "README.md",
            "adapter_config.json",
            "adapter_model.safetensors",
            "tokenizer.json",
        } <= set(commit["files"])

        elsewhere = tmp_path / "elsewhere"
        fetched = subprocess.run(
            [sys.executable, "-I", "-c", DOWNLOAD, "org/tiny-bot", str(elsewhere)],
            capture_output=True,
            text=True,
            env=_env(**{**env, "HF_HUB_CACHE": str(tmp_path / "download-cache")}),
            timeout=300,
        )
        assert fetched.returncode == 0, fetched.stderr
        loaded = load_and_score(elsewhere)
        assert loaded["chief"] == [] and not [w for w in loaded["warnings"] if "tie" in w]
        assert max_diff(loaded["scores"], served(engine, record.tinker_path)) < 1e-4

        shown = run_chief("registry", "show", "tiny:v3", "--json", "--project", str(project))
        exports = json.loads(shown.stdout)["exports"]
        assert exports[-1]["target"] == "hub" and exports[-1]["location"] == "org/tiny-bot"
        assert exports[-1]["commit_sha"] == commit["oid"]
        with Registry.open(project / ".chief" / "registry.db", read_only=True) as registry:
            audit = registry.audit_log()[-1]
            markdown = registry.export_markdown()
        assert (audit.command, audit.target, audit.details["url"]) == (
            "publish",
            "tiny:v3",
            result["url"],
        )
        assert commit["oid"][:12] in markdown and result["url"] in markdown
        assert TOKEN not in markdown
        assert run_chief("report", "--project", str(project)).returncode == 0
        link = f'<a href="{result["url"]}">{commit["oid"][:12]}</a>'
        assert link in (project / "report.html").read_text()

        # Republishing after a new eval: a new commit of the same weights, with the new card.
        with Registry.open(project / ".chief" / "registry.db") as registry:
            registry.record_eval(
                "tiny:v3",
                suite_name="tiny-suite",
                suite_version="later",
                task="extra",
                metrics=[MetricValue("accuracy", 0.75, 0.5, 0.9, 40)],
            )
        again = run_chief(*publish, env=env)
        assert again.returncode == 0, again.stderr
        first, second = hub.commits["org/tiny-bot"]
    assert first["oid"] == commit["oid"] != second["oid"]
    assert (
        first["files"]["adapter_model.safetensors"] == second["files"]["adapter_model.safetensors"]
    )
    before = ModelCard(first["files"]["README.md"].decode()).data.eval_results
    after = ModelCard(second["files"]["README.md"].decode()).data.eval_results
    assert [r.task_name for r in before] == ["val_nll"] * len(before)
    assert ("extra", "accuracy", 0.75) in {
        (r.task_name, r.metric_type, r.metric_value) for r in after
    }


def test_the_card_parses_and_carries_the_eval_table(trained, exported):
    from huggingface_hub import ModelCard

    out = exported["dir"]
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.base_model == "tinker-chief/tiny-random-llama" and data.library_name == "peft"
    assert data.license == LICENSE and data.pipeline_tag == "text-generation"
    assert data.tags == ["tinker-chief", "lora", "chat"]
    with Registry.open(trained["project"] / ".chief" / "registry.db", read_only=True) as registry:
        run = registry.latest_results("tiny:v3")["val_nll"]
        base_run = registry.latest_results("base/tiny-random-llama")["val_nll"]
    nll = next(r for r in data.eval_results if r.task_name == "val_nll" and r.metric_type == "nll")
    assert (nll.dataset_type, nll.dataset_config, nll.metric_value) == (
        "local",
        "val_nll",
        run.metrics["nll"].value,
    )
    row = next(line for line in card.text.splitlines() if line.startswith("| val_nll | nll |"))
    assert (
        f"{run.metrics['nll'].value:.4g}" in row and f"{base_run.metrics['nll'].value:.4g}" in row
    )
    assert (
        "staging" in card.text
        and "learning_curve.png" in card.text
        and (out / "learning_curve.png").is_file()
    )
    assert "heldout" not in card.text.split("## Training data")[1].split("##")[0].replace(
        "heldout.jsonl", ""
    )


# --------------------------------------------------------------------------------- bad input


def test_a_failed_check_exits_non_zero_and_leaves_nothing(trained, engine, tmp_path):
    """The saved state of tiny:v2 is changed on the engine's disk, so the weights that come down
    no longer give what its sampler weights serve: the check refuses the export."""
    from safetensors.torch import load_file, save_file

    record = _record(trained, "tiny:v2")
    run_id, _, name = record.config["state_path"].removeprefix("tinker://").split("/")
    weights_file = (
        engine.state_dir / "runs" / run_id / "weights" / name / "adapter_model.safetensors"
    )
    original = weights_file.read_bytes()
    tensors = load_file(str(weights_file))
    save_file(
        {k: v * 3 if "lora_B" in k else v for k, v in tensors.items()},
        str(weights_file),
        {"format": "pt"},
    )
    before = registry_state(trained["project"])
    try:
        out = tmp_path / "exports" / "bad"
        done = run_chief("export", "tiny:v2", "--dir", str(out), *trained["where"])
    finally:
        weights_file.write_bytes(original)
    assert_one_line_error(
        done, "round-trip check failed for tiny:v2", "away from the serving backend's"
    )
    assert not (tmp_path / "exports").exists()  # nor the parent it would have made
    assert registry_state(trained["project"]) == before


def test_round_trip_check_catches_a_corrupted_and_a_zeroed_adapter(
    trained, exported, engine, tmp_path
):
    import shutil

    from safetensors.torch import load_file, save_file

    from tinker_chief.errors import ExportError
    from tinker_chief.publish import roundtrip

    good = exported["dir"]
    canaries = roundtrip.Canaries(PROMPTS, "test prompts")
    served_now = served(engine, trained["record"].tinker_path)
    check = roundtrip.check_export(
        good, "adapter", "unused", canaries, served_now, "float32", "good"
    )
    assert check.max_abs_diff < 1e-4 and check.adapter_effect > 1e-2

    def variant(name: str, change) -> Path:
        directory = tmp_path / name
        shutil.copytree(good, directory)
        change(directory / "adapter_model.safetensors")
        return directory

    def scaled(path: Path) -> None:
        tensors = load_file(str(path))
        save_file(
            {k: v * 1.5 if "lora_A" in k else v for k, v in tensors.items()},
            str(path),
            {"format": "pt"},
        )

    def zeroed(path: Path) -> None:
        tensors = load_file(str(path))
        save_file(
            {k: v * 0 if "lora_B" in k else v for k, v in tensors.items()},
            str(path),
            {"format": "pt"},
        )

    def truncated(path: Path) -> None:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(ExportError, match="away from the serving backend's"):
        roundtrip.check_export(
            variant("scaled", scaled), "adapter", "", canaries, served_now, "float32", "x"
        )
    with pytest.raises(ExportError, match="plain transformers\\+PEFT cannot load it"):
        roundtrip.check_export(
            variant("cut", truncated), "adapter", "", canaries, served_now, "float32", "x"
        )
    no_adapter = variant("zeroed", zeroed)
    with pytest.raises(ExportError, match="away from the serving backend's"):
        roundtrip.check_export(no_adapter, "adapter", "", canaries, served_now, "float32", "x")
    # Served from the base (a path that resolved to it): the zeroed adapter matches what is served,
    # and only the effect rule sees that no adapter is applied.
    base_scores = served(engine, None)
    with pytest.raises(ExportError, match="equal the base model's .*the adapter is not applied"):
        roundtrip.check_export(no_adapter, "adapter", "", canaries, base_scores, "float32", "x")


def _record(trained: dict, ref: str):
    with Registry.open(trained["project"] / ".chief" / "registry.db", read_only=True) as registry:
        return registry.get_model(ref)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("export", "nope"), ("no model `nope` in the registry",)),
        (
            ("export", "base/tiny-random-llama"),
            ("base model record with no checkpoint of its own",),
        ),
        (("publish", "nope", "--repo", "org/x"), ("no model `nope` in the registry",)),
        (
            ("publish", "tiny:v1", "--repo", "org/x"),
            ("tiny:v1 is candidate: only staging or prod",),
        ),
        (("publish", "tiny:v1", "--repo", "org/x", "--force"), ("--force needs --reason",)),
        (
            ("publish", "tiny:v3", "--repo", "not a repo"),
            ("--repo 'not a repo': expected ORG/NAME",),
        ),
        (("publish", "tiny:v3", "--repo", "org/x"), ("no Hugging Face token",)),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(trained, tmp_path, args, fragments):
    before = registry_state(trained["project"])
    home = {
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_TOKEN": None,
        "HF_HUB_OFFLINE": None,
    }
    done = run_chief(*args, *trained["where"], env={**home, "TRANSFORMERS_OFFLINE": None})
    assert_one_line_error(done, *fragments)
    assert registry_state(trained["project"]) == before
    assert not (trained["project"] / "exports").exists()


@pytest.mark.parametrize("target", ["/dev/null", "{tmp}/file.txt/sub", "{tmp}/full"])
def test_export_into_an_existing_file_or_non_empty_dir_is_refused(trained, tmp_path, target):
    (tmp_path / "file.txt").write_text("not a directory")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    out = target.format(tmp=tmp_path)
    before = registry_state(trained["project"])
    done = run_chief("export", "tiny:v3", "--dir", out, *trained["where"])
    assert_one_line_error(
        done, out, pattern=r"(exists and is not (a directory|empty)|cannot create)"
    )
    assert (tmp_path / "file.txt").read_text() == "not a directory"
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["mine.txt"]
    assert registry_state(trained["project"]) == before


def test_expired_weights_are_one_line(trained, engine, tmp_path):
    record = _record(trained, "tiny:v1")
    run_id, _, name = record.config["state_path"].removeprefix("tinker://").split("/")
    meta_file = engine.state_dir / "runs" / run_id / "weights" / f"{name}.json"
    original = meta_file.read_text()
    meta = json.loads(original)
    meta["expires_at"] = "2000-01-01T00:00:00+00:00"
    meta_file.write_text(json.dumps(meta))
    before = registry_state(trained["project"])
    try:
        done = run_chief("export", "tiny:v1", "--dir", str(tmp_path / "out"), *trained["where"])
    finally:
        meta_file.write_text(original)
    assert_one_line_error(done, "tiny:v1: cannot load its weights", "expired")
    assert not (tmp_path / "out").exists() and registry_state(trained["project"]) == before


def test_publish_without_a_license_is_one_line(trained, tmp_path):
    bare = make_project(tmp_path / "bare")
    done = run_chief("publish", "tiny:v3", "--repo", "org/x", "--project", str(bare))
    assert_one_line_error(done, 'field "license"', "chief.toml")


@pytest.mark.parametrize("hub", ["refusing", "unreachable"])
def test_a_refusing_or_unreachable_hub_is_one_line_without_the_token(trained, tmp_path, hub):
    import socket

    before = registry_state(trained["project"])
    with hub_stand_in({}, refuse=403) as stand_in:
        env = {
            **online_env(stand_in, tmp_path / "cache"),
            "HF_TOKEN": TOKEN,
            "HF_HUB_CACHE": SESSION_CACHE,
        }
        if hub == "unreachable":
            with socket.socket() as closed:
                closed.bind(("127.0.0.1", 0))
                env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed.getsockname()[1]}"
        done = run_chief("publish", "tiny:v3", "--repo", "org/x", *trained["where"], env=env)
    assert_one_line_error(done, "publishing to org/x on", "failed")
    assert TOKEN not in done.stdout + done.stderr
    # The status as a word of its own: the unreachable hub's random port may contain "403".
    assert bool(re.search(r"\b403\b", done.stderr)) == (hub == "refusing")
    assert registry_state(trained["project"]) == before
