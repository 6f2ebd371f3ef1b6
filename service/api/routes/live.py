"""The live view: the page at `/`, and what it reads — per-session preview JPEGs (opt-in), the
last minute of latency and score, and the demo sequences it can stream through a real session."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse

from blurtrack.engine.errors import DatasetError
from blurtrack.service.api.deps import State, require_api_key
from blurtrack.service.errors import ApiError
from blurtrack.service.schemas import (
    DemoList,
    ErrorBody,
    PreviewFrame,
    PreviewStatus,
    PreviewToggle,
    SessionHistory,
)
from blurtrack.service.sessions import Session

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"

# The page loads nothing from elsewhere; the policy makes sure of it.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

DEMO_HINT_OFF = (
    "demo mode is off: start the server with --demo-dir DIR (or BLURTRACK_DEMO_DIR=DIR), where DIR holds "
    "OTB-layout sequences: <sequence>/img/0001.jpg ... and <sequence>/groundtruth_rect.txt (one x,y,w,h line per frame)"
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "API key missing or wrong"},
    404: {"model": ErrorBody},
}

page_router = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/v1", tags=["live view"], dependencies=[Depends(require_api_key)], responses=_ERRORS)


@page_router.get("/")
async def page() -> FileResponse:
    """The live view page (static HTML; every call it makes goes to /v1 with the API key)."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})


# -- preview ----------------------------------------------------------------------------------


def _preview_status(session: Session, max_side: int) -> PreviewStatus:
    """`max_side` is the encoder's (the worker's setting); the rest is the session's preview."""
    preview = session.preview
    latest = preview.latest
    frame = None
    if latest is not None:
        frame = PreviewFrame(
            seq=latest.seq,
            box=latest.box,
            preview_box=tuple(v * latest.scale for v in latest.box),
            score=latest.score,
            state=latest.state,
            width=latest.width,
            height=latest.height,
            frame_width=latest.frame_width,
            frame_height=latest.frame_height,
            scale=latest.scale,
            captured_at=latest.captured_at,
        )
    return PreviewStatus(
        enabled=preview.enabled,
        max_fps=preview.max_fps,
        max_side=max_side,
        idle_off_s=preview.idle_off_s,
        frames_encoded=preview.frames_encoded,
        latest=frame,
    )


@router.put("/sessions/{session_id}/preview", response_model=PreviewStatus)
async def set_preview(session_id: str, toggle: PreviewToggle, state: State) -> PreviewStatus:
    """Turn the preview of a session on or off. On, the worker keeps one downscaled JPEG of the
    latest frame, at most `max_fps` a second; it switches itself off `idle_off_s` after the last fetch."""
    session = state.registry.get(session_id)
    session.preview.set_enabled(toggle.enabled)
    return _preview_status(session, state.settings.preview_max_side)


@router.get("/sessions/{session_id}/preview", response_model=PreviewStatus)
async def get_preview(session_id: str, state: State, response: Response) -> PreviewStatus:
    """The preview's settings and the frame its image shows (box, state, score, sizes), as JSON."""
    session = state.registry.get(session_id)
    session.preview.fetched()
    response.headers["Cache-Control"] = "no-store"
    return _preview_status(session, state.settings.preview_max_side)


@router.get(
    "/sessions/{session_id}/preview.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 409: {"model": ErrorBody, "description": "preview is off"}},
)
async def get_preview_image(session_id: str, state: State) -> Response:
    """The latest preview JPEG. Headers say which frame it is and what the tracker found there:
    `X-Preview-Seq`, `X-Preview-Box` (x,y,w,h in frame pixels), `X-Preview-Scale` (preview pixels
    per frame pixel), `X-Preview-Frame-Size` (WxH), `X-Preview-State`, `X-Preview-Score`."""
    session = state.registry.get(session_id)
    preview = session.preview
    if not preview.enabled:
        raise ApiError(
            409, "preview_off", f'the preview of this session is off: PUT /v1/sessions/{session_id}/preview {{"enabled": true}}'
        )
    preview.fetched()
    latest = preview.latest
    if latest is None:
        raise ApiError(404, "no_preview", "no frame processed since the preview was turned on; stream frames and retry")
    headers = {
        "Cache-Control": "no-store",
        "X-Preview-Seq": str(latest.seq),
        "X-Preview-Box": ",".join(f"{v:.3f}" for v in latest.box),
        "X-Preview-Scale": f"{latest.scale:.6f}",
        "X-Preview-Frame-Size": f"{latest.frame_width}x{latest.frame_height}",
        "X-Preview-State": latest.state,
        "X-Preview-Score": f"{latest.score:.4f}",
    }
    return Response(latest.jpeg, media_type="image/jpeg", headers=headers)


@router.get("/sessions/{session_id}/history", response_model=SessionHistory)
async def get_history(session_id: str, state: State) -> SessionHistory:
    """Per-frame end-to-end latency and score of the last `history_s` seconds (60 by default)."""
    session = state.registry.get(session_id)
    now = time.monotonic()
    samples = session.history.recent(now)
    return SessionHistory(
        window_s=session.history.window_s,
        t=[round(s.t - now, 3) for s in samples],
        seq=[s.seq for s in samples],
        latency_ms=[round(s.latency_ms, 3) for s in samples],
        score=[round(s.score, 4) for s in samples],
        state=[s.state for s in samples],
    )


# -- demo -------------------------------------------------------------------------------------


_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp"}


@router.get("/demo/sequences", response_model=DemoList)
async def list_demo_sequences(state: State) -> DemoList:
    """The sequences of the demo folder (`--demo-dir`), or how to enable the demo."""
    catalog = state.demo
    if catalog.root is None:
        return DemoList(enabled=False, hint=DEMO_HINT_OFF, sequences=[])
    try:
        entries = await catalog.refresh()
    except DatasetError as exc:
        return DemoList(enabled=True, hint=f"the demo folder has no usable sequence: {exc}", sequences=[])
    return DemoList(
        enabled=True,
        hint="boxes are given as the ground-truth file gives them (OTB files are 1-based); a session answers in the same convention",
        sequences=entries,
    )


@router.get(
    "/demo/sequences/{name:path}/frames/{index}", response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}}
)
async def get_demo_frame(name: str, index: int, state: State) -> FileResponse:
    """Frame `index` (0-based) of a demo sequence, as the file on disk (JPEG or PNG)."""
    sequence = await state.demo.get(name)
    if not 0 <= index < len(sequence):
        raise ApiError(404, "unknown_frame", f"sequence {name} has frames 0..{len(sequence) - 1}, not {index}")
    path = sequence.frames[index]
    if path is None:
        raise ApiError(404, "missing_frame", f"frame {index} of sequence {name} has no image file")
    return FileResponse(path, media_type=_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"))
