"""The playground's HTTP API, driven with httpx against a real server in a thread and the real
engine: who gets in, bad requests answered in one line, streamed answers whose probabilities are
the model's own, the exact prompt tokens, and chats saved as eval rows that read back."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import pytest

from tests.playground.conftest import BASE_REF, CODES_FILE, TINY, client, serving

CHAT = [{"role": "user", "content": "What is the secret code for lapa?"}]


def _no_traceback(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"] and "\n" not in body["error"]
    return body["error"]


@pytest.fixture(scope="module")
def server(evaluated_project, engine):
    from tinker_chief.connection import choose_backend, open_connection

    choice = choose_backend(base_url=engine.base_url)
    with (
        open_connection(choice, api_key=engine.api_key_for_clients) as connection,
        serving(evaluated_project, connection) as running,
    ):
        yield running


# ----------------------------------------------------------------------------------- the door


def test_requests_without_the_token_or_from_elsewhere_are_refused(server) -> None:
    base = f"http://127.0.0.1:{server.port}"
    token = {"Authorization": f"token {server.token}"}
    no_token = httpx.get(f"{base}/api/state")
    assert no_token.status_code == 403 and "no valid token" in _no_traceback(no_token)
    wrong = httpx.get(f"{base}/api/state", headers={"Authorization": "token not-the-token"})
    assert wrong.status_code == 403
    assert httpx.get(f"{base}/", params={"token": "nope"}).status_code == 403
    # DNS rebinding: a foreign name resolving to 127.0.0.1 still sends its own Host.
    rebound = httpx.get(
        f"{base}/api/state", headers={**token, "Host": f"evil.example:{server.port}"}
    )
    assert rebound.status_code == 403 and "Host header" in _no_traceback(rebound)
    foreign = httpx.post(
        f"{base}/api/chat", headers={**token, "Origin": "http://evil.example"}, json={}
    )
    assert foreign.status_code == 403 and "cross-origin" in _no_traceback(foreign)
    page = httpx.get(f"{base}/", headers={"Host": "evil.example"})
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/plain")
    # Its own page's Origin passes; so does localhost, the same server by another loopback name.
    own = httpx.get(f"{base}/api/state", headers={**token, "Origin": base})
    assert own.status_code == 200
    assert (
        httpx.get(
            f"{base}/api/state", headers={**token, "Host": f"localhost:{server.port}"}
        ).status_code
        == 200
    )


def test_the_printed_url_sets_a_strict_cookie_the_page_then_uses(server) -> None:
    with httpx.Client() as browser:
        page = browser.get(server.url)
        assert page.status_code == 200 and 'data-testid="prompt"' in page.text
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and server.token in cookie
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert browser.get(f"http://127.0.0.1:{server.port}/api/state").status_code == 200
        script = browser.get(f"http://127.0.0.1:{server.port}/static/playground.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith(
            "text/javascript"
        )


def test_bad_requests_get_one_clear_line(server) -> None:
    with client(server) as api:
        huge = api.post(
            "/api/chat",
            content=b'{"chats": [{"model": "x", "messages": [{"role": "user", "content": "'
            + b"a" * (10 * 1024 * 1024)
            + b'"}]}]}',
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413 and "too large" in _no_traceback(huge)

        def chunks():  # no Content-Length: the cap holds while reading
            for _ in range(40):
                yield b"a" * 65536

        streamed = api.post("/api/chat", content=chunks())
        assert streamed.status_code == 413 and "at most 1024 KiB" in _no_traceback(streamed)
        not_json = api.post("/api/chat", content=b"{nope")
        assert not_json.status_code == 400 and "not JSON" in _no_traceback(not_json)
        assert "must be a JSON object" in _no_traceback(api.post("/api/chat", json=[1, 2]))
        bad_field = api.post(
            "/api/chat", json={"chats": [{"model": TINY, "messages": CHAT}], "temperature": -1}
        )
        assert bad_field.status_code == 400 and "field `temperature`" in _no_traceback(bad_field)
        bad_role = api.post(
            "/api/chat",
            json={"chats": [{"model": TINY, "messages": [{"role": "robot", "content": "x"}]}]},
        )
        assert "field `chats[0].messages[0].role`" in _no_traceback(bad_role)
        five = api.post("/api/chat", json={"chats": [{"model": TINY, "messages": CHAT}] * 5})
        assert five.status_code == 400 and "field `chats`" in _no_traceback(five)
        twice = api.post("/api/chat", json={"chats": [{"model": TINY, "messages": CHAT}] * 2})
        assert twice.status_code == 400 and "picked twice" in _no_traceback(twice)
        answered = CHAT + [{"role": "assistant", "content": "x"}]
        ends = api.post("/api/chat", json={"chats": [{"model": TINY, "messages": answered}]})
        assert ends.status_code == 400 and "last turn must be the user's" in _no_traceback(ends)
        unknown = api.post(
            "/api/chat", json={"chats": [{"model": "no-such-model", "messages": CHAT}]}
        )
        message = _no_traceback(unknown)
        assert (
            unknown.status_code == 404
            and "unknown model 'no-such-model'" in message
            and TINY in message
        )
        spaced = api.post(
            "/api/chat", json={"chats": [{"model": "tinker://a b", "messages": CHAT}]}
        )
        assert spaced.status_code == 404 and "not a tinker:// path" in _no_traceback(spaced)
        route = api.get("/api/nothing")
        assert route.status_code == 404 and "/api/nothing" in _no_traceback(route)
        method = api.get("/api/chat")
        assert method.status_code == 405 and _no_traceback(method)
        missing = api.get("/api/diff", params={"task": "codes"})
        assert missing.status_code == 400 and "a, b" in _no_traceback(missing)
        no_run = api.get("/api/diff", params={"task": "nope", "a": BASE_REF, "b": "tiny:v3"})
        assert no_run.status_code == 404 and "no finished run of task `nope`" in _no_traceback(
            no_run
        )
        no_model = api.get("/api/diff", params={"task": "codes", "a": "ghost:v9", "b": "tiny:v3"})
        assert no_model.status_code == 404 and "ghost" in _no_traceback(no_model)


def test_a_path_the_backend_does_not_have_fails_in_its_own_pane(server) -> None:
    chats = [
        {"model": TINY, "messages": CHAT},
        {"model": "tinker://nowhere/sampler_weights/x", "messages": CHAT},
    ]
    events = _chat(server, {"chats": chats, "max_tokens": 3})
    errors = [e for e in events if e["type"] == "error"]
    assert [e["model"] for e in errors] == ["tinker://nowhere/sampler_weights/x"]
    assert "Traceback" not in errors[0]["message"] and "tinker://nowhere" in errors[0]["message"]
    assert any(e["type"] == "done" and e["model"] == TINY for e in events) and events[-1] == {
        "type": "end"
    }


# ------------------------------------------------------------------------------------ models


def test_state_lists_versions_with_status_and_metrics_and_the_served_base_models(server) -> None:
    with client(server) as api:
        state = api.get("/api/state").json()
    models = {m["ref"]: m for m in state["models"]}
    assert {"tiny:v1", "tiny:v2", "tiny:v3", BASE_REF, TINY} <= set(models)
    assert models["tiny:v3"]["kind"] == "version" and models["tiny:v3"]["status"] == "candidate"
    assert models["tiny:v3"]["target"].startswith("tinker://")
    assert set(models["tiny:v3"]["headline"]) == {"codes/accuracy", "codes_inspect/accuracy"}
    assert (
        models[TINY]["kind"] == "base" and state["models"][-2]["ref"] == TINY
    )  # the project's first
    assert "SmolLM2-135M-Instruct-Q4_1" in models  # what the engine serves
    assert {t["name"] for t in state["tasks"]} == {"codes", "codes_inspect"}
    assert state["save_targets"] == ["playground/conversations.jsonl", CODES_FILE]


# -------------------------------------------------------------------------------------- chat


def _chat(server, body: dict) -> list[dict]:
    with client(server) as api, api.stream("POST", "/api/chat", json=body) as response:
        assert (
            response.status_code == 200
            and response.headers["content-type"] == "application/x-ndjson"
        )
        return [json.loads(line) for line in response.iter_lines() if line]


def test_two_models_stream_their_answers_in_chunks_with_the_models_own_probabilities(
    server, connection
) -> None:
    chats = [{"model": TINY, "messages": CHAT}, {"model": "tiny:v3", "messages": CHAT}]
    events = _chat(
        server, {"chats": chats, "max_tokens": 10, "temperature": 0.9, "seed": 7, "samples": 2}
    )
    assert events[-1] == {"type": "end"}
    for model in (TINY, "tiny:v3"):
        mine = [e for e in events if e.get("model") == model]
        assert mine[0]["type"] == "prompt" and mine[0]["renderer"] == "chatml"
        for sample in (0, 1):
            chunks = [e for e in mine if e["type"] == "tokens" and e["sample"] == sample]
            (done,) = [e for e in mine if e["type"] == "done" and e["sample"] == sample]
            assert len(chunks) >= 2 and all(
                len(c["tokens"]) <= 4 for c in chunks
            )  # stream_tokens=4
            assert [t["id"] for c in chunks for t in c["tokens"]] == [
                t["id"] for t in done["tokens"]
            ]
            assert all(len(t["top"]) == 5 for t in done["tokens"])
    # The probabilities shown are the model's own: compute_logprobs on prompt + answer agrees.
    done = next(e for e in events if e["type"] == "done" and e["model"] == "tiny:v3")
    prompt = [
        t["id"]
        for t in next(e for e in events if e["type"] == "prompt" and e["model"] == "tiny:v3")[
            "tokens"
        ]
    ]
    answer = [t["id"] for t in done["tokens"]]
    model_path = _models(server)["tiny:v3"]["target"]
    expected = _compute_logprobs(connection, model_path, prompt + answer)[len(prompt) :]
    assert all(
        math.isclose(t["logprob"], lp, abs_tol=1e-4) for t, lp in zip(done["tokens"], expected)
    )
    assert all(t["top"][0]["logprob"] >= t["logprob"] - 1e-6 for t in done["tokens"])


def _models(server) -> dict:
    with client(server) as api:
        return {m["ref"]: m for m in api.get("/api/state").json()["models"]}


def _compute_logprobs(connection, model_path: str, ids: list[int]) -> list[float]:
    import tinker

    sampling = connection.sampling_client(model_path=model_path)
    return sampling.compute_logprobs(tinker.ModelInput.from_ints(ids)).result()


def test_one_request_per_answer_samples_exactly_what_the_eval_sampler_does(
    evaluated_project, connection
) -> None:
    from tinker_chief.evals import GenerationSettings, ModelSampler

    async def eval_sampler_tokens() -> list[int]:
        sampler = await ModelSampler.create(connection.service_client(), TINY)
        settings = GenerationSettings(max_tokens=12, temperature=0.8, seed=11)
        return (await sampler.generate(CHAT, settings))[0].tokens

    expected = asyncio.run(eval_sampler_tokens())
    with serving(evaluated_project, connection, stream_tokens=0) as whole:
        events = _chat(
            whole,
            {
                "chats": [{"model": TINY, "messages": CHAT}],
                "max_tokens": 12,
                "temperature": 0.8,
                "seed": 11,
            },
        )
    (chunk,) = [e for e in events if e["type"] == "tokens"]
    assert [t["id"] for t in chunk["tokens"]] == expected


def test_greedy_answers_do_not_depend_on_the_chunk_size(
    server, evaluated_project, connection
) -> None:
    body = {"chats": [{"model": "tiny:v3", "messages": CHAT}], "max_tokens": 9, "temperature": 0.0}
    chunked = next(e for e in _chat(server, body) if e["type"] == "done")
    with serving(evaluated_project, connection, stream_tokens=0) as whole:
        single = next(e for e in _chat(whole, body) if e["type"] == "done")
    assert [t["id"] for t in chunked["tokens"]] == [t["id"] for t in single["tokens"]]


def test_the_prompt_tokens_are_exactly_what_the_renderer_sends_with_their_nll(
    server, connection
) -> None:
    from tinker_chief.models import get_renderer, load_tokenizer

    system = "You answer with secret codes."
    with client(server) as api:
        shown = api.post(
            "/api/prompt", json={"model": TINY, "system": system, "messages": CHAT}
        ).json()
        scored = api.post(
            "/api/prompt",
            json={"model": "tiny:v3", "system": system, "messages": CHAT, "nll": True},
        ).json()
    renderer = get_renderer("chatml", load_tokenizer(TINY))
    messages = [{"role": "system", "content": system}, *CHAT]
    expected = renderer.build_generation_prompt(messages).to_ints()
    assert [t["id"] for t in shown["tokens"]] == expected and shown["renderer"] == "chatml"
    assert "logprob" not in shown["tokens"][0]
    logprobs = _compute_logprobs(connection, _models(server)["tiny:v3"]["target"], expected)
    assert scored["tokens"][0]["logprob"] is None
    assert all(
        math.isclose(t["logprob"], lp, abs_tol=1e-4)
        for t, lp in zip(scored["tokens"][1:], logprobs[1:])
    )
    assert math.isclose(scored["nll"], -sum(logprobs[1:]) / (len(expected) - 1), rel_tol=1e-4)


# ------------------------------------------------------------------------------------- saving


def test_a_saved_chat_is_an_eval_row_that_chief_reads_back(server, evaluated_project) -> None:
    from tinker_chief.evals.eval_samples import load_samples

    one = {"model": "tiny:v3", "messages": CHAT + [{"role": "assistant", "content": "lapa-lapa-7"}]}
    longer = {
        "model": TINY,
        "system": "Be brief.",
        "messages": [
            *one["messages"],
            {"role": "user", "content": "And for mo?"},
            {"role": "assistant", "content": "mo-mo-7"},
        ],
    }
    with client(server) as api:
        first = api.post("/api/save", json=one).json()
        again = api.post("/api/save", json=one).json()
        second = api.post("/api/save", json=longer).json()
        to_suite = api.post("/api/save", json={**one, "target": CODES_FILE}).json()
        outside = api.post("/api/save", json={**one, "target": "../elsewhere.jsonl"})
        unanswered = api.post("/api/save", json={"model": TINY, "messages": [*CHAT, *CHAT]})
        saved = api.get("/api/saved").json()["rows"]
    assert (
        first["saved"] and not again["saved"] and first["id"] == again["id"] and to_suite["saved"]
    )
    assert outside.status_code == 400 and "expected one of" in _no_traceback(outside)
    assert unanswered.status_code == 400 and "must end with an answer" in _no_traceback(unanswered)
    rows = load_samples(evaluated_project / "playground" / "conversations.jsonl")
    assert [r.id for r in rows] == [first["id"], second["id"]] == [s["id"] for s in saved]
    assert rows[0].messages == CHAT and rows[0].target == "lapa-lapa-7"
    assert rows[0].metadata == {"source": "chief playground", "model": "tiny:v3"}
    assert (
        rows[1].messages[0] == {"role": "system", "content": "Be brief."}
        and rows[1].target == "mo-mo-7"
    )
    assert (
        rows[1].messages[-1] == {"role": "user", "content": "And for mo?"}
        and len(rows[1].messages) == 4
    )
    assert (
        load_samples(evaluated_project / CODES_FILE)[-1].id == first["id"]
    )  # the suite's file grew
