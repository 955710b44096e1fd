"""FastAPI routes: the `/api/v1/...` surface of SDK 0.38, mapped onto the engine services.

Routes only parse (with the SDK's own pydantic request types, so the field names cannot
drift), call `EngineService`/`SamplingSessions`, and shape the answer. Every error becomes the
SDK's error body with a 4xx (request problems) or 5xx (engine faults) status. Results of
`ForwardBackwardOutput` and `SampleResponse` futures go out as protobuf, which SDK >= 0.25
requires. Features the local engine lacks answer 400 with a sentence saying so.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import TypeVar

import pydantic
import pydantic_core
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tinker.types.create_model_request import CreateModelRequest
from tinker.types.create_sampling_session_request import CreateSamplingSessionRequest
from tinker.types.create_session_request import CreateSessionRequest
from tinker.types.future_retrieve_request import FutureRetrieveRequest
from tinker.types.load_weights_request import LoadWeightsRequest
from tinker.types.optim_step_request import OptimStepRequest
from tinker.types.sample_request import SampleRequest
from tinker.types.save_weights_external_request import SaveWeightsExternalRequest
from tinker.types.save_weights_for_sampler_request import SaveWeightsForSamplerRequest
from tinker.types.save_weights_request import SaveWeightsRequest

from tinker_chief.engine.server import billing_ledger, downloads, expiry, limits, rest_listings
from tinker_chief.engine.server.auth import (
    PROOF_PATH,
    BrowserGuardMiddleware,
    engine_proof,
    is_proof_nonce,
)
from tinker_chief.engine.server.futures import PRUNE_INTERVAL_S, FutureError, FutureTable
from tinker_chief.engine.server.http_errors import (
    InvalidRequestError,
    UnsupportedError,
    error_body,
    shown,
    status_of,
)
from tinker_chief.engine.server.sampling_sessions import SamplingSessions
from tinker_chief.engine.server.sdk_usage import SdkUsageMiddleware, check_sdk_version
from tinker_chief.engine.server.service import EngineService, reap_interval
from tinker_chief.errors import ChiefError

log = logging.getLogger("tinker_chief.engine")
Model = TypeVar("Model", bound=pydantic.BaseModel)

LONG_POLL_S = 30.0  # the SDK's own per-poll timeout is 45 s
UNSUPPORTED_ROUTES: dict[str, str] = {
    "/api/v1/create_custom_loss": (
        "server-side custom losses (forward_backward_custom works client-side)"
    ),
    "/api/v1/copy_weights": "copy_weights",
    "/api/v1/auth/token": "JWT authentication",
    "/api/v1/retrieve_futures": "retrieve_futures",
    "/api/v1/join_sampling_session": "join_sampling_session",
}


def create_app(
    engine: EngineService,
    *,
    api_key: str | None = None,
    expiry_sweep_s: float | None = None,
    bind_host: str = "127.0.0.1",
) -> FastAPI:
    """`expiry_sweep_s`: seconds between checkpoint deletion passes (default
    `expiry.sweep_interval()`)."""
    sampling = SamplingSessions(engine)
    sweep_s = expiry_sweep_s or expiry.sweep_interval()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await expiry.start(engine)  # a killed engine's leftovers, checkpoints expired meanwhile
        sweeps = asyncio.create_task(expiry.sweep_every(engine, sweep_s))
        prunes = asyncio.create_task(_prune_every(engine.futures, PRUNE_INTERVAL_S))
        reaper = asyncio.create_task(_reap_every(engine, reap_interval(engine.sessions.timeout)))
        yield
        sweeps.cancel()
        prunes.cancel()
        reaper.cancel()
        await asyncio.to_thread(engine.scheduler.stop)

    app = FastAPI(
        title="chief engine", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(InternalErrorMiddleware)  # innermost: a 500 keeps the connection open
    app.add_middleware(SdkUsageMiddleware, usage=engine.sdk_usage)  # counts admitted requests only
    # After auth.
    app.add_middleware(limits.BodyLimitMiddleware, read_timeout_s=limits.read_timeout())
    if api_key:
        from tinker_chief.engine.server.auth import ApiKeyMiddleware

        # Signed download URLs carry their own credential (downloads.py), as on Tinker's cloud.
        app.add_middleware(ApiKeyMiddleware, api_key=api_key, open_prefix=downloads.PREFIX + "/")
        _add_proof_route(app, api_key)
    # Outermost: a web page gets 403, not 401.
    app.add_middleware(BrowserGuardMiddleware, bind_host=bind_host)
    _install_error_handlers(app)
    _add_unsupported_routes(app, engine)
    _add_session_routes(app, engine)
    _add_training_routes(app, engine)
    _add_sampling_routes(app, engine, sampling)
    _add_rest_routes(app, engine)
    _add_billing_routes(app, engine)
    return app


# -- helpers -----------------------------------------------------------------------------------


async def parse(request: Request, model: type[Model], engine: EngineService | None = None) -> Model:
    """Validate the JSON body; with `engine`, a rejected training request still frees its seq_id."""
    body = await request.body()
    endpoint = request.url.path.removeprefix("/api/v1/")
    try:
        return model.model_validate_json(body or b"{}")
    except pydantic.ValidationError as exc:
        if engine is not None:
            release_seq_id(engine, body)
        raise InvalidRequestError(f"{endpoint}: {_validation_message(exc)}") from None


def load_json(body: bytes) -> object:
    """Parse a JSON body with pydantic's parser (as `parse` does): its nesting limit makes a
    100k-deep body a ValueError like any other bad JSON, where `json.loads` overflows the stack."""
    return pydantic_core.from_json(body)


def release_seq_id(engine: EngineService, body: bytes) -> None:
    """The SDK counted this request in its model's sequence: let the next ones run."""
    try:
        data = load_json(body)
    except ValueError:
        return
    if (
        isinstance(data, dict)
        and isinstance(data.get("model_id"), str)
        and isinstance(data.get("seq_id"), int)
    ):
        engine.scheduler.skip(data["model_id"], data["seq_id"])


def _validation_message(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        # A key may be the client's.
        where = ".".join(str(p)[:100] for p in error.get("loc", ())) or "body"
        if error.get("type") == "json_invalid":
            problems.append(f"body is not valid JSON ({error.get('msg')})")
        elif error.get("type") == "missing":
            problems.append(f"field {where} is missing")
        else:
            problems.append(f"field {where}: {error.get('msg')}")
    return "; ".join(problems)


async def json_field(request: Request, name: str) -> str:
    """One string field of a small JSON body, with a 400 naming it when absent or malformed."""
    endpoint = request.url.path.removeprefix("/api/v1/")
    try:
        body = load_json(await request.body())
    except ValueError:
        raise InvalidRequestError(f"{endpoint}: body is not valid JSON") from None
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{endpoint}: field {name} is missing (expected a string)")
    return value


async def on_compute(engine: EngineService, fn):
    """Run `fn` on the compute thread and await it without blocking the event loop."""
    return await asyncio.wrap_future(engine.scheduler.call(fn))


def future_response(request_id: str, **extra: object) -> dict:
    return {"request_id": request_id, **extra}


def _error_response(request: Request, exc: Exception) -> JSONResponse:
    """The SDK's error body: a request problem's sentence, or a logged 500 for an engine fault."""
    status = status_of(exc)
    if status < 500:
        return JSONResponse(error_body(str(exc)), status_code=status)
    log.exception(
        "internal error in %s %s (%s)",
        request.method,
        request.url.path,
        request.headers.get("x-sdk-method", "no SDK method"),
        exc_info=exc,
    )
    message = f"internal engine error: {type(exc).__name__}: {exc}"
    return JSONResponse(error_body(message, "server"), status_code=status)


class InternalErrorMiddleware:
    """ASGI middleware: an unexpected exception becomes the SDK's 500 body here, and stops here.

    Starlette runs a handler for `Exception` in its outermost middleware, which re-raises after
    answering; uvicorn then closes the connection, so the client's next request on the same
    keep-alive connection was reset. Answered here, the connection stays usable. An error after
    the response started cannot be answered any more and still closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            await _error_response(Request(scope), exc)(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChiefError)
    async def engine_error(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            message = (
                f"{request.method} {request.url.path} is not an endpoint of the local engine "
                "(this Tinker feature is not supported by chief engine serve)"
            )
            return JSONResponse(error_body(message), status_code=exc.status_code)
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code)


def _add_unsupported_routes(app: FastAPI, engine: EngineService) -> None:
    for path, feature in UNSUPPORTED_ROUTES.items():

        async def unsupported(request: Request, feature: str = feature) -> None:
            release_seq_id(engine, await request.body())
            raise UnsupportedError(feature)

        app.add_api_route(path, unsupported, methods=["POST", "GET"])


def _add_proof_route(app: FastAPI, api_key: str) -> None:
    @app.post(PROOF_PATH)
    async def proof(request: Request) -> dict:
        """Local-engine extra, open without a key: shows a client that found this engine's key in
        its key file that this is the engine holding it (auth.py), before it sends the key."""
        nonce = await json_field(request, "nonce")
        if not is_proof_nonce(nonce):
            raise InvalidRequestError("engine_proof: field nonce must be 64 lowercase hex digits")
        return {"proof": engine_proof(api_key, nonce)}


# -- sessions and futures ----------------------------------------------------------------------


def _add_session_routes(app: FastAPI, engine: EngineService) -> None:
    @app.get("/api/v1/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/v1/engine_stats")
    async def engine_stats() -> dict:
        """Local-engine extra (not in the Tinker API): where and in which precision the engine
        computes (evals record it: bf16 and fp32 scores differ), why (`precision_basis`, with the
        GEMM probe's `gemm_gflops` per dtype when `auto` measured them), how sampling was batched,
        its KV-cache budget and the most one decode loop held (`sampling_*`), how training calls of
        concurrent clients were shared (`shared_*`), and
        the finished results it holds (`results_*`: count and bytes; unretrieved ones expire)."""
        precision = getattr(engine.backend, "precision", None)
        where = precision.stats() if precision else {}
        sampling = getattr(getattr(engine.backend, "samplers", None), "stats", {})
        return {
            **where,
            "sampling_memory_bytes": engine.backend.sampling_memory,
            **sampling,
            **engine.scheduler.stats,
            **engine.sdk_usage.stats(),
            **engine.futures.stats(),
        }

    @app.post("/api/v1/client/config")
    async def client_config(request: Request) -> dict:
        # Only sdk_version is read: a newer SDK adding fields to this handshake must still connect.
        check_sdk_version(await json_field(request, "sdk_version"))
        # zstd bodies keep big SFT batches cheap on the wire; we decode them in forward_backward.
        # httpx's own transport, not pyqwest's (Rust, with runtime threads of its own): through
        # pyqwest, `tinker checkpoint list` aborted at exit (SIGABRT, its output complete) 4
        # times in its first minute of runs on a loaded 2-core machine; through httpx, 0 in 120.
        return {
            "pjwt_auth_enabled": False,
            "proto_compress_fwdbwd": True,
            "use_pyqwest_transport": False,
        }

    @app.post("/api/v1/client/dynamic_config")
    async def dynamic_config(request: Request) -> dict:
        await json_field(request, "sdk_version")
        return {"refresh_interval_sec": 300, "sample_cancel_enabled": False}

    @app.post("/api/v1/create_session")
    async def create_session(request: Request) -> dict:
        req = await parse(request, CreateSessionRequest)  # tags: accepted, not used
        # Billing reports these.
        session_id = engine.create_session(req.project_id, req.user_metadata)
        return {"type": "create_session", "session_id": session_id}

    @app.post("/api/v1/session_heartbeat")
    async def heartbeat(request: Request) -> dict:
        engine.require_session(await json_field(request, "session_id"))
        return {"type": "session_heartbeat"}

    @app.post("/api/v1/sessions/{session_id}/finish")
    async def finish(session_id: str) -> dict:
        engine.finish_session(session_id)
        return {}

    @app.post("/api/v1/telemetry")
    async def telemetry(request: Request) -> dict:
        await request.body()  # accepted and dropped: nothing leaves this machine
        return {"status": "accepted"}

    @app.post("/api/v1/retrieve_future")
    async def retrieve_future(request: Request) -> Response:
        req = await parse(request, FutureRetrieveRequest)
        result = await engine.futures.wait(req.request_id, LONG_POLL_S)
        if result is None:
            return JSONResponse(
                {"type": "try_again", "request_id": req.request_id, "queue_state": "active"}
            )
        if isinstance(result, FutureError):
            return JSONResponse(error_body(result.message, result.category))
        if isinstance(result, bytes):
            return Response(result, media_type="application/x-protobuf")
        return JSONResponse(result)


# -- training ----------------------------------------------------------------------------------


def _add_training_routes(app: FastAPI, engine: EngineService) -> None:
    @app.post("/api/v1/create_model")
    async def create_model(request: Request) -> dict:
        req = await parse(request, CreateModelRequest)
        model_id = f"{req.session_id}:train:{req.model_seq_id}"
        return future_response(engine.create_model(req), model_id=model_id)

    @app.post("/api/v1/get_info")
    async def get_info(request: Request) -> dict:
        return engine.get_info(await json_field(request, "model_id"))

    @app.post("/api/v1/unload_model")
    async def unload_model(request: Request) -> dict:
        model_id = await json_field(request, "model_id")
        return future_response(engine.unload_model(model_id), model_id=model_id)

    @app.post("/api/v1/forward_backward")
    async def forward_backward(request: Request) -> dict:
        body = await _raw_body(request)
        return future_response(engine.forward_backward(body))

    @app.post("/api/v1/forward")
    async def forward_legacy() -> None:
        raise UnsupportedError(
            "the JSON /forward endpoint of SDKs older than 0.25 (upgrade tinker to 0.38)"
        )

    @app.post("/api/v1/optim_step")
    async def optim_step(request: Request) -> dict:
        req = await parse(request, OptimStepRequest, engine)
        return future_response(engine.optim_step(req), model_id=req.model_id)

    @app.post("/api/v1/save_weights")
    async def save_weights(request: Request) -> dict:
        req = await parse(request, SaveWeightsRequest, engine)
        return future_response(engine.save_weights(req), model_id=req.model_id)

    @app.post("/api/v1/save_weights_for_sampler")
    async def save_weights_for_sampler(request: Request) -> dict:
        req = await parse(request, SaveWeightsForSamplerRequest, engine)
        return future_response(engine.save_weights_for_sampler(req), model_id=req.model_id)

    @app.post("/api/v1/save_weights_external")
    async def save_weights_external(request: Request) -> dict:
        req = await parse(request, SaveWeightsExternalRequest, engine)
        return future_response(engine.save_weights_external(req), model_id=req.model_id)

    @app.post("/api/v1/load_weights")
    async def load_weights(request: Request) -> dict:
        req = await parse(request, LoadWeightsRequest, engine)
        return future_response(engine.load_weights(req))


async def _raw_body(request: Request) -> bytes:
    body = await request.body()
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "zstd":
        raise InvalidRequestError(
            f"unsupported Content-Encoding {shown(encoding)} (expected zstd or none)"
        )
    return limits.inflate_zstd(body)


async def _prune_every(futures: FutureTable, interval_s: float) -> None:
    """Free expired results even while no request arrives to trigger it."""
    while True:
        await asyncio.sleep(interval_s)
        futures.prune()


async def _reap_every(engine: EngineService, interval_s: float) -> None:
    """End silent sessions even while no request arrives to trigger it (their clients hold memory,
    and their parked requests wait for an answer)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            engine.end_silent_sessions()
        except Exception:
            log.exception("ending silent sessions failed; retrying in %g s", interval_s)


# -- sampling ----------------------------------------------------------------------------------


def _add_sampling_routes(app: FastAPI, engine: EngineService, sampling: SamplingSessions) -> None:
    @app.post("/api/v1/create_sampling_session")
    async def create_sampling_session(request: Request) -> dict:
        req = await parse(request, CreateSamplingSessionRequest)
        engine.require_session(req.session_id)
        state = await on_compute(engine, sampling.prepare_sampler(req.model_path, req.base_model))
        return {
            "type": "create_sampling_session",
            "sampling_session_id": sampling.register_session(req, state),
        }

    @app.get("/api/v1/samplers/{sampler_id}")
    async def get_sampler(sampler_id: str) -> dict:
        return sampling.describe(sampler_id)

    @app.post("/api/v1/asample")
    async def asample(request: Request) -> dict:
        req = await parse(request, SampleRequest)
        if req.sampling_session_id is not None:
            state = sampling.sampler(req.sampling_session_id)
        else:
            state = await on_compute(
                engine, sampling.prepare_sampler(req.model_path, req.base_model)
            )
        return sampling.asample(req, state)


# -- REST listings -----------------------------------------------------------------------------


def _add_rest_routes(app: FastAPI, engine: EngineService) -> None:
    store = engine.store
    signed = downloads.SignedDownloads(store)

    @app.get("/api/v1/get_server_capabilities")
    async def capabilities() -> dict:
        return rest_listings.capabilities(await on_compute(engine, engine.catalog.listing))

    @app.get("/api/v1/training_runs")
    async def training_runs(limit: int = 20, offset: int = 0) -> dict:
        return rest_listings.training_runs(store, max(limit, 0), max(offset, 0))

    @app.get("/api/v1/training_runs/{run_id}")
    async def training_run(run_id: str) -> dict:
        return rest_listings.training_run_json(store, store.get_run(run_id))

    @app.get("/api/v1/training_runs/{run_id}/checkpoints")
    async def run_checkpoints(run_id: str) -> dict:
        return rest_listings.run_checkpoints(store, run_id)

    @app.get("/api/v1/checkpoints")
    async def user_checkpoints(limit: int = 100, offset: int = 0) -> dict:
        return rest_listings.user_checkpoints(store, max(limit, 0), max(offset, 0))

    @app.delete("/api/v1/training_runs/{run_id}/checkpoints/{checkpoint_id:path}")
    async def delete_checkpoint(run_id: str, checkpoint_id: str) -> dict:
        if checkpoint_id.count("/") > 1:  # DELETE .../publish (unpublish) lands here too
            raise UnsupportedError(f"checkpoint {checkpoint_id.rsplit('/', 1)[-1]} changes")
        store.delete(run_id, checkpoint_id)
        return {}

    @app.post("/api/v1/weights_info")
    async def weights_info(request: Request) -> dict:
        return rest_listings.weights_info(store, await json_field(request, "tinker_path"))

    @app.get(
        "/api/v1/training_runs/{run_id}/checkpoints/{checkpoint_id:path}/external_weights_urls"
    )
    async def external_weights_urls(run_id: str, checkpoint_id: str, request: Request) -> dict:
        return signed.urls(str(request.base_url), run_id, checkpoint_id)

    @app.get(downloads.PREFIX + "/{run_id}/{name}/{filename}")
    async def external_weights_file(
        run_id: str, name: str, filename: str, expires: str = "", signature: str = ""
    ) -> FileResponse:
        return FileResponse(
            signed.file(run_id, name, filename, expires, signature),
            media_type="application/octet-stream",
        )

    @app.put("/api/v1/training_runs/{run_id}/checkpoints/{checkpoint_id:path}/ttl")
    async def set_checkpoint_ttl(run_id: str, checkpoint_id: str, request: Request) -> dict:
        """RestClient.set_checkpoint_ttl_from_tinker_path: {"ttl_seconds": int} or null to keep
        forever."""
        store.set_ttl(run_id, checkpoint_id, await _ttl_field(request))
        return {}

    @app.api_route(
        "/api/v1/training_runs/{run_id}/checkpoints/{checkpoint_id:path}/{action}",
        methods=["POST", "PUT", "DELETE", "GET"],
    )
    async def checkpoint_action(action: str) -> None:
        raise UnsupportedError(f"checkpoint {action} (publishing checkpoints)")


def _add_billing_routes(app: FastAPI, engine: EngineService) -> None:
    """AdminClient's billing methods, answered from the engine's own counters
    (billing_ledger.py)."""

    @app.get("/api/v1/billing/usage/events")
    async def billing_usage(request: Request) -> dict:
        start, end = billing_ledger.usage_window(dict(request.query_params), engine.store.clock())
        return await asyncio.to_thread(engine.billing.usage_events, start, end)

    @app.get("/api/v1/billing/usage/checkpoints/current")
    async def checkpoint_storage(project_id: str | None = None) -> dict:
        return await asyncio.to_thread(
            lambda: engine.billing.current_storage(engine.store.list_all_checkpoints(), project_id)
        )


async def _ttl_field(request: Request) -> object:
    """The body's `ttl_seconds` (present, possibly null); its range is the store's to check."""
    try:
        body = load_json(await request.body())
    except ValueError:
        raise InvalidRequestError(
            'checkpoint ttl: body is not valid JSON (expected {"ttl_seconds": ...})'
        ) from None
    if not isinstance(body, dict) or "ttl_seconds" not in body:
        raise InvalidRequestError(
            "checkpoint ttl: field ttl_seconds is missing (a number of seconds, or null to keep "
            "the checkpoint forever)"
        )
    return body["ttl_seconds"]
