"""One WebSocket stream of one session: a receive loop and a processing task on the event loop.

The receive loop only counts frames and puts them in the session's slot (latest-frame-wins);
the processing task hands the session to a worker thread, which takes the newest waiting frame
only when it starts on it, and sends the result. A bad frame or message gets an error message and
the stream goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from blurtrack.engine.pipeline import TrackResult
from blurtrack.service.errors import WS_NORMAL, ApiError
from blurtrack.service.frames import check_frame
from blurtrack.service.sessions import FrameSlot, PendingFrame, Preview, Sample, Session
from blurtrack.service.state import ServiceState
from blurtrack.service.validation import parse_control
from blurtrack.service.worker import FrameOutcome

log = logging.getLogger(__name__)

FINISH_TIMEOUT_S = 10.0  # at shutdown, the most a stream waits for its frames in flight


class StreamConnection:
    def __init__(self, websocket: WebSocket, session: Session, state: ServiceState):
        self.ws = websocket
        self.session = session
        # the service's worker, registry, metrics and settings, all from its one state
        self.worker = state.worker
        self.registry = state.registry
        self.metrics = state.metrics
        self.settings = state.settings
        self.slot = FrameSlot()
        self._send_lock = asyncio.Lock()
        self._open = True
        self._preview_tasks: set[asyncio.Task] = set()
        self._pending_preview: tuple[int, np.ndarray, TrackResult] | None = None
        self._flush_task: asyncio.Task | None = None
        self._processor: asyncio.Task | None = None
        self._terminated: asyncio.Event | None = None  # set once terminate() has closed the socket

    # -- sending ---------------------------------------------------------------------------
    async def _send(self, message: dict) -> None:
        if not self._open:
            return
        async with self._send_lock:  # the receive loop and the processing task both send
            try:
                # allow_nan=False: NaN or Infinity is not JSON; results are checked before this
                await self.ws.send_text(json.dumps(message, allow_nan=False))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self._open = False

    async def _send_error(self, code: str, message: str, seq: int | None = None) -> None:
        body: dict[str, object] = {"type": "error", "code": code, "message": message}
        if seq is not None:
            body["seq"] = seq
        await self._send(body)

    async def _fail_frame(self, seq: int, error: ApiError) -> None:
        self.session.frames_failed += 1
        self.metrics.frames_failed.labels(reason=error.code).inc()
        await self._send_error(error.code, error.message, seq)

    async def terminate(self, close_code: int, code: str, message: str, finish: bool = False) -> None:
        """Called when the session ends under the stream (deleted, expired, server stopping).
        With `finish` (shutdown), the frame being tracked and the one waiting are answered first;
        frames that arrive meanwhile are dropped."""
        self._terminated = asyncio.Event()
        try:
            self.slot.close()
            if finish and self._processor is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._processor), FINISH_TIMEOUT_S)
            else:
                self._drop_waiting()
            await self._send_error(code, message)
            await self._close(close_code, code)
        finally:
            self._terminated.set()

    async def _close(self, close_code: int, reason: str = "") -> None:
        if self._open and self.ws.application_state == WebSocketState.CONNECTED:
            self._open = False
            try:
                await self.ws.close(close_code, reason[:120])  # a close reason is at most 123 bytes
            except (WebSocketDisconnect, RuntimeError, OSError):  # the client left first
                pass
        self._open = False

    def _drop_waiting(self) -> None:
        if self.slot.discard() is not None:
            self.session.frames_dropped += 1
            self.metrics.frames_dropped.inc()

    # -- the two loops -----------------------------------------------------------------------
    async def run(self) -> None:
        session = self.session
        session.stream = self
        session.touch()
        processor = self._processor = asyncio.create_task(self._process_loop(), name=f"stream-{session.id}")
        closed_by_client = False
        try:
            closed_by_client = await self._receive_loop()
        finally:
            # Finish the frame in flight (a tracker must never be left running in a thread while
            # another stream picks the session up); a frame still waiting is answered only when
            # the client asked to close, otherwise the socket is gone and it counts as dropped.
            if not closed_by_client:
                self._drop_waiting()
            self.slot.close()
            try:
                await processor
                if self._preview_tasks:
                    await asyncio.gather(*self._preview_tasks, return_exceptions=True)
                if self._terminated is not None:  # let terminate() send its message and close code first
                    await self._terminated.wait()
            finally:
                session.stream = None
        if closed_by_client:
            await self.registry.end(session, "closed", WS_NORMAL, "closed by the client")
            await self._close(WS_NORMAL, "closed")

    async def _receive_loop(self) -> bool:
        """Returns True when the client sent {"type": "close"}, False when the socket went away."""
        while self._open:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return False
            if message["type"] == "websocket.disconnect":
                self._open = False
                return False
            if self.session.ended:
                return False
            self.session.touch()
            data = message.get("bytes")
            if data is not None:
                await self._on_frame(data)
            elif message.get("text") is not None and await self._on_text(message["text"]):
                return True
        return False

    async def _on_frame(self, data: bytes) -> None:
        session = self.session
        session.frames_received += 1
        self.metrics.frames_received.inc()
        seq = session.frames_received
        try:
            # Every limit is checked here, on the header, before the frame takes the slot; decoding in the worker.
            check_frame(data, self.settings.max_frame_bytes, self.settings.max_frame_pixels)
        except ApiError as exc:
            await self._fail_frame(seq, exc)
            return
        if self.slot.put(PendingFrame(seq, data, time.perf_counter())) is not None:
            session.frames_dropped += 1
            self.metrics.frames_dropped.inc()

    async def _on_text(self, text: str) -> bool:
        """Handle a control message; True means the client asked to close. A bad message gets an
        error and the stream goes on."""
        try:
            kind, box = parse_control(text)
        except ApiError as exc:
            await self._send_error(exc.code, exc.message)
            return False
        if kind == "close":
            return True
        assert box is not None  # parse_control gives a reinit its box
        self.session.reinit.put(box)  # the next frame processed uses it (service.worker)
        return False

    async def _process_loop(self) -> None:
        while await self.slot.wait():
            # With the preview off (the default) the decoded frame is not even kept.
            taken = await self.worker.process_newest(self.session, self.slot, keep_image=self.session.preview.active())
            if taken is None:  # dropped meanwhile (the stream is ending)
                continue
            frame, outcome = taken
            if isinstance(outcome, ApiError):
                await self._fail_frame(frame.seq, outcome)
            else:
                await self._answer(frame, outcome)

    async def _answer(self, frame: PendingFrame, outcome: FrameOutcome) -> None:
        """Record a processed frame in the session, send its result, and offer its preview."""
        session, r = self.session, outcome.result
        session.record(r)
        latency = dict(outcome.latency_ms)
        # End to end inside the server: arrival until the result is handed to the socket,
        # including the event loop's pick-up of the finished worker job.
        latency["total"] = (time.perf_counter() - frame.received_at) * 1e3
        self.metrics.observe_frame(latency)
        await self._send(
            {
                "type": "result",
                "seq": frame.seq,
                "box": list(r.box),
                "score": r.score,
                "state": r.state,
                "dropped": session.frames_dropped,
                "deblurred": r.deblurred,
                "reinit": outcome.reinit,
                "latency_ms": {k: round(v, 3) for k, v in latency.items()},
            }
        )
        session.history.add(Sample(time.monotonic(), frame.seq, latency["total"], r.score, r.state))
        if outcome.image is not None:
            self._offer_preview(frame.seq, outcome.image, r)

    # -- preview (only while a page watches this session) -----------------------------------------
    def _offer_preview(self, seq: int, image: np.ndarray, result: TrackResult) -> None:
        """Encode this frame's preview now if the rate limit allows, else keep it (a newer frame
        replaces it) and encode it once the limit allows: the last frame of a stream that stops
        still shows up. Encoding runs in the worker pool after the result is sent, beside the
        tracking of the next frame, so a watching page never delays a box."""
        preview = self.session.preview
        if preview.due():
            self._pending_preview = None
            self._spawn(self._store_preview(seq, image, result))
        elif preview.enabled:
            self._pending_preview = (seq, image, result)
            if self._flush_task is None:
                # Not awaited when the stream ends: the trailing preview lands a moment later.
                self._flush_task = asyncio.create_task(self._flush_preview_later())

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._preview_tasks.add(task)
        task.add_done_callback(self._preview_tasks.discard)

    async def _flush_preview_later(self) -> None:
        preview = self.session.preview
        try:
            while self._pending_preview is not None and not self.session.ended:
                await asyncio.sleep(preview.wait_s())
                pending, self._pending_preview = self._pending_preview, None
                if pending is not None and preview.due():
                    await self._store_preview(*pending)
                elif pending is not None and preview.enabled and self._pending_preview is None:
                    self._pending_preview = pending  # another frame took the slot first; try again
        finally:
            self._flush_task = None

    async def _store_preview(self, seq: int, image: np.ndarray, result: TrackResult) -> None:
        try:
            encoded = await self.worker.encode_preview(image)
        except Exception:  # a preview must never take the stream down
            log.exception("preview of frame %d of session %s failed", seq, self.session.id)
            return
        self.session.preview.store(
            Preview(
                seq=seq,
                jpeg=encoded.jpeg,
                width=encoded.width,
                height=encoded.height,
                frame_width=image.shape[1],
                frame_height=image.shape[0],
                scale=encoded.scale,
                box=result.box,
                score=float(result.score),
                state=result.state,
                captured_at=datetime.now(UTC),
            )
        )
