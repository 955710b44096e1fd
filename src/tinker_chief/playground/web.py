"""The playground's web app: one page, its assets and a small JSON API, behind `guard.Guard`.

Starlette (what the engine's FastAPI is built on), served by uvicorn (`serving.py`). Routes:

    GET  /                the page (static/index.html; everything it loads is served from here)
    GET  /static/<file>   its script and style sheet
    GET  /api/state       project, backend, models to pick, tasks to diff, where rows are saved
    POST /api/chat        answers of 1-4 models as NDJSON events while they are sampled (`chat.py`)
    POST /api/prompt      the tokens a chat renders to for one model, with per-token NLL on request
    GET  /api/diff        ?task=&a=&b=: the eval diff of version b against a (`diffs.py`)
    POST /api/save        a chat as an eval row (`conversations.py`)
    GET  /api/saved       the rows saved so far

Every error is `{"error": "<one line>"}` with a fitting status (400 bad request, 403 refused,
404 unknown model/task/route, 413 too large, 502 the backend failed, 500 anything else): never a
traceback. Registry reads run in the thread pool (SQLite connections stay in their thread).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinker_chief.errors import (
    ChiefError,
    ConfigurationError,
    DataError,
    EngineError,
    EvalError,
    ModelNotFoundError,
)
from tinker_chief.evals.model_sampler import GenerationSettings
from tinker_chief.playground import chat, conversations, diffs, picker
from tinker_chief.playground.context import PlaygroundContext
from tinker_chief.playground.guard import BodyTooLarge, Guard

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from tinker_cookbook.renderers import Message

    from tinker_chief.connection import Connection
    from tinker_chief.registry import Registry

    Handler = Callable[[Request], Awaitable[Response]]

MAX_BODY_BYTES = 1 << 20  # a chat of a few long turns; a 10 MB paste is refused, not sampled
MAX_TEXT_CHARS = 200_000
MAX_TURNS = 200
EXPORT_DATA_MARK = "<!-- chief:export-data -->"  # where the static export adds its data script
ASSETS = {
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def asset_text(name: str) -> str:
    """A file of the page, as shipped in the package (`static/`)."""
    return (
        resources.files("tinker_chief.playground")
        .joinpath("static", name)
        .read_text(encoding="utf-8")
    )


# ------------------------------------------------------------------------------ request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Turn(_Body):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TEXT_CHARS)


class ChatItem(_Body):
    model: str
    messages: list[Turn] = Field(min_length=1, max_length=MAX_TURNS)


class ChatBody(_Body):
    chats: list[ChatItem] = Field(min_length=1, max_length=chat.MAX_MODELS)
    system: str = Field("", max_length=MAX_TEXT_CHARS)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(128, ge=1, le=4096)
    seed: int | None = Field(0, ge=0, le=2**31 - 1)
    samples: int = Field(1, ge=1, le=chat.MAX_SAMPLES)


class PromptBody(_Body):
    model: str
    system: str = Field("", max_length=MAX_TEXT_CHARS)
    messages: list[Turn] = Field(min_length=1, max_length=MAX_TURNS)
    nll: bool = False


class SaveBody(_Body):
    model: str
    system: str = Field("", max_length=MAX_TEXT_CHARS)
    messages: list[Turn] = Field(min_length=2, max_length=MAX_TURNS)
    target: str | None = None


class BadRequest(ChiefError):
    """A request the API cannot take (shape, size, JSON), answered 400."""


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ""
    for part in first.get("loc", ()):
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return f"field `{where or '(body)'}`: {first.get('msg', 'invalid')}"


BodyT = TypeVar("BodyT", bound=_Body)


def parse_body(raw: bytes, model: type[BodyT]) -> BodyT:
    try:
        value = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise BadRequest(_validation_message(exc)) from None


def _messages(system: str, turns: list[Turn], *, ends_with: str) -> list[Message]:
    if turns[-1].role != ends_with:
        raise BadRequest(f"field `messages`: the last turn must be the {ends_with}'s")
    chat_turns: list[Message] = [{"role": t.role, "content": t.content} for t in turns]
    return [{"role": "system", "content": system}, *chat_turns] if system else chat_turns


# ------------------------------------------------------------------------------------ the app


@dataclass
class PlaygroundState:
    """What the routes share: the project, the backend connection (None: no chat), open models."""

    context: PlaygroundContext
    connection: Connection | None
    stream_tokens: int = 16
    handles: chat.ModelHandles | None = None
    served: list[str] | None = None
    served_problem: str | None = None

    def __post_init__(self) -> None:
        if self.connection is not None:
            self.handles = chat.ModelHandles(self.connection, self.context.renderer_choice)

    def served_models(self) -> list[str]:
        """The backend's base models, asked once (a failure is shown, not fatal)."""
        if self.served is None:
            self.served = []
            if self.connection is not None:
                try:
                    self.served = self.connection.served_models()
                except EngineError as exc:
                    self.served_problem = str(exc)
        return self.served

    def choices(self, registry: Registry | None) -> list[picker.ModelChoice]:
        versions = picker.version_choices(registry) if registry is not None else []
        return [*versions, *picker.base_choices(self.served_models(), self.context.base_model)]


@contextmanager
def _registry(context: PlaygroundContext) -> Iterator[Registry | None]:
    registry = context.open_registry()
    try:
        yield registry
    finally:
        if registry is not None:
            registry.close()


def _status(exc: BaseException) -> int:
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, LookupError):  # an unknown model, version, task or route
        return 404
    if isinstance(exc, (BadRequest, ConfigurationError, DataError)):
        return 400
    if isinstance(exc, (EngineError, EvalError)):  # the backend could not sample or score
        return 502
    return 500


def error_response(exc: BaseException) -> JSONResponse:
    from starlette.responses import JSONResponse

    message = chat.describe(exc) if not isinstance(exc, BodyTooLarge) else str(exc)
    if _status(exc) == 500 and not isinstance(exc, ChiefError):
        message = f"internal error: {message}"
    return JSONResponse(
        {"error": message}, status_code=_status(exc), headers={"Cache-Control": "no-store"}
    )


def _api(handler: Handler) -> Handler:
    """Every error of `handler` as a one-line JSON answer."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:  # the page gets one line, whatever went wrong
            return error_response(exc)

    return guarded


def make_app(
    state: PlaygroundState, *, token: str, port: int, max_body: int = MAX_BODY_BYTES
) -> Guard:
    """The ASGI app for `state`, behind the guard for `token` at 127.0.0.1:`port`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    context = state.context

    async def page(request: Request) -> Response:
        return HTMLResponse(
            asset_text("index.html").replace(EXPORT_DATA_MARK, ""), headers=PAGE_HEADERS
        )

    @_api
    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise ModelNotFoundError(f"no file {name!r} here")
        return Response(asset_text(name), media_type=ASSETS[name], headers=PAGE_HEADERS)

    def _state() -> dict[str, object]:
        with _registry(context) as registry:
            choices = state.choices(registry)
            tasks = diffs.diff_catalog(context, registry)
        return {
            "mode": "live",
            "project": context.name,
            "backend": state.connection.where if state.connection is not None else None,
            "chat": state.handles is not None,
            "served_problem": state.served_problem,
            "models": [c.to_json() for c in choices],
            "tasks": tasks,
            "save_targets": context.save_targets(),
            "stream_tokens": state.stream_tokens,
        }

    @_api
    async def api_state(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(_state))

    def _resolve(refs: list[str]) -> list[picker.ModelChoice]:
        with _registry(context) as registry:
            choices = state.choices(registry)
            return [picker.resolve_choice(ref, choices, registry) for ref in refs]

    def _handles() -> chat.ModelHandles:
        if state.handles is None:
            raise EngineError(
                "this playground has no backend to sample from (it was started without one)"
            )
        return state.handles

    @_api
    async def api_chat(request: Request) -> Response:
        body = parse_body(await request.body(), ChatBody)
        handles = _handles()
        refs = [item.model for item in body.chats]
        twice = next((ref for ref in refs if refs.count(ref) > 1), None)
        if twice is not None:
            raise BadRequest(f"model {twice!r} is picked twice; pick each model once")
        choices = await run_in_threadpool(_resolve, refs)
        jobs = [
            (choice, _messages(body.system, item.messages, ends_with="user"))
            for choice, item in zip(choices, body.chats)
        ]
        settings = GenerationSettings(
            max_tokens=body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
        )

        async def lines() -> AsyncIterator[bytes]:
            async for event in chat.chat_events(
                handles, jobs, settings, body.samples, state.stream_tokens
            ):
                yield (json.dumps(event) + "\n").encode()

        return StreamingResponse(
            lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"}
        )

    @_api
    async def api_prompt(request: Request) -> Response:
        body = parse_body(await request.body(), PromptBody)
        handles = _handles()
        (choice,) = await run_in_threadpool(_resolve, [body.model])
        messages = _messages(body.system, body.messages, ends_with="user")
        return JSONResponse(await chat.scored_prompt(handles, choice, messages, body.nll))

    @_api
    async def api_diff(request: Request) -> Response:
        query = request.query_params
        missing = [name for name in ("task", "a", "b") if not query.get(name)]
        if missing:
            raise BadRequest(
                f"missing query parameter(s) {', '.join(missing)}: /api/diff?task=T&a=REF&b=REF"
            )

        def build() -> dict[str, object]:
            with _registry(context) as registry:
                return diffs.build_diff(context, registry, query["task"], query["a"], query["b"])

        return JSONResponse(await run_in_threadpool(build))

    @_api
    async def api_save(request: Request) -> Response:
        body = parse_body(await request.body(), SaveBody)
        messages = [{"role": t.role, "content": t.content} for t in body.messages]
        saved = await run_in_threadpool(
            conversations.save_conversation, context, body.target, body.system, messages, body.model
        )
        return JSONResponse(saved)

    @_api
    async def api_saved(request: Request) -> Response:
        return JSONResponse(
            {"rows": await run_in_threadpool(conversations.saved_conversations, context)}
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(ModelNotFoundError(f"no such page or API route: {request.url.path}"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse({"error": message}, status_code=405)

    routes = [
        Route("/", page),
        Route("/static/{name}", static),
        Route("/api/state", api_state),
        Route("/api/chat", api_chat, methods=["POST"]),
        Route("/api/prompt", api_prompt, methods=["POST"]),
        Route("/api/diff", api_diff),
        Route("/api/save", api_save, methods=["POST"]),
        Route("/api/saved", api_saved),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    return Guard(app, token=token, port=port, max_body=max_body)
