"""`/v1/sessions`: open a session on a first frame and box, list, inspect and delete sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from blurtrack.engine.pipeline import Pipeline
from blurtrack.service.api.deps import State, require_api_key
from blurtrack.service.errors import WS_ENDED, ApiError
from blurtrack.service.frames import check_frame
from blurtrack.service.schemas import ErrorBody, SessionCreated, SessionInfo, SessionList, SessionOptions
from blurtrack.service.validation import check_box_in_frame, parse_box_input, parse_options_field

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[Depends(require_api_key)])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "bad frame, box or options"},
    401: {"model": ErrorBody, "description": "API key missing or wrong"},
    413: {"model": ErrorBody, "description": "frame over the byte or pixel limit"},
    503: {"model": ErrorBody, "description": "session limit reached, or models not loaded yet"},
}


def parse_options(raw: str | None, pipeline: Pipeline) -> SessionOptions:
    options = parse_options_field(raw)
    served = pipeline.backend.name
    if options.backend not in (None, "auto", served):
        raise ApiError(
            400,
            "backend_mismatch",
            f"this server runs the {served} backend, not {options.backend}: leave `backend` out, or use a server "
            f"started with --backend {options.backend}",
        )
    if options.deblur == "on" and not pipeline.has_deblur:
        raise ApiError(
            400,
            "deblur_unavailable",
            f"bundle {pipeline.bundle.name} has no deblur network: use deblur off/auto or serve a bundle with one",
        )
    return options


@router.post("", status_code=201, response_model=SessionCreated, responses=_ERRORS)
async def create_session(
    state: State,
    frame: Annotated[UploadFile, File(description="the first frame, JPEG or PNG")],
    box: Annotated[str, Form(description="the target in the first frame: x,y,w,h in pixels, top-left corner")],
    options: Annotated[str | None, Form(description='JSON, e.g. {"deblur": "auto"}')] = None,
) -> SessionCreated:
    """Initialise a tracker on the first frame (in a worker thread) and return where to stream."""
    if state.draining:
        raise ApiError(
            503, "shutting_down", "this server is shutting down: open the session on another replica or retry in a few seconds"
        )
    pipeline = state.worker.require_pipeline()
    session_options = parse_options(options, pipeline)
    target = parse_box_input(box)
    data = await frame.read(state.settings.max_frame_bytes + 1)
    header = check_frame(data, state.settings.max_frame_bytes, state.settings.max_frame_pixels)  # before the worker decodes
    assert header.size is not None  # check_frame refuses frames whose size it cannot read
    check_box_in_frame(target, *header.size)

    state.registry.reserve()
    try:
        tracker, first = await state.worker.open(data, target, session_options)
    except BaseException:
        state.registry.release()
        raise
    session = state.registry.open(tracker, first, session_options)
    return SessionCreated(session_id=session.id, stream_url=f"/v1/sessions/{session.id}/stream", created_at=session.created_at)


@router.get("", response_model=SessionList, responses=_ERRORS)
async def list_sessions(state: State) -> SessionList:
    return SessionList(sessions=[s.info() for s in state.registry.all()], max_sessions=state.registry.max_sessions)


@router.get("/{session_id}", response_model=SessionInfo, responses={404: {"model": ErrorBody}, 401: _ERRORS[401]})
async def get_session(session_id: str, state: State) -> SessionInfo:
    return state.registry.get(session_id).info()


@router.delete("/{session_id}", status_code=204, responses={404: {"model": ErrorBody}, 401: _ERRORS[401]})
async def delete_session(session_id: str, state: State) -> Response:
    """End a session; an attached stream gets an error message `session_deleted` and is closed (4410)."""
    session = state.registry.get(session_id)
    await state.registry.end(session, "deleted", WS_ENDED, "the session was deleted (DELETE /v1/sessions/{id})")
    return Response(status_code=204)
