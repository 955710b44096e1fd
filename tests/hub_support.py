"""Stand-ins for the Hugging Face hub, so no test reaches the internet: a hub-layout entry in a
temporary HF cache, and a local HTTP server answering the calls huggingface_hub makes to fetch
files (`GET /api/models/<id>` for the file list, `HEAD`/`GET /<id>/resolve/<rev>/<file>` with the
headers `hf_hub_download` checks: X-Repo-Commit, ETag, Content-Length)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tinker_chief.models import materialize_model

# The real Qwen/Qwen3-8B config.json values (hub revision of 2025-04).
QWEN3_8B_CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "tie_word_embeddings": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000,
    "torch_dtype": "bfloat16",
    "hidden_act": "silu",
}
Address = tuple[str, int]
ANY_PORT: Address = ("127.0.0.1", 0)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def stand_in_files(tokenizer_model: str, config: dict | None = None) -> dict[str, bytes]:
    """config.json (Qwen3-8B's values by default) and the tokenizer files of a built-in model."""
    source = materialize_model(tokenizer_model)
    files = {"config.json": json.dumps(config or QWEN3_8B_CONFIG).encode()}
    files.update({name: (source / name).read_bytes() for name in TOKENIZER_FILES if (source / name).is_file()})
    return files


def write_cache_entry(hub: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """A hub-layout cache entry (refs/main -> snapshot) holding `files`; returns the snapshot."""
    folder = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        (snapshot / name).write_bytes(content)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    return snapshot


@dataclass
class HubStandIn:
    """A local hub serving `repos` (repo id -> file name -> content); `requests` keeps every
    "METHOD path" it was sent."""

    repos: dict[str, dict[str, bytes]]
    url: str = ""
    requests: list[str] = field(default_factory=list)

    def commit(self, repo_id: str) -> str:
        return hashlib.sha1(repo_id.encode()).hexdigest()

    def answer(self, method: str, raw_path: str) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(f"{method} {raw_path}")
        path = unquote(urlsplit(raw_path).path).strip("/").split("/")
        if path[:2] == ["api", "models"] and len(path) >= 4:
            return self._info("/".join(path[2:4]))
        if len(path) >= 5 and path[2] == "resolve":
            return self._file("/".join(path[:2]), "/".join(path[4:]))
        return 404, {}, b"{}"

    def _info(self, repo_id: str) -> tuple[int, dict[str, str], bytes]:
        if repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'
        body = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": self.commit(repo_id),
            "private": False,
            "siblings": [{"rfilename": name} for name in self.repos[repo_id]],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _file(self, repo_id: str, filename: str) -> tuple[int, dict[str, str], bytes]:
        files = self.repos.get(repo_id)
        if files is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"{}"
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": self.commit(repo_id)}, b"{}"
        content = files[filename]
        return 200, {"X-Repo-Commit": self.commit(repo_id), "ETag": f'"{hashlib.sha1(content).hexdigest()}"'}, content


@contextmanager
def hub_stand_in(repos: dict[str, dict[str, bytes]]) -> Iterator[HubStandIn]:
    """`HubStandIn` listening on 127.0.0.1 in a thread, for the block's duration."""
    hub = HubStandIn(repos)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, with_body: bool) -> None:
            status, headers, body = hub.answer(self.command, self.path)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
            self._reply(with_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._reply(with_body=False)

        def log_message(self, format: str, *args: object) -> None:  # quiet: `requests` is the log
            pass

    with serving(Handler) as url:
        hub.url = url
        yield hub


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], address: Address = ANY_PORT) -> Iterator[str]:
    """`handler` answering at `address` (IPv4 or IPv6) in a thread for the block's duration;
    yields the server's base URL."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
    server = server_class(address, handler)
    host = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
