"""The engine's resource limits: top-k and per-request budgets,
expiry of results nobody retrieves, body and zstd caps, bounded error echoes, read deadlines
and 401 rate limiting.

Through the real engine over HTTP (the SDK where it can send the request, raw httpx or a raw
socket where it cannot); the future table's expiry with its injectable clock, so no test sleeps
for the 15-minute TTL. Waits are bounded by a socket timeout, never asserted on.
"""

from __future__ import annotations

import asyncio
import re
import socket

import httpx
import pytest
import tinker
import zstandard
from tinker import types
from tinker.types.sample_request import SampleRequest as WireSampleRequest

from cli_support import assert_one_line_error, run_chief
from server_support import TINY, wait_raw, whole_response

MiB = 1024 * 1024
PROMPT = types.ModelInput.from_ints([1, 2, 3, 4, 5])


@pytest.fixture(scope="module")
def sampler(service_client):
    return service_client.create_sampling_client(base_model=TINY).result()


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text[:500]
    return response.json()["error"]


def _sample_body(tokens: list[int], **fields: object) -> dict:
    body = {
        "base_model": TINY,
        "num_samples": 1,
        "prompt": {"chunks": [{"type": "encoded_text", "tokens": tokens}]},
        "sampling_params": {"max_tokens": 1},
    }
    return {**body, **fields}


def _raw_request(base_url: str, data: bytes, patience_s: float = 30.0) -> bytes:
    """Send `data` on a fresh connection and read until the engine has sent one whole response or
    closed the connection (b'<still open>' appended if neither happened within `patience_s`)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=patience_s) as sock:
        sock.sendall(data)
        received = b""
        try:
            while not whole_response(received) and (chunk := sock.recv(65536)):
                received += chunk
        except TimeoutError:
            return received + b"<still open>"
    return received


# -- item 2: top-k and what one request may make the engine hold ---------------------------------


def test_topk_prompt_logprobs_is_capped_with_a_400_naming_the_field(sampler):
    with pytest.raises(
        tinker.BadRequestError, match="topk_prompt_logprobs must be between 0 and 100"
    ):
        sampler.sample(
            PROMPT, 1, types.SamplingParams(max_tokens=1), topk_prompt_logprobs=500_000
        ).result()
    at_limit = sampler.sample(
        PROMPT, 1, types.SamplingParams(max_tokens=1), topk_prompt_logprobs=100
    ).result()
    assert [len(row) for row in at_limit.topk_prompt_logprobs[1:]] == [100] * 4


def test_one_request_cannot_ask_for_unbounded_sampled_tokens(sampler):
    # 256 x 5000 passes every other check's order of magnitude; the budget refuses it before the
    # context check.
    with pytest.raises(
        tinker.BadRequestError,
        match=r"num_samples x max_tokens = 256 x 5000 = 1280000 sampled "
        r"tokens exceeds the engine's limit of 1048576",
    ):
        sampler.sample(PROMPT, 256, types.SamplingParams(max_tokens=5000)).result()


def test_topk_cells_are_budgeted_before_anything_is_allocated():
    from tinker_chief.engine.server import codec
    from tinker_chief.engine.server.http_errors import InvalidRequestError

    request = WireSampleRequest(**_sample_body(list(range(20_001)), topk_prompt_logprobs=100))
    with pytest.raises(
        InvalidRequestError,
        match=r"topk_prompt_logprobs x scored prompt tokens = 100 x 20000 = "
        r"2000000 exceeds the engine's limit of 1048576",
    ):
        codec.sample_request(request, "sampler", eos_tokens=())
    small_vocab = WireSampleRequest(**_sample_body([1, 2, 3], topk_prompt_logprobs=60))
    with pytest.raises(InvalidRequestError, match="between 0 and 50 .*vocabulary size"):
        codec.sample_request(small_vocab, "sampler", eos_tokens=(), vocab_size=50)


# -- sampling memory: the KV cache one decode loop may hold --------------------------------------

# tiny-random-llama in fp32: 2 layers x 2 KV heads x 16 dims x (key + value) x 4 bytes per token.
KV_BYTES_PER_TOKEN = 512
SAMPLING_MEMORY = 128 * KV_BYTES_PER_TOKEN  # 64 KiB: one sample of 128 tokens, or 4 of 25


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory):
    """An engine whose sampling may hold 64 KiB of KV cache at once."""
    from tinker_chief.engine.server.launcher import start_engine

    with start_engine(
        state_dir=tmp_path_factory.mktemp("budgeted"),
        device="cpu",
        dtype="float32",
        sampling_memory_gib=SAMPLING_MEMORY / 2**30,
    ) as handle:
        client = tinker.ServiceClient(base_url=handle.base_url, api_key=handle.api_key_for_clients)
        handle.sampler = client.create_sampling_client(base_model=TINY).result()
        yield handle
        client.close("success").result()


def test_a_sample_longer_than_the_sampling_memory_is_refused_saying_what_fits(budgeted):
    refusal = (
        "asample: one sample of prompt (5 tokens) + max_tokens (200) needs 102.5 KiB of KV cache "
        "(512 bytes per token), more than this engine's sampling memory of 64.0 KiB: at most 128 "
        "tokens per sample fit (max_tokens 123 with this prompt); chief engine serve "
        "--sampling-memory-gib sets that memory"
    )
    with pytest.raises(tinker.BadRequestError, match=re.escape(refusal)):
        budgeted.sampler.sample(PROMPT, 1, types.SamplingParams(max_tokens=200)).result()
    exactly = types.SamplingParams(max_tokens=123, temperature=0.0, stop=[])
    assert len(budgeted.sampler.sample(PROMPT, 1, exactly).result().sequences[0].tokens) == 123


def test_concurrent_samples_take_turns_within_the_sampling_memory(budgeted):
    """Six requests of 4 samples x 25 tokens each fit the budget alone, no two together: sent at
    once, they all complete, with the samples each gives alone (seeded), and no decode loop's KV
    cache ever held more than the budget."""
    from tinker_chief.engine.server.launcher import engine_stats

    params = types.SamplingParams(max_tokens=20, temperature=1.0, seed=7, stop=[])
    prompts = [types.ModelInput.from_ints([1, 2, 3, 4, k]) for k in range(5, 11)]
    alone = [budgeted.sampler.sample(prompt, 4, params).result() for prompt in prompts]
    together = [budgeted.sampler.sample(prompt, 4, params) for prompt in prompts]
    for one, other in zip(alone, (future.result() for future in together), strict=True):
        assert [s.tokens for s in one.sequences] == [s.tokens for s in other.sequences]
    stats = engine_stats(budgeted.base_url, budgeted.api_key_for_clients)
    assert stats is not None and stats["sampling_memory_bytes"] == SAMPLING_MEMORY
    assert 0 < stats["sampling_kv_peak_bytes"] <= SAMPLING_MEMORY
    assert stats["sampling_decode_loops"] >= 2 * len(prompts)  # one loop each: no two fit together


# -- item 3: results nobody retrieves ----------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_unretrieved_result_expires_and_its_retrieve_says_so():
    from tinker_chief.engine.server.futures import FutureTable
    from tinker_chief.engine.server.http_errors import GoneError

    clock = _Clock()
    futures = FutureTable(result_ttl_s=60, clock=clock)
    kept, forgotten, pending = (
        futures.create("sample"),
        futures.create("sample"),
        futures.create("sample"),
    )
    futures.complete(kept, b"k" * 1000)
    futures.complete(forgotten, b"f" * 5000)
    assert futures.stats() == {
        "results_held": 2,
        "results_held_bytes": 6000,
        "results_unretrieved": 2,
        "results_unretrieved_bytes": 6000,
        "results_expired": 0,
    }
    assert asyncio.run(futures.wait(kept, 0)) == b"k" * 1000
    clock.now += 61
    stats = futures.stats()
    assert stats["results_unretrieved"] == 0 and stats["results_expired"] == 1
    assert (
        stats["results_held"] == 1 and stats["results_held_bytes"] == 1000
    )  # the retrieved one stays for retries
    with pytest.raises(
        GoneError, match=f"the result of request '{forgotten}' expired: results are kept 60 seconds"
    ):
        asyncio.run(futures.wait(forgotten, 0))
    assert GoneError.status_code == 410
    futures.complete(pending, {"type": "late"})  # still pending at the sweep: never expired
    assert asyncio.run(futures.wait(pending, 0)) == {"type": "late"}


def test_engine_stats_counts_the_memory_of_unretrieved_results(raw):
    before = raw.get("/engine_stats").json()["results_unretrieved_bytes"]
    body = _sample_body([1, 2, 3, 4, 5, 6], topk_prompt_logprobs=50)
    request_id = raw.post("/asample", json=body).json()["request_id"]
    for _ in range(600):  # until the compute thread has finished it (each poll is a round trip)
        stats = raw.get("/engine_stats").json()
        if stats["results_unretrieved_bytes"] > before:
            break
    assert (
        stats["results_unretrieved_bytes"] >= before + 5 * 50 * 8
    )  # 5 scored positions x 50 x (id + logprob)
    assert wait_raw(raw, request_id).status_code == 200
    assert raw.get("/engine_stats").json()["results_unretrieved_bytes"] <= before


# -- item 4: body sizes, zstd inflation, bounded error echoes ---------------------------------


def test_a_declared_oversized_body_is_refused_before_it_is_read(engine):
    head = (
        "POST /api/v1/create_session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {engine.api_key_for_clients}\r\n"
        "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n{"
    ).encode()
    answer = _raw_request(engine.base_url, head).decode(
        "latin-1"
    )  # old engines waited for the 300 MB
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert "exceeds the engine's limit of 8 MiB" in answer


def test_a_streamed_oversized_body_is_cut_off(raw):
    chunks = (b" " * MiB for _ in range(9))  # chunked: no Content-Length to check up front
    assert "(more than 8388608 bytes) exceeds the engine's limit of 8 MiB" in _error(
        raw.post("/create_session", content=chunks), 413
    )


def test_a_zstd_bomb_is_refused_without_inflating_it(raw):
    bomb = zstandard.ZstdCompressor().compress(b"\x0a" + b"a" * (100 * MiB))  # ~3 KB on the wire
    assert "inflates to 104857601 bytes, over the engine's limit of 64 MiB" in _error(
        raw.post("/forward_backward", content=bomb, headers={"Content-Encoding": "zstd"}), 413
    )
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(
        b"\x0a" + b"a" * (100 * MiB)
    )
    assert "inflates to more than the engine's limit of 64 MiB" in _error(
        raw.post("/forward_backward", content=unsized, headers={"Content-Encoding": "zstd"}), 413
    )


def test_errors_quote_at_most_a_bounded_piece_of_the_input(raw):
    response = raw.post("/get_info", json={"model_id": "x" * 1_000_000})
    message = _error(response, 404)
    assert len(response.content) < 1000
    assert message.startswith("unknown model_id 'xxxx") and "... (1000000 characters)" in message


# -- item 12: read deadlines and 401 rate limiting -------------------------------------------------


@pytest.fixture(scope="module")
def strict_engine(tmp_path_factory):
    """An engine with a 1-second read timeout (its rate limiter is also this module's to
    exhaust)."""
    from tinker_chief.engine.server.launcher import start_engine

    with pytest.MonkeyPatch.context() as patch:  # the launcher hands its environment to the engine
        patch.setenv("CHIEF_ENGINE_READ_TIMEOUT", "1")
        handle = start_engine(
            state_dir=tmp_path_factory.mktemp("strict"), device="cpu", dtype="float32"
        )
    with handle:
        yield handle


def test_a_half_sent_request_head_is_closed(strict_engine):
    assert (
        _raw_request(strict_engine.base_url, b"POST /api/v1/create_session HTTP/1.1\r\nHost: 127")
        == b""
    )
    assert (
        _raw_request(strict_engine.base_url, b"") == b""
    )  # a connection that never sends anything


def test_a_half_sent_body_gets_a_408(strict_engine):
    head = (
        f"POST /api/v1/create_session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {strict_engine.api_key_for_clients}\r\nContent-Length: 100\r\n\r\n{{"
    ).encode()
    answer = _raw_request(strict_engine.base_url, head).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408") and "did not arrive within 1 seconds" in answer, (
        answer[:300]
    )


def test_a_bad_read_timeout_is_one_line(monkeypatch):
    from tinker_chief.engine.server.limits import read_timeout
    from tinker_chief.errors import ConfigurationError

    monkeypatch.setenv("CHIEF_ENGINE_READ_TIMEOUT", "soon")
    with pytest.raises(
        ConfigurationError, match="CHIEF_ENGINE_READ_TIMEOUT='soon': expected a positive number"
    ):
        read_timeout()


def test_a_bad_log_level_is_one_line_before_the_engine_starts(tmp_path):
    result = run_chief(
        "engine", "serve", "--port", "0", "--state-dir", str(tmp_path / "state"),
        env={"CHIEF_ENGINE_LOG": "verbose"}, timeout=120,
    )  # fmt: skip
    assert_one_line_error(
        result, "CHIEF_ENGINE_LOG='verbose': expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    assert not (tmp_path / "state").exists()  # refused before anything was set up


def test_wrong_keys_are_rate_limited_per_address(strict_engine):
    # Last in this module: it locks 127.0.0.1 out of `strict_engine` for a while.
    url = f"{strict_engine.base_url}/api/v1/healthz"
    with httpx.Client(timeout=30) as client:
        # No client poses as other addresses: X-Forwarded-For counts only from a configured proxy.
        guesses = [{"X-API-Key": "tml-guess", "X-Forwarded-For": f"10.0.0.{i}"} for i in range(40)]
        codes = [client.get(url, headers=headers).status_code for headers in guesses]
        assert codes[:10] == [401] * 10 and 429 in codes
        locked = client.get(url, headers={"X-API-Key": strict_engine.api_key_for_clients})
    assert (
        locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    )  # the right key too: no oracle
    assert "too many requests with a wrong X-API-Key from 127.0.0.1" in locked.json()["error"]


def test_the_limiter_refills_and_forgets_addresses():
    from tinker_chief.engine.server.auth import AuthFailureLimiter

    clock = _Clock()
    limiter = AuthFailureLimiter(burst=2, refill_s=10, clock=clock, max_clients=2)
    limiter.spend("a")
    limiter.spend("a")
    assert limiter.wait_s("a") == pytest.approx(10) and limiter.wait_s("b") == 0
    clock.now += 5
    assert limiter.wait_s("a") == pytest.approx(5)
    clock.now += 5
    assert limiter.wait_s("a") == 0
    limiter.spend("a")
    limiter.spend("a")  # locked out again
    limiter.spend("b")
    limiter.spend("c")  # a third address: the table keeps two, and forgets the oldest
    assert limiter.wait_s("a") == 0
