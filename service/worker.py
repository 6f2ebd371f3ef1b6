"""Inference off the event loop: the pipeline is loaded once, and every decode / init / track runs
in a thread pool of `workers` threads. One session never has two frames in flight (the stream
awaits each frame before taking the next), so a tracker is never used by two threads at once;
different sessions run in parallel on the shared networks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from engine.errors import BlurtrackError
from engine.geometry import Box, parse_box
from engine.pipeline import Pipeline, SiamRPNTracker, TrackResult
from service.config import ServiceSettings
from service.errors import ApiError, from_engine_error
from service.frames import decode_frame
from service.schemas import SessionOptions
from service.sessions import PendingFrame

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class FrameOutcome:
    result: TrackResult
    latency_ms: dict[str, float]
    tracker: SiamRPNTracker  # a new one when the frame re-initialised the session
    reinit: bool


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
            self.pipeline = await self._run(partial(Pipeline.from_bundle, s.bundle, backend=s.backend, threads=s.threads))
        except Exception as exc:  # noqa: BLE001 - a missing bundle or runtime: reported on /readyz, health keeps answering
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("could not load the pipeline: %s", self.load_error)
            return
        log.info("ready: %s", self.pipeline.describe())

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

    def _open(self, pipeline: Pipeline, data: bytes, box: Box, options: SessionOptions):
        image = decode_frame(data, self.settings.max_frame_bytes, self.settings.max_frame_pixels)
        tracker = pipeline.new_tracker(deblur=options.deblur)
        try:
            return tracker, tracker.init(image, box)
        except BlurtrackError as exc:
            raise from_engine_error(exc) from exc

    async def process(
        self, tracker: SiamRPNTracker, frame: PendingFrame, reinit_box: Box | None, options: SessionOptions
    ) -> FrameOutcome:
        pipeline = self.require_pipeline()
        return await self._run(partial(self._process, pipeline, tracker, frame, reinit_box, options))

    def _process(
        self, pipeline: Pipeline, tracker: SiamRPNTracker, frame: PendingFrame, reinit_box: Box | None, options: SessionOptions
    ) -> FrameOutcome:
        started = time.perf_counter()
        image = decode_frame(frame.data, self.settings.max_frame_bytes, self.settings.max_frame_pixels)
        decoded = time.perf_counter()
        try:
            if reinit_box is not None:
                # A fresh tracker: if the new box is bad, the old tracker carries on untouched.
                fresh = pipeline.new_tracker(deblur=options.deblur)
                result = fresh.init(image, parse_box(reinit_box, image.shape))
                tracker = fresh
            else:
                result = tracker.track(image)
        except BlurtrackError as exc:
            raise from_engine_error(exc) from exc
        timings = result.timings
        latency = {
            "queue": (started - frame.received_at) * 1e3,
            "decode": (decoded - started) * 1e3,
            "crop": timings.get("crop", 0.0),
            "deblur": timings.get("deblur", 0.0),
            "track": timings.get("track", 0.0),
            "post": timings.get("post", 0.0),
            "engine": timings.get("total", 0.0),
            "total": (time.perf_counter() - frame.received_at) * 1e3,  # the stream sets it again at sending
        }
        return FrameOutcome(result, latency, tracker, reinit_box is not None)
