"""The app factory: `create_app(settings)` builds one independent service (state, metrics registry,
worker pool), so tests and benchmarks can run several in one process.

    uvicorn --factory service.app:create_app     # settings from BLURTRACK_* variables
    blurtrack serve                                # the same, with CLI flags on top
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketState

from blurtrack import __version__
from blurtrack.service.api.routes import health, live, sessions, stream
from blurtrack.service.config import ServiceSettings
from blurtrack.service.errors import WS_EXPIRED, WS_GOING_AWAY, WS_INTERNAL, ApiError, StreamRejected, excerpt
from blurtrack.service.limits import BodyGuard, ConnectionCap
from blurtrack.service.state import ServiceState

log = logging.getLogger("service")

DESCRIPTION = """
Track one object per session through (motion-blurred) video in real time.

1. `POST /v1/sessions` with the first frame and the target box.
2. Open the WebSocket `GET /v1/sessions/{id}/stream` (not listed below: OpenAPI has no WebSockets),
   send each frame as one binary message (JPEG/PNG bytes), and read one JSON result per processed
   frame: `{"type":"result","seq","box","score","state","dropped","latency_ms":{...}}`.
   Text messages: `{"type":"reinit","box":[x,y,w,h]}`, `{"type":"close"}`.
   Errors: `{"type":"error","code","message"}`; a bad frame gets one and the stream goes on.

While a frame is being tracked, newer frames replace the waiting one (latest-frame-wins) and the
replaced ones are counted as dropped. See service/API.md for the full reference.

The live view page is at `/`: sessions, a preview of the watched one with its box, a latency and
score chart, and (with `--demo-dir`) a demo that streams a sequence through a real session.
"""


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]+")


class RedactQueryToken(logging.Filter):
    """uvicorn logs each WebSocket's path with its query string; a browser (the live page) can
    only send the API key as `?token=`, so the key is masked before any handler sees the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def _redact_tokens_in_server_logs() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryToken) for f in logger.filters):
            logger.addFilter(RedactQueryToken())


async def _expire_idle_sessions(state: ServiceState) -> None:
    timeout = state.settings.idle_timeout_s
    while True:
        await asyncio.sleep(state.settings.expiry_check_s)
        for session in state.registry.idle():
            try:
                await state.registry.end(
                    session,
                    "expired",
                    WS_EXPIRED,
                    f"session expired after {timeout:g} s without frames (BLURTRACK_IDLE_TIMEOUT_S)",
                )
            except Exception:  # keep expiring the others
                log.exception("expiring session %s failed", session.id)


SHUTDOWN_MESSAGE = "the server is shutting down: open a new session (on another replica, or here in a few seconds)"


async def drain(state: ServiceState) -> None:
    """The first step of a shutdown, before the server closes any connection: /readyz turns 503
    and new sessions and streams are refused; after `shutdown_delay_s` (for load balancers to
    notice) every stream's frames in flight are answered, then it gets a `session_shutdown`
    error and close code 1001 (going away)."""
    if state.draining:
        return
    state.draining = True
    sessions = state.registry.all()
    log.info("shutting down: /readyz is 503; %d sessions end in %g s", len(sessions), state.settings.shutdown_delay_s)
    await asyncio.sleep(state.settings.shutdown_delay_s)
    await asyncio.gather(
        *(state.registry.end(s, "shutdown", WS_GOING_AWAY, SHUTDOWN_MESSAGE, finish=True) for s in state.registry.all()),
        return_exceptions=True,
    )


async def _load(state: ServiceState) -> None:
    await state.worker.load()
    if state.worker.pipeline is not None:
        state.metrics.backend.info({**state.worker.pipeline.describe(), "workers": str(state.settings.workers)})


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.service
    if state.settings.api_key is None:
        log.warning("running open: BLURTRACK_API_KEY is not set, so every client is accepted without a key")
    else:
        log.info("API key required on every call (Authorization: Bearer, or ?token= on the WebSocket)")
    # Loading runs in a worker thread and is not awaited here: the server answers /healthz and a
    # 503 /readyz while the models load, as orchestrators expect.
    loader = asyncio.create_task(_load(state), name="load-pipeline")
    expiry = asyncio.create_task(_expire_idle_sessions(state), name="expire-sessions")
    try:
        yield
    finally:
        expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await expiry
        await loader
        for session in state.registry.all():  # when served without service.server.Server (no drain ran)
            await state.registry.end(session, "shutdown", WS_GOING_AWAY, SHUTDOWN_MESSAGE)
        await asyncio.to_thread(state.worker.shutdown)


async def _api_error(conn: HTTPConnection, exc: Exception) -> JSONResponse | None:
    assert isinstance(exc, ApiError)
    if isinstance(conn, WebSocket):
        await _stream_rejected(conn, StreamRejected(WS_INTERNAL, exc.code, exc.message))
        return None
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=headers)


async def _stream_rejected(websocket: WebSocket, exc: Exception) -> None:
    """A refused WebSocket is accepted, told why in one error message, then closed with a code."""
    assert isinstance(exc, StreamRejected)
    if websocket.application_state == WebSocketState.CONNECTING:
        await websocket.accept()
    if websocket.application_state == WebSocketState.CONNECTED:
        await websocket.send_json({"type": "error", "code": exc.code, "message": exc.message})
        await websocket.close(exc.close_code)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "frame_too_large"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method, unparsable body) in our shape: with a code."""
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail = str(exc.detail)
    if exc.status_code == 404:
        detail = f"no route {excerpt(request.url.path)}: see /docs for the HTTP API and service/API.md for the stream"
    elif exc.status_code == 400:
        detail = f"{detail}: send the body this call expects (see /docs)"
    return JSONResponse({"detail": detail, "code": code}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    detail = f"invalid request ({problems})"
    if request.method == "POST" and request.url.path.rstrip("/") == "/v1/sessions":
        detail += "; POST /v1/sessions takes multipart fields frame, box and options"
    else:
        detail += "; see /docs for this call's parameters"
    return JSONResponse({"detail": detail, "code": "invalid_request"}, status_code=422)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    _redact_tokens_in_server_logs()
    # FastAPIOffline: /docs and /redoc load Swagger UI / ReDoc from the package's own files (under
    # /static-offline-docs), not from a CDN, so they work on a robot's network without internet.
    app = FastAPIOffline(
        title="blurtrack",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        exception_handlers={
            ApiError: _api_error,
            StreamRejected: _stream_rejected,
            RequestValidationError: _invalid_request,
            StarletteHTTPException: _http_error,
        },
    )
    app.state.service = ServiceState.build(settings)
    app.include_router(health.router)
    app.include_router(sessions.router)
    app.include_router(stream.router)
    app.include_router(live.router)
    app.include_router(live.page_router)
    app.mount("/static", StaticFiles(directory=live.STATIC_DIR), name="static")
    # The last added runs first: a request takes a connection slot, then its body is read whole.
    app.add_middleware(BodyGuard, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(ConnectionCap, limit=settings.max_connections)
    return app
