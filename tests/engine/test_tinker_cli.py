"""The SDK's own `tinker` CLI against the engine, as a user runs it: `TINKER_BASE_URL` + key.

The engine here has an API key, so `tinker checkpoint download` also proves that its signed
file URLs work for a client that sends no key (the CLI fetches them with plain urllib).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
import tinker
from safetensors.numpy import load_file
from tinker import types

from server_support import TINY, run_tinker_cli, sft_datum

KEY = "tml-cli-test-key-0123"


@pytest.fixture(scope="module")
def keyed_engine(tmp_path_factory):
    from tinker_chief.engine.server.launcher import start_engine

    state = tmp_path_factory.mktemp("cli-engine")
    with start_engine(state_dir=state, device="cpu", dtype="float32", api_key=KEY) as handle:
        handle.state_dir = state
        yield handle


@pytest.fixture(scope="module")
def run(keyed_engine):
    """One trained step and its training, sampler and external-weights checkpoints:
    (run id, state, sampler, external)."""
    client = tinker.ServiceClient(base_url=keyed_engine.base_url, api_key=KEY)
    tc = client.create_lora_training_client(base_model=TINY, rank=2, seed=3).result()
    tc.forward_backward([sft_datum(list(range(5, 25)))], "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=0.05)).result()
    state = tc.save_state("s1").result().path
    sampler = tc.save_weights_for_sampler("w1", ttl_seconds=7200).result().path
    external = tc.save_weights_external("e1").result().path
    client.close("success").result()
    return tc.get_info().model_id, state, sampler, external


def tinker_cli(engine, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_tinker_cli(engine.base_url, KEY, *args, cwd=cwd)


def json_of(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def listed_paths(engine) -> list[str]:
    return [
        c["tinker_path"]
        for c in json_of(tinker_cli(engine, "-f", "json", "checkpoint", "list"))["checkpoints"]
    ]


def test_listings(keyed_engine, run):
    run_id, state, sampler, external = run
    names = [
        m["model_name"]
        for m in json_of(tinker_cli(keyed_engine, "-f", "json", "model", "list"))["models"]
    ]
    assert {"tiny-random-llama", "SmolLM2-135M-Instruct-Q4_1"} <= set(names)
    runs = {
        r["training_run_id"]: r
        for r in json_of(tinker_cli(keyed_engine, "-f", "json", "run", "list"))["runs"]
    }
    assert (runs[run_id]["base_model"], runs[run_id]["lora_rank"]) == (TINY, 2)
    assert runs[run_id]["last_checkpoint"]["tinker_path"] == state

    listed = json_of(tinker_cli(keyed_engine, "-f", "json", "checkpoint", "list"))["checkpoints"]
    assert {(c["tinker_path"], c["checkpoint_type"]) for c in listed} == {
        (state, "training"),
        (sampler, "sampler"),
        (external, "external"),
    }
    expires = {c["tinker_path"]: c["expires_at"] for c in listed}
    assert expires[state] is None and expires[sampler] is not None

    info = json_of(tinker_cli(keyed_engine, "-f", "json", "checkpoint", "info", state))
    assert (info["tinker_path"], info["checkpoint_type"], info["lora_rank"]) == (
        state,
        "training",
        2,
    )


def test_download_gives_the_adapter_files_and_leaves_no_export_behind(keyed_engine, run, tmp_path):
    run_id, state, _, external = run
    out = json_of(
        tinker_cli(keyed_engine, "-f", "json", "checkpoint", "download", state, "-o", str(tmp_path))
    )
    folder = Path(out["destination"])
    assert folder.parent == tmp_path
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in folder.iterdir()
    }
    saved = (
        keyed_engine.state_dir / "runs" / run_id / "weights" / "s1" / "adapter_model.safetensors"
    )
    downloaded, original = (
        load_file(str(folder / "adapter_model.safetensors")),
        load_file(str(saved)),
    )
    assert downloaded.keys() == original.keys() and all(
        np.array_equal(downloaded[k], original[k]) for k in original
    )
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 2
    # The CLI deletes its temporary external-weights export after the download.
    assert [p for p in listed_paths(keyed_engine) if "/external_weights/" in p] == [external]

    missing = tinker_cli(
        keyed_engine,
        "checkpoint",
        "download",
        f"tinker://{run_id}/weights/nope",
        "-o",
        str(tmp_path),
    )
    assert (
        missing.returncode == 1
        and f"unknown checkpoint tinker://{run_id}/weights/nope" in missing.stderr
    )


def test_signed_urls_admit_only_what_they_name(keyed_engine, run):
    client = tinker.ServiceClient(base_url=keyed_engine.base_url, api_key=KEY)
    tc = client.create_training_client_from_state(run[1]).result()
    export = tc.save_weights_external("exported").result().path
    rest = tinker.RestClient(base_url=keyed_engine.base_url, api_key=KEY)
    urls = rest.get_external_weights_urls(export).result().urls
    good = urls["adapter_config.json"]
    assert httpx.get(good).json()["r"] == 2  # no API key needed: the URL is the credential
    forged = good.replace("adapter_config.json", "adapter_model.safetensors")
    tampered = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    for url in (forged, tampered):
        response = httpx.get(url)
        assert (
            response.status_code == 403 and "not issued by this engine" in response.json()["error"]
        )
    rest.delete_checkpoint_from_tinker_path(export).result()
    assert httpx.get(good).status_code == 404
    client.close("success").result()


def test_delete(keyed_engine, run):
    client = tinker.ServiceClient(base_url=keyed_engine.base_url, api_key=KEY)
    tc = client.create_training_client_from_state(run[1]).result()
    doomed = [
        tc.save_weights_for_sampler("doomed", ttl_seconds=3600).result().path,
        tc.save_weights_external("doomed").result().path,
    ]
    client.close("success").result()
    deleted = tinker_cli(keyed_engine, "checkpoint", "delete", *doomed, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    listed = listed_paths(keyed_engine)
    assert not set(doomed) & set(listed) and run[1] in listed
    gone = tinker_cli(keyed_engine, "checkpoint", "info", doomed[1])
    assert gone.returncode == 1 and "Checkpoint not found" in gone.stderr
