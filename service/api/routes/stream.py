"""`WS /v1/sessions/{id}/stream`: binary frames in, one JSON result (or error) per processed frame out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.websockets import WebSocket

from blurtrack.service.api.deps import State, require_stream_key
from blurtrack.service.errors import (
    WS_BUSY,
    WS_GOING_AWAY,
    WS_TRY_AGAIN,
    WS_UNKNOWN_SESSION,
    StreamRejected,
    unknown_session_message,
)
from blurtrack.service.streaming import StreamConnection

router = APIRouter(prefix="/v1/sessions", tags=["stream"])


@router.websocket("/{session_id}/stream")
async def stream(
    websocket: WebSocket, session_id: str, state: State, _auth: Annotated[None, Depends(require_stream_key)]
) -> None:
    if state.draining:
        raise StreamRejected(
            WS_GOING_AWAY,
            "shutting_down",
            "this server is shutting down: open a new session on another replica or retry in a few seconds",
        )
    if not state.worker.ready:
        raise StreamRejected(WS_TRY_AGAIN, "not_ready", "the models are still loading; poll GET /readyz and retry")
    session = state.registry.find(session_id)
    if session is None:
        raise StreamRejected(
            WS_UNKNOWN_SESSION,
            "unknown_session",
            unknown_session_message(session_id),
        )
    if session.stream is not None:
        raise StreamRejected(WS_BUSY, "stream_busy", "this session already has a stream attached; one stream per session")
    await websocket.accept()
    await StreamConnection(websocket, session, state).run()
