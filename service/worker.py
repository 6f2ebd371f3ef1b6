"""Inference off the event loop: the pipeline is loaded once, and every decode / init / track runs
in a thread pool of `workers` threads. One session never has two frames in flight (the stream
awaits each frame before taking the next), so a session's tracker is never used by two threads at
once; different sessions run in parallel on the shared networks. The session owns its tracker:
the worker tracks with it, or on a pending re-init replaces it, and returns only the result."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import cv2
import numpy as np

from blurtrack.engine.errors import BlurtrackError
from blurtrack.engine.geometry import Box
from blurtrack.engine.pipeline import Pipeline, SiamRPNTracker, TrackResult
from blurtrack.service.config import ServiceSettings
from blurtrack.service.errors import ApiError, from_engine_error
from blurtrack.service.frames import decode_frame
from blurtrack.service.schemas import SessionOptions
from blurtrack.service.sessions import FrameSlot, PendingFrame, ReinitRequest, Session
from blurtrack.service.validation import all_finite, check_box_in_frame

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class FrameOutcome:
    result: TrackResult
    latency_ms: dict[str, float]
    reinit: bool  # the frame re-initialised the session on a new box
    image: np.ndarray | None = None  # the decoded frame, handed back only while a page watches the session


@dataclass(frozen=True)
class EncodedPreview:
    jpeg: bytes
    width: int
    height: int
    scale: float  # preview pixels per frame pixel


def encode_preview(image: np.ndarray, max_side: int, quality: int) -> EncodedPreview:
    """Shrink a frame so its longest side is at most `max_side` (never enlarge) and JPEG-encode it."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # INTER_AREA avoids aliasing on big reductions but at non-integer ratios costs several times
        # INTER_LINEAR (about 3 ms vs 0.7 ms for 640x480 -> 480x360 here); linear is fine down to half size.
        interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding of a preview failed")
    return EncodedPreview(buffer.tobytes(), image.shape[1], image.shape[0], scale)


def _finite(result: TrackResult) -> TrackResult:
    """A box or score that is not finite must never reach a session or a reply (it is not JSON);
    the frame fails instead and the session keeps its last good tracker."""
    if not all_finite(*result.box, result.score):
        raise ApiError(
            422, "tracking_failed", "the tracker produced no finite box on this frame; reinit on a box inside the frame"
        )
    return result


def _request_used(exc: Exception) -> bool:
    """Whether a re-init that failed with `exc` is done with: its box was refused, or the failure
    is not the frame's. A frame the tracker could not use leaves the request for the next frame."""
    return not isinstance(exc, ApiError) or exc.code == "invalid_box"


def _latency(frame: PendingFrame, started: float, decoded: float, timings: dict[str, float]) -> dict[str, float]:
    return {
        "queue": (started - frame.received_at) * 1e3,
        "decode": (decoded - started) * 1e3,
        "crop": timings.get("crop", 0.0),
        "deblur": timings.get("deblur", 0.0),
        "track": timings.get("track", 0.0),
        "post": timings.get("post", 0.0),
        "engine": timings.get("total", 0.0),
        "total": (time.perf_counter() - frame.received_at) * 1e3,  # the stream sets it again at sending
    }


class InferenceWorker:
    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="blurtrack-infer")
        self.pipeline: Pipeline | None = None
        self.load_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def load(self) -> None:
        """Load the bundle's networks in a worker thread (loading takes seconds; the event loop
        keeps answering /healthz and /readyz meanwhile)."""
        s = self.settings
        try:
            pipeline = await self._run(
                partial(Pipeline.from_bundle, s.bundle, backend=s.backend, threads=s.threads, precision=s.precision)
            )
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("could not load the pipeline: %s", self.load_error)
            return
        self.pipeline = pipeline
        log.info("ready: %s", pipeline.describe())

    @property
    def ready(self) -> bool:
        return self.pipeline is not None

    def require_pipeline(self) -> Pipeline:
        if self.pipeline is None:
            if self.load_error:
                raise ApiError(503, "not_ready", f"the models failed to load: {self.load_error}")
            raise ApiError(503, "not_ready", "the models are still loading; poll GET /readyz and retry")
        return self.pipeline

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    # -- work --------------------------------------------------------------------------------
    async def open(self, data: bytes, box: Box, options: SessionOptions) -> tuple[SiamRPNTracker, TrackResult]:
        """Decode the first frame and initialise a tracker on `box`."""
        pipeline = self.require_pipeline()
        return await self._run(partial(self._open, pipeline, data, box, options))

    def _open(self, pipeline: Pipeline, data: bytes, box: Box, options: SessionOptions) -> tuple[SiamRPNTracker, TrackResult]:
        image = decode_frame(data, self.settings.max_frame_bytes, self.settings.max_frame_pixels)
        return _start_tracker(pipeline, image, box, options)

    async def process_newest(
        self, session: Session, slot: FrameSlot, keep_image: bool = False
    ) -> tuple[PendingFrame, FrameOutcome | ApiError] | None:
        """Track the newest frame in `session`'s slot with its tracker, or re-initialise the session
        on its pending re-init request. The frame is taken when a worker thread starts on it, not
        when this is called: under load, frames that arrive while the job waits for a thread replace
        the waiting one, so the frame tracked is at most about one frame interval old. Returns the
        frame with its outcome or the error to answer it with; None if the slot was emptied meanwhile
        (the stream is ending). `keep_image` hands the decoded frame back (for the session's preview)."""
        return await self._run(partial(self._process_newest, session, slot, keep_image))

    async def encode_preview(self, image: np.ndarray) -> EncodedPreview:
        """Downscale and JPEG-encode a frame in a worker thread (after its result was sent)."""
        s = self.settings
        return await self._run(partial(encode_preview, image, s.preview_max_side, s.preview_jpeg_quality))

    def _process_newest(
        self, session: Session, slot: FrameSlot, keep_image: bool
    ) -> tuple[PendingFrame, FrameOutcome | ApiError] | None:
        frame = slot.discard()
        if frame is None:
            return None
        try:
            return frame, self._process(self.require_pipeline(), session, frame, keep_image)
        except ApiError as exc:
            return frame, exc
        except Exception:  # a bug must not kill the stream or the server
            log.exception("frame %d of session %s failed", frame.seq, session.id)
            return frame, ApiError(500, "internal_error", "the server failed on this frame; see its log")

    def _process(self, pipeline: Pipeline, session: Session, frame: PendingFrame, keep_image: bool) -> FrameOutcome:
        started = time.perf_counter()
        image = decode_frame(frame.data, self.settings.max_frame_bytes, self.settings.max_frame_pixels)
        decoded = time.perf_counter()
        request = session.reinit.peek()
        if request is None:
            result = _track(session.tracker, image)
        else:
            result = _reinit(pipeline, session, image, request)
        latency = _latency(frame, started, decoded, result.timings)
        return FrameOutcome(result, latency, request is not None, image if keep_image else None)


def _start_tracker(
    pipeline: Pipeline, image: np.ndarray, box: Box, options: SessionOptions
) -> tuple[SiamRPNTracker, TrackResult]:
    """A fresh tracker initialised on `box`, which must overlap the frame."""
    check_box_in_frame(box, image.shape[1], image.shape[0])
    try:
        tracker = pipeline.new_tracker(deblur=options.deblur)
        result = tracker.init(image, box)
    except BlurtrackError as exc:
        raise from_engine_error(exc) from exc
    return tracker, _finite(result)


def _track(tracker: SiamRPNTracker, image: np.ndarray) -> TrackResult:
    try:
        result = tracker.track(image)
    except BlurtrackError as exc:
        raise from_engine_error(exc) from exc
    return _finite(result)


def _reinit(pipeline: Pipeline, session: Session, image: np.ndarray, request: ReinitRequest) -> TrackResult:
    """A fresh tracker on the requested box becomes the session's; if the box is bad, the old
    tracker carries on untouched."""
    try:
        tracker, result = _start_tracker(pipeline, image, request.box, session.options)
    except Exception as exc:
        if _request_used(exc):
            session.reinit.consume(request)
        raise
    session.tracker = tracker
    session.reinit.consume(request)
    return result
