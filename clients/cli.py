"""`blurtrack-client`: stream a video file, camera or image folder to a blurtrack server.

    blurtrack-client stream VIDEO|CAMERA_INDEX|IMAGE_DIR --box x,y,w,h --server http://HOST:8000 \\
        [--mode lockstep|realtime] [--out annotated.mp4] [--api-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import cv2
import httpx
import numpy as np
import websockets

from blurtrack.clients.client import BlurtrackClient, Reconnected, Result, ServerError, StreamError, StreamLost
from blurtrack.clients.drawing import VideoWriter, draw_box
from blurtrack.clients.sources import open_source


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blurtrack-client", description="Client of the blurtrack tracking service.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stream = sub.add_parser("stream", help="track a target through a video, camera or image folder")
    stream.add_argument("source", help="video file, camera index (0, 1, ...) or folder of images")
    stream.add_argument("--box", required=True, help="the target in the first frame: x,y,w,h in pixels")
    stream.add_argument(
        "--server", default=os.environ.get("BLURTRACK_SERVER", "http://127.0.0.1:8000"), help="server URL (env BLURTRACK_SERVER)"
    )
    stream.add_argument(
        "--mode",
        choices=("lockstep", "realtime"),
        default="lockstep",
        help="lockstep: send a frame, wait for its box (drops nothing); realtime: send at the source frame rate, "
        "read boxes as they come (the server drops frames it cannot keep up with)",
    )
    stream.add_argument("--fps", type=float, default=None, help="realtime send rate (default: the source's)")
    stream.add_argument("--out", default=None, help="write an annotated video here (.mp4)")
    stream.add_argument("--api-key", default=os.environ.get("BLURTRACK_API_KEY"), help="API key (env BLURTRACK_API_KEY)")
    stream.add_argument("--deblur", choices=("on", "off", "auto"), default=None, help="deblur policy of the session")
    stream.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    stream.add_argument("--jpeg-quality", type=int, default=90)
    stream.add_argument(
        "--reconnect",
        type=int,
        default=0,
        metavar="N",
        help="when the stream is lost (server restart, network), open a new session from the last frame and box "
        "and go on, up to N tries in a row with growing pauses (0.5 s, 1 s, 2 s, ... at most 8 s); default 0: a lost "
        "stream is an error",
    )
    stream.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser


class Annotator:
    """Writes every source frame, each with the newest box known when it is written."""

    def __init__(self, path: str, fps: float):
        self.video = VideoWriter(path, fps)
        self.pending: dict[int, np.ndarray | bytes] = {}
        self.last: tuple[tuple[float, ...], str] | None = None

    def keep(self, frames: Iterator[np.ndarray | bytes]) -> Iterator[np.ndarray | bytes]:
        for index, frame in enumerate(frames):
            self.pending[index] = frame
            yield frame

    def on_result(self, index: int, result: Result) -> None:
        for i in sorted(i for i in self.pending if i < index):
            self._write(self.pending.pop(i), "dropped")
        if index in self.pending:
            self.last = (result.box, result.state)
            self._write(self.pending.pop(index), result.state, f"#{index} {result.state} {result.score:.2f}")

    def close(self) -> None:
        for i in sorted(self.pending):
            self._write(self.pending.pop(i), "dropped")
        self.video.close()

    def _write(self, frame: np.ndarray | bytes, state: str, label: str | None = None) -> None:
        # a file sent as it is: decoded only here, for the video
        image = (
            cast(np.ndarray, cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR))
            if isinstance(frame, bytes)
            else frame
        )
        if self.last is not None:
            box, last_state = self.last
            image = draw_box(image, box, "dropped" if state == "dropped" else last_state, label)
        self.video.write(image)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class StreamTally:
    """What a stream brought back: results, errors, reconnects and latencies, printed as they come
    (results unless `quiet`) and summed up at the end."""

    quiet: bool
    results: int = 0
    errors: int = 0
    dropped: int = 0
    reconnects: int = 0
    server_ms: list[float] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)

    def on_reconnect(self, message: Reconnected) -> None:
        self.reconnects += 1
        x, y, w, h = message.box
        print(
            f"blurtrack-client: {message.reason}; reconnected (try {message.attempt}): new session "
            f"{message.session_id} from frame {message.from_index} at box {x:.1f},{y:.1f},{w:.1f},{h:.1f}",
            file=sys.stderr,
        )

    def on_error(self, index: int, message: StreamError) -> None:
        self.errors += 1
        print(f"frame {index:5d} error {message.code}: {message.message}", file=sys.stderr)

    def on_result(self, index: int, message: Result) -> None:
        self.results += 1
        self.dropped = max(self.dropped, message.dropped)
        if message.seq > 0:
            self.server_ms.append(message.latency_ms["total"])
            if message.rtt_ms is not None:
                self.rtt_ms.append(message.rtt_ms)
        if not self.quiet:
            x, y, w, h = message.box
            print(
                f"frame {index:5d} seq {message.seq:5d} box {x:7.1f},{y:7.1f},{w:6.1f},{h:6.1f} "
                f"score {message.score:.3f} {message.state:8s} dropped {message.dropped:4d} "
                f"server {message.latency_ms.get('total', 0.0):6.1f} ms rtt {message.rtt_ms or 0.0:6.1f} ms"
            )

    def summary(self) -> str:
        return (
            f"{self.results} results, {self.dropped} frames dropped by the server, {self.errors} errors, "
            f"{self.reconnects} reconnects; server latency p50 {_percentile(self.server_ms, 50):.1f} ms "
            f"p95 {_percentile(self.server_ms, 95):.1f} ms; "
            f"round trip p50 {_percentile(self.rtt_ms, 50):.1f} ms p95 {_percentile(self.rtt_ms, 95):.1f} ms"
        )


async def stream_command(args: argparse.Namespace) -> int:
    source = open_source(args.source, max_frames=args.max_frames, encoded=True)  # JPEG/PNG files go as they are
    fps = args.fps or source.fps
    annotator = Annotator(args.out, fps) if args.out else None
    frames = annotator.keep(source.frames) if annotator else source.frames
    tally = StreamTally(quiet=args.quiet)
    try:
        await _stream(args, frames, fps, tally, annotator)
    except StreamLost as exc:
        left = (
            f"{source.total - exc.frames_read} frames left unsent"
            if source.total is not None
            else "the rest of the source unsent"
        )
        hint = "" if args.reconnect else "; --reconnect N resumes on a new session"
        print(
            f"blurtrack-client: the stream was lost: {exc}. {tally.results} results received; frames after "
            f"{exc.last_answered} have no box ({exc.frames_read - 1 - exc.last_answered} sent without an answer), {left}{hint}",
            file=sys.stderr,
        )
        return 3
    except ServerError as exc:
        print(f"blurtrack-client: the server refused: {exc}", file=sys.stderr)
        return 2
    except (OSError, httpx.HTTPError, websockets.exceptions.WebSocketException) as exc:
        print(f"blurtrack-client: lost the server at {args.server}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if annotator:
            annotator.close()
    print(tally.summary() + (f"; annotated video: {args.out}" if args.out else ""))
    return 0


async def _stream(args: argparse.Namespace, frames, fps: float, tally: StreamTally, annotator: Annotator | None) -> None:
    """Stream `frames` through one session (and its reconnects), tallying every message."""
    options = {"deblur": args.deblur} if args.deblur else None
    async with BlurtrackClient(args.server, api_key=args.api_key) as client:
        track = client.track(
            frames,
            args.box,
            mode=args.mode,
            fps=fps,
            options=options,
            jpeg_quality=args.jpeg_quality,
            reconnect=args.reconnect,
        )
        async for index, message in track:
            if isinstance(message, Reconnected):
                tally.on_reconnect(message)
            elif isinstance(message, StreamError):
                tally.on_error(index, message)
            else:
                if annotator:
                    annotator.on_result(index, message)
                tally.on_result(index, message)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "stream":
        try:
            return asyncio.run(stream_command(args))
        except (FileNotFoundError, OSError, ValueError) as exc:
            print(f"blurtrack-client: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
