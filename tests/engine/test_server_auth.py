"""Auth and binding: loopback by default, non-loopback only with a key, 401 without it."""

from __future__ import annotations

import httpx
import pytest
import tinker

from server_support import TINY
from tinker_chief.errors import EngineError

KEY = "tml-test-key-0123456789"


def test_non_loopback_host_without_key_is_refused(tmp_path):
    from tinker_chief.engine.server.launcher import start_engine

    with pytest.raises(EngineError, match="refusing to listen on non-loopback address '0.0.0.0' without an API key"):
        start_engine(state_dir=tmp_path, host="0.0.0.0", ready_timeout=60)


def test_key_must_look_like_a_tinker_key():
    from tinker_chief.engine.server.auth import check_bind
    from tinker_chief.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="must start with 'tml-'"):
        check_bind("127.0.0.1", "secret")


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
                base_model=TINY, rank=1).result()
        client = tinker.ServiceClient(base_url=url, api_key=KEY)
        assert client.create_lora_training_client(base_model=TINY, rank=1).result().get_info().lora_rank == 1
        client.close("success").result()
    assert KEY not in engine.log_file.read_text()
