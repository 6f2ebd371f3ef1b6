"""ASGI middleware that bounds what one connection can cost before any route runs: the request
body (size and read time, chunked or not) and the number of requests and streams served at once.

uvicorn itself spools a request body of any size and waits for it forever, and its own
`limit_concurrency` does not apply to WebSocket upgrades; these hold for both.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Probes must answer even when the server is full, or an orchestrator restarts a busy replica.
UNCAPPED_PATHS = frozenset({"/healthz", "/readyz"})


async def send_json_error(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            # close: the rest of a refused body is never read, so the connection cannot be reused
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class BodyGuard:
    """Reads each HTTP request body whole before the app sees it: at most `limit` bytes (also
    when it is chunked, without Content-Length) within `timeout_s` seconds, else 413 / 408. The
    app then gets the buffered body, so nothing spools a refused body anywhere."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float):
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    def _too_large(self, size: str) -> str:
        return (
            f"the request body is {size}, over this server's limit of {self.limit} bytes "
            "(BLURTRACK_MAX_FRAME_BYTES plus 64 KiB of form): send a smaller frame"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await send_json_error(send, 413, "frame_too_large", self._too_large(f"{int(length)} bytes"))
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except _TooLarge:
            await send_json_error(send, 413, "frame_too_large", self._too_large("longer than that (chunked)"))
            return
        except TimeoutError:
            await send_json_error(
                send,
                408,
                "body_timeout",
                f"the request body did not arrive within {self.timeout_s:g} s (BLURTRACK_BODY_TIMEOUT_S): "
                "send it at once, or check the link",
            )
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the buffered body once, then waits on the real one (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class ConnectionCap:
    """At most `limit` HTTP requests and WebSocket streams served at once (probes excepted).
    Past it an HTTP call gets 503 `too_many_connections`; a WebSocket gets that error message and
    close code 1013 (try again later)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit
        self.active = 0

    def _message(self) -> str:
        return (
            f"this server is serving its maximum of {self.limit} requests and streams at once "
            "(BLURTRACK_MAX_CONNECTIONS): retry later, or use another replica"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in UNCAPPED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            if scope["type"] == "http":
                await send_json_error(send, 503, "too_many_connections", self._message())
            else:
                await _refuse_websocket(receive, send, 1013, "too_many_connections", self._message())
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


async def _refuse_websocket(receive: Receive, send: Send, close_code: int, code: str, message: str) -> None:
    """Accept, say why in one error message, close: the same shape as every other refused stream."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps({"type": "error", "code": code, "message": message})})
    await send({"type": "websocket.close", "code": close_code, "reason": code})
