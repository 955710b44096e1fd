"""Auth and binding: loopback by default, non-loopback only with a key, 401 without it."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
import tinker

from cli_support import CHIEF_COMMAND
from server_support import TINY

KEY = "tml-test-key-0123456789-abcdefghijklmnopqrstuv"  # strong enough for a non-loopback bind


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
    assert "refusing to listen on non-loopback address '0.0.0.0' without an API key" in served.stderr


def test_the_launcher_never_starts_an_engine_without_a_key(tmp_path):
    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(state_dir=tmp_path, host="0.0.0.0", device="cpu") as engine:  # a random key of its own
        url = engine.base_url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/api/v1/healthz").status_code == 401
        assert httpx.get(f"{url}/api/v1/healthz", headers={"X-API-Key": engine.api_key_for_clients}).status_code == 200


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
    flag = subprocess.run([*command, "--api-key", "tml-1234"], env=env, capture_output=True, text=True, timeout=120)
    assert flag.returncode == 1
    assert "visible to every user of this machine in the process list (ps); set CHIEF_ENGINE_API_KEY" in flag.stderr
    assert "Error: the API key is too weak" in flag.stderr and "tml-1234" not in flag.stderr
    from_env = subprocess.run(
        command, env={**env, "CHIEF_ENGINE_API_KEY": "tml-1234"}, capture_output=True, text=True, timeout=120
    )
    assert from_env.returncode == 1 and "Error: the API key is too weak" in from_env.stderr
    assert "process list" not in from_env.stderr


def test_keyed_engine_on_all_interfaces_requires_the_key(tmp_path):
    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(state_dir=tmp_path, host="0.0.0.0", api_key=KEY, device="cpu") as engine:
        assert engine.api_key_for_clients == KEY
        url = engine.base_url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/api/v1/healthz").status_code == 401
        wrong = httpx.get(f"{url}/api/v1/healthz", headers={"X-API-Key": "tml-wrong"})
        assert wrong.status_code == 401 and KEY not in wrong.text
        assert httpx.get(f"{url}/api/v1/healthz", headers={"X-API-Key": KEY}).json() == {"status": "ok"}

        with pytest.raises(tinker.AuthenticationError):
            tinker.ServiceClient(base_url=url, api_key="tml-wrong").create_lora_training_client(
                base_model=TINY, rank=1
            ).result()
        client = tinker.ServiceClient(base_url=url, api_key=KEY)
        assert client.create_lora_training_client(base_model=TINY, rank=1).result().get_info().lora_rank == 1
        client.close("success").result()
    assert KEY not in engine.log_file.read_text()
