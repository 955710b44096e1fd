"""The engine's trust boundary, probed as a hostile client would.

Local model directories are served only when the operator allows them, under their name and
never their path; web pages (foreign `Host`, browser `Origin`) are refused; an engine chief
starts has a random key that only its user can find; a session's clients are unloaded when it
ends or goes silent, and live training clients are capped. Everything goes through the
unmodified SDK or raw httpx against real engine subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
import tinker

from tinker_chief.engine.server.auth import LOCAL_CLIENT_KEY
from tinker_chief.engine.server.launcher import engine_key, start_engine
from tinker_chief.models import materialize_model

from cli_support import CHIEF_COMMAND
from server_support import TINY, fb_body, sft_datum, wait_json, wait_raw

ALIAS = "private_model"
SESSION = {"tags": [], "user_metadata": None, "sdk_version": "raw"}


@pytest.fixture(scope="module")
def private_model(tmp_path_factory):
    """A real Hugging Face model directory somewhere under the user's files."""
    directory = tmp_path_factory.mktemp("home") / ALIAS
    shutil.copytree(materialize_model(TINY), directory)
    return directory


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, private_model):
    """An engine whose operator allowed one model directory and at most 2 training clients."""
    with start_engine(
        state_dir=tmp_path_factory.mktemp("guarded"),
        device="cpu",
        dtype="float32",
        allow_model_dirs=[private_model],
        max_training_clients=2,
    ) as handle:
        yield handle


def _raw(engine, **headers) -> httpx.Client:
    return httpx.Client(
        base_url=f"{engine.base_url}/api/v1",
        timeout=60,
        headers={"X-API-Key": engine.api_key_for_clients, **headers},
    )


def _refusal(call) -> str:
    with pytest.raises(tinker.APIStatusError) as info:
        call()
    assert info.value.status_code == 404, info.value
    return str(info.value)


# -- item 5: local directories ------------------------------------------------------------------


def test_a_client_cannot_make_the_engine_load_a_local_directory(
    service_client, rest_client, private_model, tmp_path
):
    (tmp_path / ".ssh").mkdir()  # exists, but is no model
    errors = {}
    for name in (str(private_model), str(tmp_path / ".ssh"), str(tmp_path / "missing")):
        message = _refusal(
            lambda n=name: service_client.create_lora_training_client(base_model=n, rank=1).result()
        )
        assert (
            _refusal(lambda n=name: service_client.create_sampling_client(base_model=n).result())
            == message
        )
        assert name not in message
        errors[name] = message.replace(os.path.basename(name), "NAME")
    assert len(set(errors.values())) == 1, errors  # nothing tells which directories exist
    assert "config.json" not in next(iter(errors.values()))
    names = [m.model_name for m in rest_client.get_server_capabilities().result().supported_models]
    assert TINY in names and not any(os.path.isabs(name) for name in names)


def test_an_allowed_directory_is_served_under_its_name_only(guarded, private_model):
    service = tinker.ServiceClient(base_url=guarded.base_url, api_key=guarded.api_key_for_clients)
    rest = tinker.RestClient(base_url=guarded.base_url, api_key=guarded.api_key_for_clients)
    try:
        by_path = service.create_lora_training_client(
            base_model=str(private_model), rank=1
        ).result()
        by_alias = service.create_lora_training_client(base_model=ALIAS, rank=1).result()
        assert by_path.get_info().model_data.model_name == by_alias.get_info().model_name == ALIAS
        assert by_path.get_tokenizer().encode(
            "hi"
        )  # still loads offline for a client on this machine
        checkpoint = by_path.save_weights_for_sampler("s").result().path
        sample = (
            service.create_sampling_client(base_model=ALIAS)
            .result()
            .sample(
                tinker.types.ModelInput.from_ints([5, 6]),
                1,
                tinker.types.SamplingParams(max_tokens=2),
            )
            .result()
        )
        assert sample.sequences
        shown = json.dumps(
            [
                rest.get_server_capabilities().result().model_dump(mode="json"),
                rest.list_training_runs().result().model_dump(mode="json"),
                rest.get_weights_info_by_tinker_path(checkpoint).result().model_dump(mode="json"),
            ]
        )
        assert ALIAS in shown and str(private_model.parent) not in shown
    finally:
        service.close("success").result()


def test_serve_refuses_a_bad_allowed_directory_in_one_line(tmp_path):
    result = subprocess.run(
        [
            *CHIEF_COMMAND,
            "engine",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--allow-model-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: --allow-model-dir {tmp_path}: not a Hugging Face model directory "
        "(expected a directory with config.json)\n"
    )


# -- item 6: web pages and the per-process key ----------------------------------------------------


def test_web_pages_are_refused_and_api_clients_are_not(engine):
    port = engine.base_url.rsplit(":", 1)[1]
    page = {
        "Host": "attacker.example",
        "Origin": "http://attacker.example",
        "Content-Type": "text/plain",
    }
    with _raw(engine, **page) as raw:  # a DNS-rebinding page driving the engine
        for response in (
            raw.post("/create_session", content=json.dumps(SESSION).encode()),
            raw.get("/checkpoints"),
        ):
            assert response.status_code == 403, response.text
            assert "web page" in response.json()["error"]
    with _raw(engine, Host="attacker.example") as raw:
        refused = raw.get("/healthz")
        assert refused.status_code == 403 and "Host header" in refused.json()["error"]
    with _raw(engine, **{"Sec-Fetch-Site": "cross-site"}) as raw:
        assert raw.post("/create_session", json=SESSION).status_code == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        with _raw(engine, Host=host) as raw:
            assert raw.get("/healthz").status_code == 200, host


def test_an_engine_chief_starts_has_a_private_key_of_its_own(engine, tmp_path):
    key = engine.api_key_for_clients
    assert key.startswith("tml-") and key != LOCAL_CLIENT_KEY and len(key) > 40
    with httpx.Client(base_url=f"{engine.base_url}/api/v1", timeout=60) as raw:
        assert raw.get("/healthz", headers={"X-API-Key": LOCAL_CLIENT_KEY}).status_code == 401
    with open(f"/proc/{engine.process.pid}/cmdline", "rb") as cmdline:
        assert key.encode() not in cmdline.read()
    assert (
        stat.S_IMODE(engine.key_file.stat().st_mode) == 0o600 and engine_key(engine.base_url) == key
    )
    # A later chief process of the same user, pointed at the URL, finds and uses the key.
    script = (
        "import sys; from pathlib import Path; from tinker_chief.engine.server.launcher import "
        "ensure_engine, engine_stats; h = ensure_engine(sys.argv[1], state_dir=Path(sys.argv[2]), "
        "ready_timeout=1); print(h.owned, engine_stats(h.base_url) is not None)"
    )
    later = subprocess.run(
        [sys.executable, "-c", script, engine.base_url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert later.stdout.split() == ["False", "True"], later.stderr


# -- item 8: sessions end, clients are capped ------------------------------------------------------


def test_training_clients_are_capped_and_a_finished_session_frees_them(guarded):
    first = tinker.ServiceClient(base_url=guarded.base_url, api_key=guarded.api_key_for_clients)
    ids = [
        first.create_lora_training_client(base_model=TINY, rank=1).result().model_id
        for _ in range(2)
    ]
    with pytest.raises(tinker.BadRequestError, match="--max-training-clients 2"):
        first.create_lora_training_client(base_model=TINY, rank=1).result()
    first.close("success").result()
    with _raw(guarded) as raw:
        for model_id in ids:
            assert raw.post("/get_info", json={"model_id": model_id}).status_code == 404
    second = tinker.ServiceClient(base_url=guarded.base_url, api_key=guarded.api_key_for_clients)
    try:
        for _ in range(2):
            assert (
                second.create_lora_training_client(base_model=TINY, rank=1)
                .result()
                .get_info()
                .lora_rank
                == 1
            )
    finally:
        second.close("success").result()


def test_a_session_that_stops_heartbeating_is_unloaded(tmp_path):
    timeout = 2.0
    with (
        start_engine(state_dir=tmp_path, device="cpu", session_timeout=timeout) as engine,
        _raw(engine) as raw,
    ):

        def session_with_model() -> tuple[str, str]:
            session = raw.post("/create_session", json=SESSION).json()["session_id"]
            request = raw.post(
                "/create_model",
                json={
                    "session_id": session,
                    "model_seq_id": 0,
                    "base_model": TINY,
                    "lora_config": {"rank": 1},
                },
            )
            return session, wait_json(raw, request.json()["request_id"])["model_id"]

        silent, silent_model = session_with_model()
        alive, alive_model = session_with_model()
        deadline = time.monotonic() + 1.5 * timeout
        while time.monotonic() < deadline:  # only `alive` heartbeats
            assert raw.post("/session_heartbeat", json={"session_id": alive}).status_code == 200
            time.sleep(0.2)
        raw.post(
            "/create_session", json=SESSION
        )  # any request that checks sessions ends the silent ones
        assert raw.post("/get_info", json={"model_id": silent_model}).status_code == 404
        assert raw.post("/session_heartbeat", json={"session_id": silent}).status_code == 404
        assert raw.post("/get_info", json={"model_id": alive_model}).status_code == 200
        key_file = engine.key_file
    assert not key_file.exists()  # the key leaves with the engine


def test_a_silent_session_is_reaped_and_its_parked_requests_fail(tmp_path):
    """With no other request arriving, a session that stops heartbeating is still ended: its
    training client is unloaded, and a request of it parked behind a seq_id that never came
    fails with a sentence saying why, instead of leaving its client polling forever."""
    engine = start_engine(state_dir=tmp_path, device="cpu", dtype="float32", session_timeout=1.0)
    with engine, _raw(engine) as raw, _raw(engine) as beating:
        session = raw.post("/create_session", json=SESSION).json()["session_id"]
        fall_silent = threading.Event()  # until set, the session heartbeats, however slow the load

        def heartbeat() -> None:
            while not fall_silent.wait(0.2):
                beating.post("/session_heartbeat", json={"session_id": session})

        heartbeats = threading.Thread(target=heartbeat)
        heartbeats.start()
        try:
            model = {"model_seq_id": 0, "base_model": TINY, "lora_config": {"rank": 1}}
            created = raw.post("/create_model", json={"session_id": session, **model})
            model_id = wait_json(raw, created.json()["request_id"])["model_id"]
            # seq_id 2 waits for a seq_id 1 that never comes (its client died mid-submit).
            body = fb_body(model_id, 2, [sft_datum([1, 2, 3])])
            parked = raw.post("/forward_backward", content=body)
        finally:
            fall_silent.set()
            heartbeats.join()
        # Silence now: only polls, none of which ends a silent session by itself.
        answer = wait_raw(raw, parked.json()["request_id"]).json()
        assert answer.get("error") == (
            f"model {model_id} was unloaded (its session sent no heartbeat for 1 s) before this "
            "request ran (it was waiting for an earlier seq_id)"
        )
        assert raw.post("/get_info", json={"model_id": model_id}).status_code == 404
