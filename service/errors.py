"""Errors the service answers with, and how engine errors map onto them.

HTTP errors answer `{"detail": <message>, "code": <code>}` (FastAPI's `detail`, plus a stable
machine-readable code). On the WebSocket the same codes travel as
`{"type": "error", "code": <code>, "message": <message>}`.
"""

from __future__ import annotations

from blurtrack.engine.errors import BlurtrackError, InvalidBoxError, InvalidFrameError, ModelNotFoundError

# WebSocket close codes (4000-4999 are free for applications; 4xxx mirrors the HTTP status).
WS_NORMAL = 1000
WS_GOING_AWAY = 1001  # the server is shutting down
WS_INTERNAL = 1011
WS_TRY_AGAIN = 1013
WS_UNAUTHORIZED = 4401
WS_UNKNOWN_SESSION = 4404
WS_EXPIRED = 4408
WS_BUSY = 4409
WS_ENDED = 4410


class ApiError(Exception):
    """An error answered to the caller: an HTTP status, a stable code and a message that says what to do."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class StreamRejected(Exception):
    """A WebSocket that cannot be served: it gets one error message, then is closed with `close_code`."""

    def __init__(self, close_code: int, code: str, message: str):
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


def excerpt(value, limit: int = 40) -> str:
    """A short, printable excerpt of what a caller sent: errors never quote a large input whole."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    shown = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{shown}... ({len(text)} characters)"


def unknown_session_message(session_id: str) -> str:
    return (
        f"no live session {excerpt(session_id)}: it never existed, was deleted or expired; open a new one with POST /v1/sessions"
    )


def unknown_session(session_id: str) -> ApiError:
    return ApiError(404, "unknown_session", unknown_session_message(session_id))


def frame_too_large(message: str) -> ApiError:
    return ApiError(413, "frame_too_large", message)


def from_engine_error(exc: BlurtrackError) -> ApiError:
    """Map an engine error a caller caused to an HTTP-style error."""
    if isinstance(exc, InvalidFrameError):
        return ApiError(400, "invalid_frame", str(exc))
    if isinstance(exc, InvalidBoxError):
        return ApiError(400, "invalid_box", str(exc))
    if isinstance(exc, ModelNotFoundError):
        return ApiError(500, "model_missing", str(exc))
    return ApiError(400, "bad_request", str(exc))
