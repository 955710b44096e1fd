"""Helpers shared by the engine server tests: data builders and raw-protocol requests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from tinker import types
from tinker.proto import request_conv
from tinker.types.forward_backward_input import ForwardBackwardInput
from tinker.types.forward_backward_request import ForwardBackwardRequest

from tinker_chief.engine.server.serve import READY_PREFIX

TINY = "tiny-random-llama"
TINKER = str(Path(sys.executable).with_name("tinker"))  # the console script installed with the SDK
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "hello engine, how are you today?",
    "pack my box with five dozen liquor jugs",
]


def sft_datum(tokens: list[int], weights: list[float] | None = None) -> types.Datum:
    """Next-token datum: input tokens[:-1], targets tokens[1:]."""
    weights = weights if weights is not None else [1.0] * (len(tokens) - 1)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": np.asarray(tokens[1:], dtype=np.int64),
            "weights": np.asarray(weights, dtype=np.float32),
        },
    )


def logprobs_of(output: types.ForwardBackwardOutput) -> list[np.ndarray]:
    return [np.asarray(o["logprobs"].to_numpy(), dtype=np.float64) for o in output.loss_fn_outputs]


def fb_body(
    model_id: str,
    seq_id: int,
    data: list[types.Datum],
    loss_fn: str = "cross_entropy",
    forward_only: bool = False,
) -> bytes:
    """The exact protobuf body the SDK would send, built with the SDK's own converter."""
    request = ForwardBackwardRequest(
        forward_backward_input=ForwardBackwardInput(data=data, loss_fn=loss_fn),
        model_id=model_id,
        seq_id=seq_id,
    )
    message = request_conv.forward_backward_request_to_proto(request)
    message.forward_only = forward_only
    return message.SerializeToString()


def raw_model(raw: httpx.Client, seed: int = 0, rank: int = 2) -> str:
    session = raw.post(
        "/create_session", json={"tags": [], "user_metadata": None, "sdk_version": "raw"}
    ).json()
    response = raw.post(
        "/create_model",
        json={
            "session_id": session["session_id"],
            "model_seq_id": 0,
            "base_model": TINY,
            "lora_config": {"rank": rank, "seed": seed},
        },
    )
    response.raise_for_status()
    return wait_json(raw, response.json()["request_id"])["model_id"]


def wait_raw(raw: httpx.Client, request_id: str, timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = raw.post("/retrieve_future", json={"request_id": request_id})
        if (
            response.headers.get("content-type", "").startswith("application/json")
            and response.json().get("type") == "try_again"
        ):
            continue
        return response
    raise TimeoutError(request_id)


def wait_json(raw: httpx.Client, request_id: str) -> dict:
    body = wait_raw(raw, request_id).json()
    assert "error" not in body, body
    return body


def wait_for_url(process: subprocess.Popen, timeout: float = 180) -> str:
    """The base URL a `chief engine serve` process (stdout piped, as text) announces when ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX) :].split()[0]
        if not line and process.poll() is not None:
            raise AssertionError(f"engine exited early: {process.returncode}")
    raise AssertionError("engine never printed its URL")


def whole_response(data: bytes) -> bool:
    """True once `data` holds a response head and all the body its Content-Length announces."""
    head, found, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    lengths = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")]
    return bool(found and lengths and len(body) >= lengths[0])


def raw_http(engine, method: str, route: str, body: object | None = None) -> bytes:
    """One HTTP/1.1 request to the engine's `/api/v1/<route>` as bytes, keep-alive, with its key."""
    content = b"" if body is None else json.dumps(body).encode()
    host = engine.base_url.removeprefix("http://")
    head = (
        f"{method} /api/v1/{route} HTTP/1.1\r\nHost: {host}\r\n"
        f"X-API-Key: {engine.api_key_for_clients}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    )
    return head.encode() + content


def responses_on_one_connection(engine, requests: list[bytes], timeout: float = 60.0) -> list:
    """Send each request on one socket once the previous response has arrived; each response's
    bytes (b"" for every request after the engine closed the connection)."""
    host, port = engine.base_url.removeprefix("http://").rsplit(":", 1)
    responses = []
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        for request in requests:
            received = b""
            try:
                sock.sendall(request)
                while not whole_response(received) and (chunk := sock.recv(65536)):
                    received += chunk
            except (BrokenPipeError, ConnectionResetError):
                pass
            responses.append(received)
    return responses


def run_tinker_cli(
    base_url: str, api_key: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """The SDK's own `tinker` CLI against an engine, as a user runs it (`TINKER_BASE_URL` + key).
    With the faulthandler on, so an abort at exit shows the threads' stacks (through the SDK's
    pyqwest transport it aborted at exit now and then; the engine now turns that transport off)."""
    env = {
        **os.environ,
        "TINKER_BASE_URL": base_url,
        "TINKER_API_KEY": api_key,
        "PYTHONFAULTHANDLER": "1",
    }
    return subprocess.run(
        [TINKER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
