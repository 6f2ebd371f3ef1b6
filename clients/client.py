"""Async client of the blurtrack service.

    async with BlurtrackClient("http://robot-server:8000", api_key=None) as client:
        session = await client.open_session(first_frame, (x, y, w, h))
        async with client.stream(session) as stream:
            await stream.send_frame(frame)          # numpy BGR image or JPEG/PNG bytes
            message = await stream.receive()        # Result, or StreamError for a bad frame

or, for a whole frame source, `client.track(frames, box, mode="lockstep" | "realtime")`.

Lockstep sends a frame, waits for its answer, then sends the next: nothing is dropped and the
latency is one round trip. Realtime sends at the source's frame rate and reads answers
concurrently: the server tracks the newest frame and drops the ones that arrive while it is busy,
so the box is always about a recent frame even on a slow link.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import cv2
import httpx
import numpy as np
import websockets

Mode = Literal["lockstep", "realtime"]
BoxLike = Sequence[float] | str


class ServerError(Exception):
    """The server refused an HTTP call: status, stable `code` and a message saying what to do."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Result:
    """The server's answer for one frame (`seq` counts frames sent on the session, from 1;
    seq 0 is the first frame, the one the session was opened with)."""

    seq: int
    box: tuple[float, float, float, float]
    score: float
    state: str
    dropped: int
    latency_ms: dict[str, float]
    deblurred: bool = False
    reinit: bool = False
    rtt_ms: float | None = None  # measured here: frame sent -> result received


@dataclass(frozen=True)
class StreamError:
    """An error message on the stream. With `seq` it is about that frame, and the stream goes on."""

    code: str
    message: str
    seq: int | None = None


@dataclass(frozen=True)
class Session:
    session_id: str
    stream_url: str
    created_at: str
    first_box: tuple[float, float, float, float]


def encode_frame(frame: np.ndarray | bytes, jpeg_quality: int = 90) -> bytes:
    """BGR image -> JPEG bytes; bytes pass through (already JPEG/PNG)."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ValueError(f"could not JPEG-encode a frame of shape {getattr(frame, 'shape', None)}")
    return buffer.tobytes()


def format_box(box: BoxLike) -> str:
    if isinstance(box, str):
        return box
    return ",".join(f"{float(v):g}" for v in box)


def _box_tuple(box: BoxLike) -> tuple[float, float, float, float]:
    parts = box.replace(" ", "").split(",") if isinstance(box, str) else list(box)
    x, y, w, h = (float(v) for v in parts)
    return x, y, w, h


class TrackStream:
    """One WebSocket stream of a session. Use as `async with client.stream(session) as stream`."""

    def __init__(self, url: str, headers: dict[str, str], first_seq: int = 1):
        self.url = url
        self.headers = headers
        self._next_seq = first_seq
        self._sent_at: dict[int, float] = {}
        self._ws: Any = None
        self.close_requested = False  # a close after this, with code 1000, is the normal end

    async def __aenter__(self) -> Self:
        # compression=None: JPEG frames do not compress, and deflating them costs more CPU than tracking.
        self._ws = await websockets.connect(self.url, additional_headers=self.headers, compression=None)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._ws.close()

    @property
    def next_seq(self) -> int:
        """The seq the next frame sent will get."""
        return self._next_seq

    async def send_frame(self, frame: np.ndarray | bytes, jpeg_quality: int = 90) -> int:
        """Send one frame; returns the seq the server gives it."""
        data = encode_frame(frame, jpeg_quality)
        seq = self._next_seq
        self._next_seq += 1
        self._sent_at[seq] = time.perf_counter()
        await self._ws.send(data)
        return seq

    async def reinit(self, box: BoxLike) -> None:
        """Re-initialise the tracker on `box`, applied to the next frame the server processes."""
        await self._ws.send(json.dumps({"type": "reinit", "box": list(_box_tuple(box))}))

    async def receive(self) -> Result | StreamError:
        """The next message; raises websockets.ConnectionClosed when the server closed the stream."""
        message = json.loads(await self._ws.recv())
        if message.get("type") == "result":
            seq = message["seq"]
            sent = self._sent_at.pop(seq, None)
            # Frames before this one that got no result were dropped by the server.
            for old in [s for s in self._sent_at if s < seq]:
                del self._sent_at[old]
            return Result(
                seq=seq,
                box=tuple(message["box"]),
                score=message["score"],
                state=message["state"],
                dropped=message["dropped"],
                latency_ms=message["latency_ms"],
                deblurred=message.get("deblurred", False),
                reinit=message.get("reinit", False),
                rtt_ms=(time.perf_counter() - sent) * 1e3 if sent is not None else None,
            )
        if message.get("seq") is not None:
            self._sent_at.pop(message["seq"], None)
        return StreamError(message.get("code", "unknown"), message.get("message", ""), message.get("seq"))

    async def request_close(self) -> None:
        """Ask the server to close: it answers the frame still waiting, ends the session and closes
        the socket (keep calling receive() until it raises ConnectionClosed)."""
        self.close_requested = True
        await self._ws.send(json.dumps({"type": "close"}))

    async def close(self) -> list[Result | StreamError]:
        """request_close(), then read until the server has closed; returns the messages that came."""
        rest: list[Result | StreamError] = []
        await self.request_close()
        try:
            while True:
                rest.append(await self.receive())
        except websockets.ConnectionClosed:
            pass
        return rest


class BlurtrackClient:
    def __init__(self, server: str, api_key: str | None = None, timeout_s: float = 30.0):
        self.server = server.rstrip("/")
        self.api_key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.server, headers=self._headers, timeout=timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- HTTP ------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                code, message = body.get("code", "error"), body.get("detail", response.text)
            except ValueError:
                code, message = "error", response.text
            raise ServerError(response.status_code, code, str(message))
        return response

    async def ready(self) -> dict:
        return (await self._call("GET", "/readyz")).json()

    async def open_session(
        self, frame: np.ndarray | bytes, box: BoxLike, options: dict | None = None, jpeg_quality: int = 90
    ) -> Session:
        """Open a session on the first frame and the target box (x, y, w, h in pixels)."""
        data = {"box": format_box(box)}
        if options:
            data["options"] = json.dumps(options)
        files = {"frame": ("frame.jpg", encode_frame(frame, jpeg_quality), "image/jpeg")}
        body = (await self._call("POST", "/v1/sessions", data=data, files=files)).json()
        return Session(body["session_id"], body["stream_url"], body["created_at"], _box_tuple(box))

    async def get_session(self, session_id: str) -> dict:
        return (await self._call("GET", f"/v1/sessions/{session_id}")).json()

    async def list_sessions(self) -> list[dict]:
        return (await self._call("GET", "/v1/sessions")).json()["sessions"]

    async def delete_session(self, session_id: str) -> None:
        await self._call("DELETE", f"/v1/sessions/{session_id}")

    # -- streaming ---------------------------------------------------------------------------
    def stream(self, session: Session | str, first_seq: int = 1) -> TrackStream:
        """A stream on a session. `first_seq` is 1 on a new session (frames already sent + 1 when
        reattaching to one)."""
        path = session.stream_url if isinstance(session, Session) else f"/v1/sessions/{session}/stream"
        ws_base = "ws" + self.server[len("http") :] if self.server.startswith("http") else self.server
        headers = dict(self._headers)
        if self._http.cookies:
            # An ingress with cookie affinity set one on the POST: the stream must reach that same replica.
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self._http.cookies.items())
        return TrackStream(ws_base + path, headers, first_seq=first_seq)

    async def track(
        self,
        frames: Iterable[np.ndarray | bytes],
        box: BoxLike,
        mode: Mode = "lockstep",
        fps: float = 30.0,
        options: dict | None = None,
        jpeg_quality: int = 90,
        reconnect: int = 0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> AsyncIterator[tuple[int, Result | StreamError | Reconnected]]:
        """Track `box` through `frames` (BGR images or encoded bytes; the first opens the session).

        Yields (frame index, message) as answers arrive: index 0 is the opening frame with the
        given box. In realtime mode frames the server dropped get no message. The session is
        closed at the end.

        A stream that ends without our `close` (server restart, network) raises StreamLost; with
        `reconnect` > 0 it is retried that many times in a row, after backoff_s, 2 x backoff_s, ...
        (at most max_backoff_s): a new session is opened on the last frame that got a box, with
        that box, a Reconnected message is yielded, and tracking goes on. In lockstep mode the
        frame whose answer was lost is sent again, so every frame still gets a box."""
        if mode not in ("lockstep", "realtime"):
            raise ValueError(f"mode is lockstep or realtime, not {mode!r}")
        feed = _Feed(iter(frames))
        first = await feed.next()
        if first is None:
            return
        session = await self.open_session(first[1], box, options, jpeg_quality)
        anchor = (0, first[1], _box_tuple(box))  # the last frame with a box: where a new session starts
        yield 0, Result(0, session.first_box, 1.0, "tracking", 0, {})
        failures = 0
        while True:
            try:
                async with self.stream(session) as stream:
                    steps = (
                        _lockstep(stream, feed, jpeg_quality)
                        if mode == "lockstep"
                        else _realtime(stream, feed, fps, jpeg_quality)
                    )
                    async for index, message in steps:
                        if isinstance(message, Result) and message.seq > 0:
                            frame = feed.answered(index)
                            if frame is not None:
                                anchor = (index, frame, message.box)
                            failures = 0
                        yield index, message
                return
            except (StreamLost, websockets.WebSocketException, OSError) as exc:
                lost = exc if isinstance(exc, StreamLost) else StreamLost(f"connection lost ({type(exc).__name__}: {exc})")
                lost.frames_read, lost.last_answered = feed.index + 1, anchor[0]
                if failures >= reconnect:
                    raise lost from exc
            policy = _Reconnect(reconnect, backoff_s, max_backoff_s)
            session, failures = await self._reopen(anchor, lost, failures, policy, options, jpeg_quality)
            feed.resume(replay=mode == "lockstep")
            yield anchor[0], Reconnected(failures, session.session_id, anchor[0], _box_tuple(anchor[2]), lost.message)

    async def _reopen(
        self,
        anchor: tuple[int, Any, BoxLike],
        lost: StreamLost,
        failures: int,
        policy: _Reconnect,
        options: dict | None,
        jpeg_quality: int,
    ) -> tuple[Session, int]:
        """A new session on the anchor frame (the last one with a box) with its box, after a
        growing pause, tried as long as `policy` allows; returns it with the failures in a row so
        far. Gives up with `lost` (its message saying why) on a refusal or the last failed try."""
        while True:
            failures += 1
            await asyncio.sleep(policy.pause_s(failures))
            try:
                return await self.open_session(anchor[1], anchor[2], options, jpeg_quality), failures
            except (httpx.TransportError, ServerError) as exc:
                retryable = not isinstance(exc, ServerError) or exc.status >= 500
                if not retryable or failures >= policy.tries:
                    lost.message = f"{lost.message}; reconnecting failed after {failures} tries ({exc})"
                    raise lost from exc


@dataclass(frozen=True)
class _Reconnect:
    """How a lost stream is retried: `tries` times in a row at most, after first_s, 2 x first_s,
    ... (at most max_s)."""

    tries: int
    first_s: float
    max_s: float

    def pause_s(self, failures: int) -> float:
        return min(self.max_s, self.first_s * 2 ** (failures - 1))


class StreamLost(Exception):
    """The stream ended without the client asking (server shutdown or restart, network loss):
    frames sent after the last answer have no box. `frames_read` counts the frames taken from the
    source (the first one included), `last_answered` is the index of the last frame with a box."""

    def __init__(self, message: str, close_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.close_code = close_code
        self.frames_read = 0
        self.last_answered = 0

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Reconnected:
    """A new session replaced a lost stream (track(..., reconnect=N))."""

    attempt: int  # tries in a row it took
    session_id: str
    from_index: int  # the frame the new session was opened on
    box: tuple[float, float, float, float]  # with this box (the last one the server gave)
    reason: str  # why the old stream was lost


def _lost_from_close(exc: websockets.ConnectionClosed) -> StreamLost:
    close = exc.rcvd
    if close is None:
        return StreamLost("the connection dropped without a close frame")
    reason = f" ({close.reason})" if close.reason else ""
    return StreamLost(f"the server closed the stream with code {close.code}{reason}", close.code)


class _Feed:
    """Frames from the source, numbered from 0, and the ones sent but not yet answered (kept to
    reopen a session on them, or to send again after a reconnect in lockstep mode)."""

    MAX_KEPT = 64  # realtime: answers skip dropped frames; keep only the most recent unanswered ones

    def __init__(self, iterator):
        self.iterator = iterator
        self.index = -1  # of the last frame taken from the source
        self.unanswered: dict[int, Any] = {}
        self._replay: list[tuple[int, Any]] = []

    async def next(self) -> tuple[int, Any] | None:
        if self._replay:
            item = self._replay.pop(0)
        else:
            # Reading a camera or decoding video blocks; keep it off the event loop.
            frame = await asyncio.to_thread(next, self.iterator, _DONE)
            if frame is _DONE:
                return None
            self.index += 1
            item = (self.index, frame)
        return item

    def sent(self, index: int, frame: Any) -> None:
        self.unanswered[index] = frame
        while len(self.unanswered) > self.MAX_KEPT:
            del self.unanswered[next(iter(self.unanswered))]

    def answered(self, index: int) -> Any:
        """The frame `index` got a box: return it, and forget it and every older one."""
        frame = self.unanswered.get(index)
        for old in [i for i in self.unanswered if i <= index]:
            del self.unanswered[old]
        return frame

    def resume(self, replay: bool) -> None:
        """After a reconnect: send the unanswered frames again (lockstep), or let them go (realtime)."""
        self._replay = sorted(self.unanswered.items()) if replay else []
        self.unanswered.clear()


_DONE = object()


async def _lockstep(stream: TrackStream, feed: _Feed, jpeg_quality: int) -> AsyncIterator[tuple[int, Result | StreamError]]:
    try:
        while (item := await feed.next()) is not None:
            index, frame = item
            feed.sent(index, frame)
            seq = await stream.send_frame(frame, jpeg_quality)
            while True:  # an error about no frame (e.g. a refused reinit) does not answer this one
                message = await stream.receive()
                yield index, message
                if getattr(message, "seq", None) == seq:
                    break
        for message in await stream.close():
            yield feed.index, message
    except websockets.ConnectionClosed as exc:
        raise _lost_from_close(exc) from exc


async def _realtime(
    stream: TrackStream, feed: _Feed, fps: float, jpeg_quality: int
) -> AsyncIterator[tuple[int, Result | StreamError]]:
    queue: asyncio.Queue = asyncio.Queue()
    seq_to_index: dict[int, int] = {}

    async def sender() -> None:
        try:
            period = 1.0 / fps if fps > 0 else 0.0
            start = time.perf_counter()
            count = 0
            while (item := await feed.next()) is not None:
                index, frame = item
                count += 1
                # Pace to the source's clock (a live camera paces itself; then this never sleeps).
                delay = start + (count - 1) * period - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                seq_to_index[stream.next_seq] = index  # before sending: the answer may come at once
                feed.sent(index, frame)
                await stream.send_frame(frame, jpeg_quality)
            await stream.request_close()  # the reader drains the last answers until the server closes
        except websockets.ConnectionClosed as exc:
            await queue.put(_lost_from_close(exc))
        except Exception as exc:
            await queue.put(exc)

    async def reader() -> None:
        try:
            while True:
                await queue.put(await stream.receive())
        except websockets.ConnectionClosed as exc:
            close = exc.rcvd
            if not (stream.close_requested and close is not None and close.code == 1000):
                await queue.put(_lost_from_close(exc))  # results still on their way are lost
        finally:
            await queue.put(_DONE)

    tasks = [asyncio.create_task(sender()), asyncio.create_task(reader())]
    try:
        while (message := await queue.get()) is not _DONE:
            if isinstance(message, Exception):
                raise message
            seq = getattr(message, "seq", None)
            yield seq_to_index.get(seq, -1) if seq is not None else -1, message
    finally:
        for task in tasks:
            task.cancel()
