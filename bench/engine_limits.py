"""Peak memory of a real engine under the requests the engine's per-request limits are for.

Starts `chief engine serve` (tiny-random-llama, float32, CPU) through the launcher and sends,
with raw httpx, the requests that used to blow the engine up: an unbounded
`topk_prompt_logprobs` (item 2), a sample result nobody retrieves (item 3), a zstd bomb, an
oversized declared body and an oversized chunked body (item 4), next to the largest requests
the limits still accept. For each it reports the engine's answer and its peak resident memory
during it: the peak is the kernel's high-water mark (VmHWM in /proc/<pid>/status,
reset before each request through /proc/<pid>/clear_refs; psutil's current RSS polled every
10 ms where that reset is not allowed), with the RSS just before and once the answer is in.
Memory freed by Python often stays with the allocator for reuse, so "after" can stay above
"before" without a leak (repeating a request does not grow it).

    python bench/engine_limits.py [--append docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import zstandard
from tinker.proto import tinker_public_pb2 as pb

os.environ.setdefault("TINKER_TELEMETRY", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

TINY = "tiny-random-llama"
MiB = 1024 * 1024


class PeakMemory:
    """Peak RSS of a process during a block, in bytes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.resettable = self._reset_hwm()

    def rss(self) -> int:
        return self._status_kib("VmRSS") * 1024

    def measure(self, fn) -> tuple[object, int]:
        """(fn's result, peak RSS while it ran)."""
        if self.resettable and self._reset_hwm():
            result = fn()
            return result, self._status_kib("VmHWM") * 1024
        return self._polled(fn)

    def _polled(self, fn) -> tuple[object, int]:
        import psutil

        process, peak, done = psutil.Process(self.pid), [0], threading.Event()

        def poll() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.01)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            result = fn()
        finally:
            done.set()
            thread.join()
        return result, max(peak[0], process.memory_info().rss)

    def _reset_hwm(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def _status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"/proc/{self.pid}/status has no {field}")


def sample_body(prompt: list[int], **fields: object) -> dict:
    body = {
        "base_model": TINY,
        "num_samples": 1,
        "prompt": {"chunks": [{"type": "encoded_text", "tokens": prompt}]},
        "sampling_params": {"max_tokens": 1, "temperature": 1.0, "seed": 0},
    }
    body.update(fields)
    return body


def finished(http: httpx.Client, request_id: str) -> httpx.Response:
    while True:
        response = http.post("/retrieve_future", json={"request_id": request_id})
        if not (
            response.headers.get("content-type", "").startswith("application/json")
            and response.json().get("type") == "try_again"
        ):
            return response


def submitted_sample(http: httpx.Client, body: dict, retrieve: bool = True) -> str:
    response = http.post("/asample", json=body)
    if response.status_code != 200:
        return f"{response.status_code}: {response.json()['error'][:70]}"
    request_id = response.json()["request_id"]
    if not retrieve:  # wait until it is done without retrieving it
        while http.get("/engine_stats").json().get("results_unretrieved", 0) < 1:
            time.sleep(0.05)
        return "200, left unretrieved"
    result = finished(http, request_id)
    return f"{result.status_code}, {len(result.content) / MiB:.1f} MiB protobuf"


def answered(response: httpx.Response) -> str:
    return (
        f"{response.status_code}: {response.json()['error'][:70]}"
        if response.status_code >= 400
        else str(response.status_code)
    )


def declared_too_large(base_url: str, key: str) -> str:
    """A 300 MB Content-Length with only a byte sent: refused before anything is read."""
    import socket

    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /api/v1/create_session HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n{"
            ).encode()
        )
        head = sock.recv(200).decode("latin-1")
    return head.split("\r\n", 1)[0].removeprefix("HTTP/1.1 ")


def scenarios(
    http: httpx.Client, base_url: str, key: str, max_tokens: int
) -> list[tuple[str, object]]:
    prompt_200, prompt_2047 = (
        list(range(10, 210)),
        [10 + i % 240 for i in range(2047)],
    )  # vocabulary: 259
    bomb = zstandard.ZstdCompressor().compress(b"\x0a\x80\x80\x80\xc0\x01" + b"a" * 400_000_000)
    chunked = (b" " * MiB for _ in range(9))
    big_body = pb.ForwardBackwardRequest(model_id="a" * (63 * MiB - 16)).SerializeToString()
    return [
        (
            "2: topk_prompt_logprobs=500000, 200-token prompt",
            lambda: submitted_sample(http, sample_body(prompt_200, topk_prompt_logprobs=500_000)),
        ),
        (
            "2: topk_prompt_logprobs=100 (the max), 2047-token prompt",
            lambda: submitted_sample(
                http, sample_body(prompt_2047, topk_prompt_logprobs=100, prompt_logprobs=True)
            ),
        ),
        (
            f"2: num_samples=256 x max_tokens={max_tokens}",
            lambda: submitted_sample(
                http,
                sample_body(
                    [10, 11, 12],
                    num_samples=256,
                    sampling_params={"max_tokens": max_tokens, "seed": 0, "stop": []},
                ),
            ),
        ),
        (
            "3: the topk=100 request again, never retrieved",
            lambda: submitted_sample(
                http, sample_body(prompt_2047, topk_prompt_logprobs=100), retrieve=False
            ),
        ),
        (
            f"4: zstd bomb, {len(bomb) / 1024:.1f} KB inflating to 400 MB",
            lambda: answered(
                http.post("/forward_backward", content=bomb, headers={"Content-Encoding": "zstd"})
            ),
        ),
        ("4: Content-Length 300 MB to create_session", lambda: declared_too_large(base_url, key)),
        (
            "4: 9 MiB chunked body to create_session",
            lambda: answered(http.post("/create_session", content=chunked)),
        ),
        (
            "4: 63 MiB forward_backward body (under the cap)",
            lambda: answered(http.post("/forward_backward", content=big_body)),
        ),
    ]


def run(max_tokens: int) -> tuple[int, list[tuple[str, str, int, int, int]], dict]:
    from tinker_chief.engine.server.launcher import start_engine

    rows = []
    with (
        start_engine(
            state_dir=Path(tempfile.mkdtemp(prefix="bench-limits-")), device="cpu", dtype="float32"
        ) as engine,
        httpx.Client(
            base_url=f"{engine.base_url}/api/v1",
            timeout=600,
            headers={"X-API-Key": engine.api_key_for_clients},
        ) as http,
    ):
        memory = PeakMemory(engine.process.pid)
        submitted_sample(http, sample_body([10, 11, 12]))  # loads the model: part of the baseline
        baseline = memory.rss()
        for name, fn in scenarios(http, engine.base_url, engine.api_key_for_clients, max_tokens):
            before = memory.rss()
            answer, peak = memory.measure(fn)
            rows.append((name, str(answer), before, peak, memory.rss()))
        stats = http.get("/engine_stats").json()
    return baseline, rows, stats


def table(baseline: int, rows: list[tuple[str, str, int, int, int]], stats: dict) -> str:
    lines = [
        f"idle engine after loading {TINY}: {baseline / MiB:.0f} MiB resident",
        "",
        "| request | engine's answer | RSS before → peak → after (MiB) |",
        "|---|---|---:|",
    ]
    lines += [
        f"| {name} | {answer} | {before / MiB:.0f} → {peak / MiB:.0f} → {after / MiB:.0f} |"
        for name, answer, before, peak, after in rows
    ]
    lines += [
        "",
        f"engine_stats at the end: results_unretrieved={stats.get('results_unretrieved')} "
        f"({stats.get('results_unretrieved_bytes', 0) / MiB:.1f} MiB, expire after 15 minutes), "
        f"results_held={stats.get('results_held')} "
        f"({stats.get('results_held_bytes', 0) / MiB:.1f} MiB)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="tokens per sample in the 256-sample request"
    )
    parser.add_argument(
        "--append",
        type=Path,
        default=None,
        metavar="FILE",
        help="also append the result, dated, to FILE (e.g. docs/BENCHMARKS.md)",
    )
    args = parser.parse_args()
    from engine_common import machine

    baseline, rows, stats = run(args.max_tokens)
    text = table(baseline, rows, stats)
    print(f"machine: {machine()}")
    print(text)
    if args.append:
        with args.append.open("a", encoding="utf-8") as out:
            out.write(
                f"\n#### `bench/engine_limits.py`, {datetime.date.today()}\n\n"
                f"Machine: {machine()}\n\n{text}\n"
            )


if __name__ == "__main__":
    main()
