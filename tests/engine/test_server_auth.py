"""Auth and binding: loopback by default, non-loopback only with a key, 401 without it; the key
of an engine chief started reaches only that engine; forwarded addresses count only from a
configured proxy."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import tinker

from tinker_chief.engine.server import launcher
from tinker_chief.engine.server.launcher import engine_key, start_engine
from tinker_chief.models import cache_dir

from cli_support import CHIEF_COMMAND, assert_one_line_error, run_chief
from hub_support import Address, serving
from jsonl_support import write_jsonl
from server_support import TINY, wait_for_url

KEY = "tml-test-key-0123456789-abcdefghijklmnopqrstuv"  # strong enough for a non-loopback bind


@pytest.fixture(scope="module")
def on_all_interfaces(tmp_path_factory):
    """An engine bound to 0.0.0.0 (so with a key), as clients on other hosts reach it."""
    state = tmp_path_factory.mktemp("all")
    with start_engine(state_dir=state, host="0.0.0.0", api_key=KEY, device="cpu") as engine:
        engine.local_url = engine.base_url.replace("0.0.0.0", "127.0.0.1")
        yield engine


def test_non_loopback_host_without_key_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CHIEF_ENGINE_API_KEY"}
    served = subprocess.run(
        [
            *CHIEF_COMMAND,
            "engine",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 1
    assert (
        "refusing to listen on non-loopback address '0.0.0.0' without an API key" in served.stderr
    )


def test_the_launcher_never_starts_an_engine_without_a_key(tmp_path):
    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(
        state_dir=tmp_path, host="0.0.0.0", device="cpu"
    ) as engine:  # a random key of its own
        url = engine.base_url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/api/v1/healthz").status_code == 401
        assert (
            httpx.get(
                f"{url}/api/v1/healthz", headers={"X-API-Key": engine.api_key_for_clients}
            ).status_code
            == 200
        )


def test_key_must_look_like_a_tinker_key():
    from tinker_chief.engine.server.auth import check_bind
    from tinker_chief.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="must start with 'tml-'"):
        check_bind("127.0.0.1", "secret")


def test_a_weak_key_cannot_expose_the_engine():
    from tinker_chief.engine.server.auth import check_bind
    from tinker_chief.errors import ConfigurationError

    for weak in ("tml-1234", "tml-" + "ab" * 20):  # too short; long but 2 different characters
        with pytest.raises(
            ConfigurationError,
            match="too weak to expose the engine on '0.0.0.0': after 'tml-' "
            "it needs at least 32 characters with at least 12",
        ) as caught:
            check_bind("0.0.0.0", weak)
        assert weak not in str(caught.value)
    check_bind("127.0.0.1", "tml-1234")  # loopback: any tml- key of 8+ characters
    check_bind("0.0.0.0", KEY)


def test_api_key_on_the_command_line_warns_that_ps_shows_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CHIEF_ENGINE_API_KEY"}
    command = [
        *CHIEF_COMMAND,
        "engine",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--state-dir",
        str(tmp_path),
    ]
    flag = subprocess.run(
        [*command, "--api-key", "tml-1234"], env=env, capture_output=True, text=True, timeout=120
    )
    assert flag.returncode == 1
    assert (
        "visible to every user of this machine in the process list (ps); set CHIEF_ENGINE_API_KEY"
        in flag.stderr
    )
    assert "Error: the API key is too weak" in flag.stderr and "tml-1234" not in flag.stderr
    from_env = subprocess.run(
        command,
        env={**env, "CHIEF_ENGINE_API_KEY": "tml-1234"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert from_env.returncode == 1 and "Error: the API key is too weak" in from_env.stderr
    assert "process list" not in from_env.stderr


def test_keyed_engine_on_all_interfaces_requires_the_key(on_all_interfaces):
    engine, url = on_all_interfaces, on_all_interfaces.local_url
    assert engine.api_key_for_clients == KEY
    assert httpx.get(f"{url}/api/v1/healthz").status_code == 401
    wrong = httpx.get(f"{url}/api/v1/healthz", headers={"X-API-Key": "tml-wrong"})
    assert wrong.status_code == 401 and KEY not in wrong.text
    assert httpx.get(f"{url}/api/v1/healthz", headers={"X-API-Key": KEY}).json() == {"status": "ok"}

    with pytest.raises(tinker.AuthenticationError):
        tinker.ServiceClient(base_url=url, api_key="tml-wrong").create_lora_training_client(
            base_model=TINY, rank=1
        ).result()
    client = tinker.ServiceClient(base_url=url, api_key=KEY)
    training = client.create_lora_training_client(base_model=TINY, rank=1).result()
    assert training.get_info().lora_rank == 1
    client.close("success").result()
    assert KEY not in engine.log_file.read_text()


def test_a_client_on_another_host_gets_a_tokenizer_id_but_no_path(on_all_interfaces):
    client = tinker.ServiceClient(base_url=on_all_interfaces.local_url, api_key=KEY)
    try:
        training = client.create_lora_training_client(base_model=TINY, rank=1).result()
        info = training.get_info()
        # The built-in's id in the Hugging Face cache, where chief registers it on materializing.
        assert info.model_data.tokenizer_id == f"tinker-chief/{TINY}"
        assert training.get_tokenizer().encode("hi")
        assert str(cache_dir().parent) not in json.dumps(info.model_dump(mode="json"))
    finally:
        client.close("success").result()


# -- the key of an engine chief started ------------------------------------------------------


Answer = Callable[[str], tuple[int, dict]]  # a request's path -> (status, JSON body)


def not_found(path: str) -> tuple[int, dict]:
    return 404, {"error": f"{path}: not here"}


@dataclass
class RecordingServer:
    """What a stand-in HTTP server was sent: the headers of every request."""

    url: str
    headers: list[dict[str, str]] = field(default_factory=list)

    def saw(self, secret: str) -> bool:
        seen = [f"{name}: {value}" for request in self.headers for name, value in request.items()]
        return any(secret in header for header in seen)


@contextmanager
def recording_server(address: Address, answer: Answer = not_found) -> Iterator[RecordingServer]:
    """A `RecordingServer` at `address` whose reply to a request for `path` is `answer(path)`."""
    headers: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            headers.append(dict(self.headers.items()))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = answer(self.path)
            content = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: object) -> None:  # quiet: `headers` is the log
            pass

    with serving(Handler, address) as url:
        yield RecordingServer(url, headers)


def _eval_offline(tmp_path: Path, base_url: str) -> subprocess.CompletedProcess:
    data = tmp_path / "qa.jsonl"
    write_jsonl(data, [{"input": "2+2?", "output": "4"}])
    return run_chief(
        "eval-offline",
        "--base-model",
        TINY,
        "--data",
        str(data),
        "--grader",
        "contains",
        "--max-tokens",
        "2",
        "--base-url",
        base_url,
        cwd=tmp_path,
        timeout=300,
    )


def _squat(port: int) -> Address:
    """Another loopback address on `port` that this test may listen on: ::1, else 127.0.0.2."""
    for host, family in (("::1", socket.AF_INET6), ("127.0.0.2", socket.AF_INET)):
        try:
            with socket.socket(family) as probe:
                probe.bind((host, port))
            return host, port
        except OSError:
            continue
    pytest.skip(f"neither [::1]:{port} nor 127.0.0.2:{port} can be bound here")


def test_a_server_on_another_loopback_address_never_gets_the_engines_key(engine, tmp_path):
    """Another user listening on [::1]:P next to chief's engine on 127.0.0.1:P (or where
    `localhost` resolves to ::1) must not receive the key from the engine's key file."""
    port = urlparse(engine.base_url).port
    assert engine.key_file is not None and engine_key(engine.base_url) == engine.api_key_for_clients
    with recording_server(_squat(port)) as squatter:
        for url in (squatter.url, f"http://localhost:{port}"):
            result = _eval_offline(tmp_path, url)
            assert "Traceback" not in result.stderr, result.stderr
        assert squatter.headers, "the command never reached the stand-in"
        assert not squatter.saw(engine.api_key_for_clients)


def test_a_server_that_cannot_prove_the_key_does_not_get_it(tmp_path):
    """A key file whose address another program now holds (the engine died, its pid was reused):
    the key goes nowhere, and the command says why in one line."""
    planted = "tml-planted-key-of-an-engine-that-is-gone-0123456789"
    asked: list[str] = []

    def impostor(path: str) -> tuple[int, dict]:
        asked.append(path)
        return 200, {"proof": "0" * 64}

    with recording_server(("127.0.0.1", 0), impostor) as server:
        key_file = launcher._save_key(server.url, planted, os.getpid())  # a live pid: ours
        assert key_file is not None
        try:
            result = _eval_offline(tmp_path, server.url)
        finally:
            key_file.unlink()
        refusal = f"the server at {server.url} is not the engine chief started there"
        assert_one_line_error(result, refusal, "the key was not sent")
        assert asked == ["/api/v1/engine_proof"]  # asked for the proof, and nothing after it
        assert not server.saw(planted) and planted not in result.stdout + result.stderr


def test_a_key_directory_linked_by_its_user_is_judged_by_what_it_names(tmp_path, monkeypatch):
    """A link to a shared key directory (as the planning tests make) is used when the directory it
    names is safe, and refused when that directory is not the user's."""
    monkeypatch.setenv("CHIEF_CACHE_DIR", str(tmp_path / "cache"))
    shared = tmp_path / "shared-keys"
    shared.mkdir(mode=0o700)
    link = cache_dir().parent / "engine-keys"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(shared)
    assert launcher._key_dir() == link
    if os.getuid() == 0:
        os.chown(shared, 65534, 65534)
        assert launcher._key_dir() is None


def test_a_key_directory_others_could_write_is_refused_in_one_line(tmp_path, monkeypatch, caplog):
    if os.getuid() != 0:
        pytest.skip("giving the directory to another user needs root")
    monkeypatch.setenv("CHIEF_CACHE_DIR", str(tmp_path / "cache"))  # a key directory of its own
    keys = cache_dir().parent / "engine-keys"
    keys.mkdir(mode=0o700, parents=True)
    os.chown(keys, 65534, 65534)
    caplog.set_level(logging.WARNING, logger=launcher.__name__)
    with start_engine(state_dir=tmp_path / "state", device="cpu") as engine:
        key = engine.api_key_for_clients
        assert engine.key_file is None and not list(keys.iterdir())  # not saved there
        assert [r.getMessage() for r in caplog.records if r.name.startswith("tinker_chief")] == [
            f"not using {keys} for the keys of the engines chief starts: it belongs to another "
            "user (uid 65534); remove it (chief recreates it) or pass the key in "
            "CHIEF_ENGINE_API_KEY"
        ]
        healthz = f"{engine.base_url}/api/v1/healthz"
        assert httpx.get(healthz, headers={"X-API-Key": key}).status_code == 200

        os.chown(keys, os.getuid(), os.getgid())  # a key file of this user's, for this engine
        launcher._save_key(engine.base_url, key, engine.process.pid)
        assert engine_key(engine.base_url) == key
        for owner, mode, problem in (
            (os.getuid(), 0o777, "other users may write to it (mode 777)"),
            (65534, 0o700, "it belongs to another user (uid 65534)"),
        ):
            os.chown(keys, owner, os.getgid())
            os.chmod(keys, mode)
            caplog.clear()
            assert engine_key(engine.base_url) is None  # not read from there either
            ours = [r.getMessage() for r in caplog.records if r.name.startswith("tinker_chief")]
            assert len(ours) == 1 and problem in ours[0]
            assert key not in caplog.text


# -- forwarded addresses --------------------------------------------------------------------------


def test_forwarded_addresses_count_only_from_the_configured_proxy(tmp_path):
    serve = [*CHIEF_COMMAND, "engine", "serve", "--port", "0", "--state-dir", str(tmp_path)]
    bad = subprocess.run(
        [*serve, "--forwarded-allow-ips", "127.0.0.1,proxy.example"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(bad, "--forwarded-allow-ips: 'proxy.example' is not an IP address")
    process = subprocess.Popen(
        [*serve, "--device", "cpu", "--forwarded-allow-ips", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CHIEF_ENGINE_API_KEY": KEY},
    )
    try:
        url = f"{wait_for_url(process)}/api/v1/healthz"
        with httpx.Client(timeout=30) as client:

            def status(key: str, *forwarded_for: str) -> int:
                forwarded = {"X-Forwarded-For": forwarded_for[0]} if forwarded_for else {}
                return client.get(url, headers={"X-API-Key": key, **forwarded}).status_code

            assert [status("tml-guess", "10.9.9.9") for _ in range(11)] == [401] * 10 + [429]
            locked = client.get(url, headers={"X-API-Key": KEY, "X-Forwarded-For": "10.9.9.9"})
            assert locked.status_code == 429 and "from 10.9.9.9" in locked.json()["error"]
            # The proxy's other clients, and the proxy itself, are not locked out.
            assert status(KEY, "10.8.8.8") == 200 and status(KEY) == 200
    finally:
        process.terminate()
        process.wait(timeout=60)
