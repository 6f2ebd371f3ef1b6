"""Request and response shapes (they are also what the OpenAPI schema at /docs shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SessionOptions(BaseModel):
    """The optional `options` form field of POST /v1/sessions (JSON)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["auto", "mslite", "onnxruntime"] | None = Field(
        None, description="must match the server's runtime (see GET /readyz); `auto` or absent accepts it"
    )
    deblur: Literal["on", "off", "auto"] | None = Field(
        None, description="deblur every frame, never, or when the crop looks blurred; absent = the bundle's policy"
    )


class SessionCreated(BaseModel):
    session_id: str
    stream_url: str = Field(description="WebSocket path to stream frames to, relative to the server")
    created_at: datetime


class SessionInfo(BaseModel):
    session_id: str
    state: Literal["tracking", "lost"]
    box: tuple[float, float, float, float] = Field(description="last box x, y, w, h in frame pixels")
    score: float = Field(description="score of the last box (1.0 right after init)")
    frames_received: int
    frames_processed: int
    frames_dropped: int
    frames_failed: int
    streaming: bool = Field(description="a WebSocket is attached now")
    options: SessionOptions
    created_at: datetime
    last_seen_at: datetime


class SessionList(BaseModel):
    sessions: list[SessionInfo]
    max_sessions: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    detail: str
    backend: dict[str, str] = Field(default_factory=dict, description="bundle and runtime, once loaded")


class ErrorBody(BaseModel):
    detail: str
    code: str


class LatencyMs(BaseModel):
    queue: float = Field(description="waiting in the session's slot and for a worker thread")
    decode: float
    crop: float
    deblur: float
    track: float = Field(description="the Siamese network")
    post: float = Field(description="anchor decoding, penalties, smoothing")
    engine: float = Field(description="the engine's own time (crop + deblur + track + post)")
    total: float = Field(description="from the frame's arrival to its result being ready")


class ResultMessage(BaseModel):
    """One per processed frame, sent as a JSON text message on the stream."""

    type: Literal["result"] = "result"
    seq: int = Field(description="the frame's number on this session, counting received frames from 1")
    box: tuple[float, float, float, float]
    score: float
    state: Literal["tracking", "lost"]
    dropped: int = Field(description="frames of this session dropped so far")
    deblurred: bool
    reinit: bool = Field(False, description="this frame re-initialised the tracker on a new box")
    latency_ms: LatencyMs


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    seq: int | None = Field(None, description="the frame it is about, when it is about one")
