"""Dependencies shared by the routes: the app's state, and API-key auth."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from blurtrack.service.errors import WS_UNAUTHORIZED, ApiError, StreamRejected
from blurtrack.service.state import ServiceState

_bearer = HTTPBearer(auto_error=False, description="the server's API key, when BLURTRACK_API_KEY is set")


def get_state(conn: HTTPConnection) -> ServiceState:
    return conn.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


def _key_matches(state: ServiceState, given: str | None) -> bool:
    key = state.settings.api_key
    if key is None:
        return True  # running open (logged at startup)
    return given is not None and secrets.compare_digest(given.encode(), key.get_secret_value().encode())


def require_api_key(state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """HTTP calls: `Authorization: Bearer <key>` when the server has a key."""
    if not _key_matches(state, credentials.credentials if credentials else None):
        raise ApiError(401, "unauthorized", "this server needs an API key: send `Authorization: Bearer <key>`")


def require_stream_key(
    websocket: WebSocket,
    state: State,
    token: Annotated[str | None, Query(description="the API key, for WebSocket clients that cannot set headers")] = None,
) -> None:
    """WebSocket: the Bearer header, or `?token=<key>` for clients that cannot set headers."""
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else token
    if not _key_matches(state, given):
        raise StreamRejected(
            WS_UNAUTHORIZED, "unauthorized", "this server needs an API key: send `Authorization: Bearer <key>` or ?token=<key>"
        )
