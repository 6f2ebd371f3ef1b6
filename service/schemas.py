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
    fps: float = Field(0.0, description="frames processed per second over the last 3 s (0 when idle)")
    latency_ms: float | None = Field(None, description="end-to-end latency of the last processed frame")
    preview: bool = Field(False, description="a preview is being kept for the live page (see /preview)")
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


# -- live view ------------------------------------------------------------------------------


class PreviewToggle(BaseModel):
    """Body of PUT /v1/sessions/{id}/preview."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="keep a downscaled JPEG of the latest frame (switches itself off when not fetched)")


class PreviewFrame(BaseModel):
    """What the tracker said about the frame the preview JPEG shows."""

    seq: int = Field(description="the frame's `seq` on the stream")
    box: tuple[float, float, float, float] = Field(description="x, y, w, h in frame pixels (the stream's convention)")
    preview_box: tuple[float, float, float, float] = Field(description="the same box in preview-image pixels (box x scale)")
    score: float
    state: Literal["tracking", "lost"]
    width: int = Field(description="preview image width")
    height: int = Field(description="preview image height")
    frame_width: int
    frame_height: int
    scale: float = Field(description="preview pixels per frame pixel (<= 1)")
    captured_at: datetime


class PreviewStatus(BaseModel):
    enabled: bool
    max_fps: float = Field(description="previews encoded per second at most (BLURTRACK_PREVIEW_MAX_FPS)")
    max_side: int = Field(description="longest side of a preview image (BLURTRACK_PREVIEW_MAX_SIDE)")
    idle_off_s: float = Field(description="the preview switches itself off this long after the last fetch")
    frames_encoded: int = Field(description="preview JPEGs encoded for this session so far")
    latest: PreviewFrame | None = Field(None, description="the frame the image at /preview.jpg shows, if any yet")


class SessionHistory(BaseModel):
    """Per-frame samples of the last `window_s` seconds, oldest first, as columns."""

    window_s: float
    t: list[float] = Field(description="seconds relative to now (negative: the past)")
    seq: list[int]
    latency_ms: list[float] = Field(description="end to end inside the server")
    score: list[float]
    state: list[Literal["tracking", "lost"]]


class DemoSequence(BaseModel):
    name: str
    frames: int
    width: int
    height: int
    first_box: tuple[float, float, float, float] = Field(
        description="first line of groundtruth_rect.txt, as the file gives it (OTB files are 1-based)"
    )


class DemoList(BaseModel):
    enabled: bool = Field(description="the server was started with a demo folder")
    hint: str = Field(description="how to enable it, or where the sequences come from")
    sequences: list[DemoSequence]
