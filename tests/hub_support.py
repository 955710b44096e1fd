"""Stand-ins for the Hugging Face hub, so no test reaches the internet: a hub-layout entry in a
temporary HF cache, and a local HTTP server answering the calls made to fetch files
(`GET /api/models/<id>[/revision/<rev>]` for the file list and commit, `HEAD`/`GET
/<id>/resolve/<rev>/<file>` with the headers a hub sends: X-Repo-Commit, ETag, Content-Length)
and the calls `huggingface_hub` makes to publish (`POST /api/repos/create`, `POST
/api/validate-yaml`, `POST /api/models/<id>/preupload/<rev>` answering "regular" for every file,
`POST /api/models/<id>/commit/<rev>` with its NDJSON body, `GET /api/models/<id>/tree/<rev>`).

The server can be made hostile (`HubStandIn`'s `etag`, `repo_commit`, `drip_s`, `send_length`)
so a test sees what chief does with a hub that lies about names, sizes or never finishes, or
refusing (`token`: writes without that bearer token get 401; `refuse`: every write gets that
status)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
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
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


def stand_in_files(tokenizer_model: str, config: dict | None = None) -> dict[str, bytes]:
    """config.json (Qwen3-8B's values by default) and the tokenizer files of a built-in model."""
    source = materialize_model(tokenizer_model)
    files = {"config.json": json.dumps(config or QWEN3_8B_CONFIG).encode()}
    files.update(
        {
            name: (source / name).read_bytes()
            for name in TOKENIZER_FILES
            if (source / name).is_file()
        }
    )
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
    "METHOD path" it was sent.

    Hostile settings: `etag` replaces every file's ETag and `repo_commit` its X-Repo-Commit (e.g.
    a path that climbs out of the cache); `drip_s` sends every body one byte per `drip_s`
    seconds; `send_length=False` sends no Content-Length (the body ends when the connection
    closes), so only what is read can tell its size. `cdn_host` answers every file's GET with a
    redirect to `http://CDN_HOST:PORT/cdn/...`, as the hub sends large files to its CDN (the
    stand-in serves that path too; the test makes the name resolve, or not)."""

    repos: dict[str, dict[str, bytes]]
    url: str = ""
    requests: list[str] = field(default_factory=list)
    etag: str | None = None
    repo_commit: str | None = None
    drip_s: float = 0.0
    send_length: bool = True
    cdn_host: str | None = None
    token: str | None = None
    refuse: int | None = None
    private: dict[str, bool] = field(default_factory=dict)  # repo id -> created private
    # repo id -> its commits, oldest first
    commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def commit(self, repo_id: str) -> str:
        made = self.commits.get(repo_id)
        return made[-1]["oid"] if made else hashlib.sha1(repo_id.encode()).hexdigest()

    def answer(
        self, method: str, raw_path: str, headers: Any = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(f"{method} {raw_path}")
        path = unquote(urlsplit(raw_path).path).strip("/").split("/")
        if method == "POST":
            return self._write(path, headers or {}, body)
        if path[:2] == ["api", "models"] and len(path) >= 5 and path[4] == "tree":
            return self._tree("/".join(path[2:4]))
        if path[:2] == ["api", "models"] and len(path) >= 4:
            return self._info("/".join(path[2:4]))
        if len(path) >= 5 and path[2] == "resolve":
            return self._file("/".join(path[:2]), "/".join(path[4:]))
        if len(path) >= 4 and path[0] == "cdn":
            if (headers or {}).get("Authorization"):
                self.requests.append("the CDN was sent the Authorization header")
            return 200, {}, self.repos["/".join(path[1:3])]["/".join(path[3:])]
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

    def _write(
        self, path: list[str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.refuse is not None:
            return self.refuse, {}, json.dumps({"error": "the stand-in refuses writes"}).encode()
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, b'{"error": "Invalid credentials in Authorization header"}'
        if path == ["api", "repos", "create"]:
            return self._create(json.loads(body))
        if path == ["api", "validate-yaml"]:
            return 200, {"Content-Type": "application/json"}, b'{"errors": [], "warnings": []}'
        repo_id = "/".join(path[2:4])
        if path[:2] != ["api", "models"] or len(path) < 6 or repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'
        if path[4] == "preupload":
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in json.loads(body)["files"]
            ]
            return 200, {"Content-Type": "application/json"}, json.dumps({"files": files}).encode()
        if path[4] == "commit":
            return self._commit(repo_id, body)
        return 404, {}, b"{}"

    def _create(self, request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        repo_id = f"{request['organization']}/{request['name']}"
        if repo_id in self.repos:
            url = f"{self.url}/{repo_id}"
            conflict = {"error": "You already created this model repo", "url": url}
            return 409, {}, json.dumps(conflict).encode()
        self.repos[repo_id] = {}
        visibility = request.get("visibility", "private" if request.get("private") else "public")
        self.private[repo_id] = visibility == "private"
        answer = json.dumps({"url": f"{self.url}/{repo_id}"}).encode()
        return 200, {"Content-Type": "application/json"}, answer

    def _commit(self, repo_id: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Apply one NDJSON commit (header, base64 `file` lines, `deletedFile` lines)."""
        files = dict(self.repos[repo_id])
        header: dict[str, Any] = {}
        for line in body.splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                header = value
            elif item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                files.pop(value["path"], None)
            else:
                refusal = {"error": f"the stand-in takes no {item['key']}"}
                return 422, {}, json.dumps(refusal).encode()
        digest = hashlib.sha1(self.commit(repo_id).encode())
        for name, content in sorted(files.items()):
            digest.update(name.encode() + b"\0" + content)
        oid = digest.hexdigest()
        self.repos[repo_id] = files
        made = {"oid": oid, "summary": header.get("summary"), "files": files}
        self.commits.setdefault(repo_id, []).append(made)
        answer = {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def _tree(self, repo_id: str) -> tuple[int, dict[str, str], bytes]:
        if repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'
        entries = [
            {
                "type": "file",
                "path": name,
                "size": len(content),
                "oid": hashlib.sha1(content).hexdigest(),
            }
            for name, content in sorted(self.repos[repo_id].items())
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps(entries).encode()

    def _file(self, repo_id: str, filename: str) -> tuple[int, dict[str, str], bytes]:
        files = self.repos.get(repo_id)
        if files is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"{}"
        if filename not in files:
            return (
                404,
                {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": self.commit(repo_id)},
                b"{}",
            )
        content = files[filename]
        headers = {
            "X-Repo-Commit": self.repo_commit or self.commit(repo_id),
            "ETag": f'"{self.etag or hashlib.sha1(content).hexdigest()}"',
        }
        if self.cdn_host is not None:
            port = urlsplit(self.url).port
            headers["Location"] = f"http://{self.cdn_host}:{port}/cdn/{repo_id}/{filename}"
            return 302, headers, b""
        return 200, headers, content


@contextmanager
def hub_stand_in(repos: dict[str, dict[str, bytes]], **hostile: Any) -> Iterator[HubStandIn]:
    """`HubStandIn` (with `hostile` settings) listening on 127.0.0.1 in a thread, for the block's
    duration."""
    hub = HubStandIn(repos, **hostile)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, with_body: bool, request_body: bytes = b"") -> None:
            status, headers, body = hub.answer(self.command, self.path, self.headers, request_body)
            self.send_response(status)
            length = {"Content-Length": str(len(body))} if hub.send_length else {}
            for name, value in {**headers, **length}.items():
                self.send_header(name, value)
            self.end_headers()
            if with_body:
                self._send(body)

        def _send(self, body: bytes) -> None:
            try:
                if not hub.drip_s:
                    self.wfile.write(body)
                    return
                for index in range(len(body)):
                    self.wfile.write(body[index : index + 1])
                    self.wfile.flush()
                    time.sleep(hub.drip_s)
            except OSError:  # the client gave up (what a test of a slow hub expects)
                pass

        def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
            self._reply(with_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._reply(with_body=False)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self._reply(with_body=True, request_body=self.rfile.read(length))

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


def online_env(hub: HubStandIn, cache: Path, home: Path | None = None) -> dict[str, str | None]:
    """`run_chief`'s environment for fetching from `hub` into `cache`: the hub on, no token sent
    to it (HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE both switch it off), and with `home` a HOME of
    the test's own, so whatever lands outside the cache is where the test can see it."""
    env: dict[str, str | None] = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": None,
        "TRANSFORMERS_OFFLINE": None,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env.update({"HOME": str(home), "HF_HOME": str(home / ".cache" / "huggingface")})
    return env
