"""Live tracking sessions: their state, their one-frame slot, and the registry that opens, limits
and expires them. Everything here is touched only on the event loop, except a session's tracker
and its pending re-init: the worker thread that tracks the session's one frame in flight uses
the tracker, replaces it on a re-init and consumes the re-init request (service.worker)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from blurtrack.engine.pipeline import SiamRPNTracker, TrackResult
from blurtrack.service.config import ServiceSettings
from blurtrack.service.errors import ApiError, unknown_session
from blurtrack.service.metrics import ServiceMetrics
from blurtrack.service.schemas import SessionInfo, SessionOptions

if TYPE_CHECKING:
    from blurtrack.engine.geometry import Box

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingFrame:
    seq: int
    data: bytes
    received_at: float  # time.perf_counter() when the message arrived


class FrameSlot:
    """Holds at most one waiting frame. A newer frame replaces the waiting one (latest-frame-wins),
    so a slow worker or link never builds a queue: the robot always gets its newest frame tracked."""

    def __init__(self) -> None:
        self._frame: PendingFrame | None = None
        self._closed = False
        self._ready = asyncio.Event()
        # put() runs on the event loop, discard() also in the worker thread that takes the frame
        self._lock = threading.Lock()

    def put(self, frame: PendingFrame) -> PendingFrame | None:
        """Store `frame`; return the frame it replaced (to be counted as dropped), if any. Once
        closed, a new frame is not taken (the stream is finishing) and is returned as dropped."""
        if self._closed:
            return frame
        with self._lock:
            replaced, self._frame = self._frame, frame
        self._ready.set()
        return replaced

    def discard(self) -> PendingFrame | None:
        """Take the waiting frame, if any (thread-safe)."""
        with self._lock:
            frame, self._frame = self._frame, None
        return frame

    def close(self) -> None:
        """No more frames: `wait` still reports the waiting frame, if any, then returns False."""
        self._closed = True
        self._ready.set()

    async def wait(self) -> bool:
        """Until a frame waits (True) or the slot is closed with none left (False); takes nothing,
        so frames that arrive until the caller takes one still replace the waiting one."""
        while self._frame is None and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        return self._frame is not None


@dataclass(frozen=True)
class Preview:
    """One downscaled JPEG of a processed frame, with what the tracker said about that frame."""

    seq: int
    jpeg: bytes
    width: int  # of the JPEG
    height: int
    frame_width: int
    frame_height: int
    scale: float  # preview pixels per frame pixel
    box: tuple[float, float, float, float]  # in frame pixels
    score: float
    state: str
    captured_at: datetime


class PreviewState:
    """Opt-in preview of one session for the live page. Off by default: then no frame is ever
    encoded. On, at most `max_fps` frames a second are encoded, and only while someone keeps
    fetching it: `idle_off_s` after the last fetch it switches itself off (a closed tab costs
    nothing). Only the newest preview is kept."""

    def __init__(self, max_fps: float, idle_off_s: float) -> None:
        self.max_fps = max_fps
        self.idle_off_s = idle_off_s
        self.enabled = False
        self.latest: Preview | None = None
        self.frames_encoded = 0
        self._last_granted = -math.inf  # monotonic time an encode was last granted
        self._last_wanted = -math.inf  # monotonic time a page last enabled or fetched it

    def set_enabled(self, enabled: bool, now: float | None = None) -> None:
        self.enabled = enabled
        if enabled:
            self._last_wanted = time.monotonic() if now is None else now
        else:
            self.latest = None  # nothing watches it: free the JPEG

    def fetched(self, now: float | None = None) -> None:
        self._last_wanted = time.monotonic() if now is None else now

    def active(self, now: float | None = None) -> bool:
        """On, and fetched within `idle_off_s`; past that it switches itself off."""
        if not self.enabled:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_wanted > self.idle_off_s:
            self.set_enabled(False)
            return False
        return True

    def wait_s(self, now: float | None = None) -> float:
        """Seconds until the rate limit allows the next encode."""
        now = time.monotonic() if now is None else now
        return max(0.0, self._last_granted + 1.0 / self.max_fps - now)

    def due(self, now: float | None = None) -> bool:
        """Whether a frame processed now may be encoded; True claims the encode slot."""
        now = time.monotonic() if now is None else now
        if not self.active(now) or self.wait_s(now) > 0:
            return False
        self._last_granted = now
        return True

    def store(self, preview: Preview) -> None:
        self.frames_encoded += 1
        # Encodes finish out of the event loop's order only in theory; never step back to an older frame.
        if self.enabled and (self.latest is None or preview.seq > self.latest.seq):
            self.latest = preview


@dataclass(frozen=True)
class Sample:
    t: float  # time.monotonic() when the result was sent
    seq: int
    latency_ms: float  # end to end inside the server
    score: float
    state: str


class History:
    """The last `window_s` seconds of per-frame samples (for the page's chart and the FPS column)."""

    MAX_SAMPLES = 20_000  # a hard cap whatever the frame rate: 60 s at over 300 frames/s

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[Sample] = deque(maxlen=self.MAX_SAMPLES)

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        self._prune(sample.t - self.window_s)

    def _prune(self, oldest: float) -> None:
        while self._samples and self._samples[0].t < oldest:
            self._samples.popleft()

    def recent(self, now: float | None = None) -> list[Sample]:
        now = time.monotonic() if now is None else now
        self._prune(now - self.window_s)
        return list(self._samples)

    def last(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def fps(self, now: float | None = None, span_s: float = 3.0) -> float:
        """Frames processed per second over the last `span_s` seconds (0 when the stream is idle)."""
        now = time.monotonic() if now is None else now
        times = []
        for sample in reversed(self._samples):  # newest first; stop at the span (the list polls this each second)
            if sample.t < now - span_s:
                break
            times.append(sample.t)
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[0] - times[-1], 1e-6)


class StreamHandle(Protocol):
    """What a session needs of the WebSocket attached to it (see service.streaming)."""

    async def terminate(self, close_code: int, code: str, message: str, finish: bool = False) -> None: ...


@dataclass(frozen=True, eq=False)
class ReinitRequest:
    """One {"type": "reinit"} message; compared by identity (a second message with the same box is
    another request)."""

    box: Box


class PendingReinit:
    """A session's latest re-init request until a frame used it. The stream puts it (event loop);
    the worker thread tracking the next frame reads it and consumes it once it used it or refused
    its box. A frame that fails before the box is tried leaves it for the next frame, and a newer
    request that arrives meanwhile is never consumed by an older one's frame."""

    def __init__(self) -> None:
        self._request: ReinitRequest | None = None
        self._lock = threading.Lock()  # consume() compares and clears from a worker thread

    def put(self, box: Box) -> None:
        with self._lock:
            self._request = ReinitRequest(box)

    def peek(self) -> ReinitRequest | None:
        return self._request

    def consume(self, request: ReinitRequest) -> None:
        with self._lock:
            if self._request is request:
                self._request = None


@dataclass
class Session:
    tracker: SiamRPNTracker  # replaced by the worker when a frame re-initialises the session
    options: SessionOptions
    first: TrackResult
    preview: PreviewState
    history: History
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_seen_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_seen: float = field(default_factory=time.monotonic)
    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_failed: int = 0
    # set by a {"type": "reinit"} message; consumed by the next frame processed
    reinit: PendingReinit = field(default_factory=PendingReinit)
    stream: StreamHandle | None = None
    ended: bool = False

    def __post_init__(self) -> None:
        self.box = self.first.box
        self.score = self.first.score
        self.state = self.first.state

    def touch(self) -> None:
        self.last_seen = time.monotonic()
        self.last_seen_at = datetime.now(UTC)

    def record(self, result: TrackResult) -> None:
        self.box, self.score, self.state = result.box, result.score, result.state
        self.frames_processed += 1

    def info(self) -> SessionInfo:
        last = self.history.last()
        return SessionInfo(
            session_id=self.id,
            state=self.state,
            box=self.box,
            score=self.score,
            frames_received=self.frames_received,
            frames_processed=self.frames_processed,
            frames_dropped=self.frames_dropped,
            frames_failed=self.frames_failed,
            streaming=self.stream is not None,
            fps=round(self.history.fps(), 2),
            latency_ms=round(last.latency_ms, 3) if last is not None else None,
            preview=self.preview.enabled,
            options=self.options,
            created_at=self.created_at,
            last_seen_at=self.last_seen_at,
        )


class SessionRegistry:
    """Opens sessions with the service's limits and live-view settings, and ends and expires them."""

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics):
        self.settings = settings
        self.max_sessions = settings.max_sessions
        self.idle_timeout_s = settings.idle_timeout_s
        self.metrics = metrics
        self._sessions: dict[str, Session] = {}
        # Places taken by sessions still initialising in a worker, so concurrent POSTs cannot
        # together pass the limit.
        self._reserved = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def reserve(self) -> None:
        if len(self._sessions) + self._reserved >= self.max_sessions:
            raise ApiError(
                503,
                "too_many_sessions",
                f"this server already holds its maximum of {self.max_sessions} live sessions "
                "(BLURTRACK_MAX_SESSIONS): DELETE finished sessions, retry later, or use another replica",
            )
        self._reserved += 1

    def release(self) -> None:
        self._reserved -= 1

    def open(self, tracker: SiamRPNTracker, first: TrackResult, options: SessionOptions) -> Session:
        """A new session, in the place `reserve` took for it, on a tracker initialised on its first frame."""
        s = self.settings
        session = Session(
            tracker=tracker,
            options=options,
            first=first,
            preview=PreviewState(s.preview_max_fps, s.preview_idle_off_s),
            history=History(s.history_s),
        )
        self._reserved -= 1
        self._sessions[session.id] = session
        self.metrics.sessions_created.inc()
        self.metrics.live_sessions.set(len(self._sessions))
        log.info(
            "session %s opened on box %s (%d live)", session.id, ",".join(f"{v:g}" for v in session.box), len(self._sessions)
        )
        return session

    def get(self, session_id: str) -> Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise unknown_session(session_id) from None

    def find(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def all(self) -> list[Session]:
        return sorted(self._sessions.values(), key=lambda s: s.created_at)

    async def end(self, session: Session, reason: str, close_code: int, message: str, finish: bool = False) -> None:
        """Remove a session; an attached stream gets `message` and is closed with `close_code`
        (with `finish`, after the frames it already took are answered)."""
        if self._sessions.pop(session.id, None) is None:
            return
        session.ended = True
        self.metrics.sessions_ended.labels(reason=reason).inc()
        self.metrics.live_sessions.set(len(self._sessions))
        log.info(
            "session %s %s after %d frames (%d dropped, %d failed; %d live)",
            session.id,
            reason,
            session.frames_received,
            session.frames_dropped,
            session.frames_failed,
            len(self._sessions),
        )
        if session.stream is not None:
            await session.stream.terminate(close_code, f"session_{reason}", message, finish=finish)

    def idle(self, now: float | None = None) -> list[Session]:
        now = time.monotonic() if now is None else now
        return [s for s in self._sessions.values() if now - s.last_seen > self.idle_timeout_s]
