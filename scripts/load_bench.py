"""Load benchmark of the streaming service (not a test): end-to-end latency p50/p95/p99 and
frames/s for 1, 4 and 16 concurrent sessions against a real `blurtrack serve` process it starts,
and the service's overhead relative to the engine's own time, measured in the same run.

    python scripts/load_bench.py --test-bundle                     # the hand-made test bundle
    python scripts/load_bench.py --bundle blurtrack-effnet-eca --backend mslite --json out.json

Every session streams its own rendered sequence (a textured target over a noisy background). In
`lockstep` mode (default) each session sends a frame, waits for its box, sends the next: a
closed loop that measures latency without drops. In `realtime` mode each session sends at --fps
and reads concurrently; the server drops what it cannot keep up with, and the drop rate is shown.

Engine time is measured twice: directly in this process (the same frames through
Pipeline.new_tracker().track(), one session at a time, before the load) and inside the server
(the `engine` latency it reports per frame). overhead = client round trip / direct engine time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from blurtrack.clients.client import BlurtrackClient, Result
from blurtrack.engine.frames import decode_image
from blurtrack.engine.pipeline import Pipeline
from blurtrack.models.render import render_moving_target

REPO = Path(__file__).resolve().parent.parent


@dataclass
class RunStats:
    sessions: int
    rtt_ms: list[float] = field(default_factory=list)
    server_total_ms: list[float] = field(default_factory=list)
    server_engine_ms: list[float] = field(default_factory=list)
    sent: int = 0
    answered: int = 0
    dropped: int = 0
    wall_s: float = 0.0


def render_jpegs(seed: int, n_frames: int, size: tuple[int, int]) -> tuple[list[bytes], tuple[float, ...]]:
    width, height = size
    side = max(24, min(width, height) // 8)
    rng = np.random.default_rng(seed)
    step = (float(rng.uniform(2, 6)), float(rng.uniform(-4, 4)))
    seq = render_moving_target(n_frames + 1, size=size, target=(side, side), step=step, seed=seed)
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in seq.frames]
    return jpegs, tuple(float(v) for v in seq.boxes[0])


def engine_direct_ms(bundle: str, backend: str, threads: int, jpegs: list[bytes], box) -> tuple[list[float], list[float]]:
    """The engine alone on the same frames: (track() wall ms per frame, decode ms per frame)."""
    pipeline = Pipeline.from_bundle(bundle, backend=backend, threads=threads)
    warm = pipeline.new_tracker()  # a first pass warms the runtime up, as the server's warm-up session does
    warm.init(decode_image(jpegs[0]), box)
    for jpeg in jpegs[1:]:
        warm.track(decode_image(jpeg))
    tracker = pipeline.new_tracker()
    tracker.init(decode_image(jpegs[0]), box)
    track_ms, decode_ms = [], []
    for jpeg in jpegs[1:]:
        t0 = time.perf_counter()
        frame = decode_image(jpeg)
        t1 = time.perf_counter()
        tracker.track(frame)
        t2 = time.perf_counter()
        decode_ms.append((t1 - t0) * 1e3)
        track_ms.append((t2 - t1) * 1e3)
    return track_ms, decode_ms


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, bundle: str, port: int) -> tuple[subprocess.Popen, dict, Path]:
    command = [
        sys.executable,
        "-m",
        "blurtrack",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--bundle",
        bundle,
        "--backend",
        args.backend,
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--max-sessions",
        str(max(args.concurrency) + 4),
        "--log-level",
        "warning",
    ]
    # The log goes to a file: an unread pipe would fill up and stall the server.
    log = tempfile.NamedTemporaryFile("w+", prefix="blurtrack-bench-server-", suffix=".log", delete=False)
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return process, json.load(response), Path(log.name)
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the server did not start; its log ({log.name}):\n{Path(log.name).read_text()}") from None
            time.sleep(0.2)


async def one_session(client: BlurtrackClient, jpegs: list[bytes], box, mode: str, fps: float, stats: RunStats) -> None:
    session = await client.open_session(jpegs[0], box)
    async with client.stream(session) as stream:
        if mode == "lockstep":
            message = None
            for jpeg in jpegs[1:]:
                await stream.send_frame(jpeg)
                stats.sent += 1
                message = await stream.receive()
                _record(message, stats)
            for message in await stream.close():
                _record(message, stats)
            stats.dropped += message.dropped if isinstance(message, Result) else 0
            return

        async def send():
            start = time.perf_counter()
            for i, jpeg in enumerate(jpegs[1:]):
                delay = start + i / fps - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await stream.send_frame(jpeg)
                stats.sent += 1
            await stream.request_close()

        async def read():
            import websockets

            last_dropped = 0
            try:
                while True:
                    message = await stream.receive()
                    _record(message, stats)
                    if isinstance(message, Result):
                        last_dropped = message.dropped
            except websockets.ConnectionClosed:
                stats.dropped += last_dropped

        await asyncio.gather(send(), read())


def _record(message, stats: RunStats) -> None:
    if isinstance(message, Result):
        stats.answered += 1
        if message.rtt_ms is not None:
            stats.rtt_ms.append(message.rtt_ms)
        stats.server_total_ms.append(message.latency_ms["total"])
        stats.server_engine_ms.append(message.latency_ms["engine"])


async def run_load(url: str, sequences, n_sessions: int, mode: str, fps: float) -> RunStats:
    stats = RunStats(n_sessions)
    async with BlurtrackClient(url, timeout_s=120) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one_session(client, *sequences[i % len(sequences)], mode, fps, stats) for i in range(n_sessions)))
        stats.wall_s = time.perf_counter() - start
    return stats


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=os.environ.get("BLURTRACK_BUNDLE", "blurtrack-effnet-eca"))
    parser.add_argument("--test-bundle", action="store_true", help="build and use the hand-made test bundle")
    parser.add_argument("--backend", default="onnxruntime", choices=("auto", "mslite", "onnxruntime"))
    parser.add_argument("--workers", type=int, default=2, help="server inference threads")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per model session")
    parser.add_argument("--concurrency", default="1,4,16", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--frames", type=int, default=60, help="frames streamed per session")
    parser.add_argument("--size", default="640x480", help="frame size WxH")
    parser.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    parser.add_argument("--fps", type=float, default=30.0, help="per-session send rate in realtime mode")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))

    bundle = args.bundle
    if args.test_bundle:
        from blurtrack.models.testbundle import build_test_bundle

        scratch = tempfile.TemporaryDirectory(prefix="blurtrack-bench-")  # removed at exit
        bundle = str(build_test_bundle(Path(scratch.name) / "test-matched-filter"))
    from blurtrack.engine.manifest import resolve_bundle_dir

    bundle = str(resolve_bundle_dir(bundle))  # a clear error now, not a server that never gets ready

    sequences = [render_jpegs(seed, args.frames, size) for seed in range(min(16, max(args.concurrency)))]
    direct_track, direct_decode = engine_direct_ms(bundle, args.backend, args.threads, *sequences[0])
    engine_p50 = pct(direct_track, 50)

    port = free_port()
    server, ready, server_log = start_server(args, bundle, port)
    rows = []
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(run_load(url, sequences, 1, "lockstep", args.fps))  # warm-up: first-run allocations
        for n in args.concurrency:
            server_cpu, client_cpu = process_cpu_s(server.pid), time.process_time()
            stats = asyncio.run(run_load(url, sequences, n, args.mode, args.fps))
            server_cpu, client_cpu = process_cpu_s(server.pid) - server_cpu, time.process_time() - client_cpu
            rows.append(
                {
                    "sessions": n,
                    "frames_sent": stats.sent,
                    "results": stats.answered,
                    "dropped": stats.dropped,
                    "fps": stats.answered / stats.wall_s,
                    "rtt_p50_ms": pct(stats.rtt_ms, 50),
                    "rtt_p95_ms": pct(stats.rtt_ms, 95),
                    "rtt_p99_ms": pct(stats.rtt_ms, 99),
                    "server_total_p50_ms": pct(stats.server_total_ms, 50),
                    "server_engine_p50_ms": pct(stats.server_engine_ms, 50),
                    "overhead_ratio": pct(stats.rtt_ms, 50) / engine_p50,
                    # CPU time spent per answered frame: where the machine's cores go
                    "server_cpu_ms_per_frame": server_cpu * 1e3 / max(stats.answered, 1),
                    "client_cpu_ms_per_frame": client_cpu * 1e3 / max(stats.answered, 1),
                }
            )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    server_log.unlink(missing_ok=True)  # kept only when the run failed, for its log

    backend = ready.get("backend", {})
    print(
        f"blurtrack load bench: bundle {backend.get('bundle')} on {backend.get('backend')} ({backend.get('device')}), "
        f"{args.workers} worker threads x {args.threads} intra-op threads, {size[0]}x{size[1]} JPEG frames, "
        f"{args.frames} frames/session, {args.mode}" + (f" at {args.fps:g} fps/session" if args.mode == "realtime" else "")
    )
    load = os.getloadavg()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average at the end {load[0]:.1f} (other work on the machine slows every number)"
    )
    print(
        f"engine alone (this process, 1 session): track p50 {engine_p50:.2f} ms p95 {pct(direct_track, 95):.2f} ms, "
        f"JPEG decode p50 {pct(direct_decode, 50):.2f} ms"
    )
    print()
    header = (
        "| sessions | frames/s | e2e p50 ms | e2e p95 ms | e2e p99 ms | server total p50 ms | engine in server p50 ms "
        "| dropped | e2e / engine | server CPU ms/frame | client CPU ms/frame |"
    )
    print(header)
    print("|---:" * (header.count("|") - 1) + "|")
    for r in rows:
        print(
            f"| {r['sessions']} | {r['fps']:.1f} | {r['rtt_p50_ms']:.2f} | {r['rtt_p95_ms']:.2f} | {r['rtt_p99_ms']:.2f} | "
            f"{r['server_total_p50_ms']:.2f} | {r['server_engine_p50_ms']:.2f} | {r['dropped']} | {r['overhead_ratio']:.2f}x | "
            f"{r['server_cpu_ms_per_frame']:.2f} | {r['client_cpu_ms_per_frame']:.2f} |"
        )
    print(
        "\ne2e = client send -> result received over the WebSocket (loopback); server total = frame arrival -> result sent; "
        "e2e / engine = e2e p50 over the engine's own p50 (the service's overhead: decode, queueing, transport). "
        "Client and server share this machine's cores."
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "backend": backend,
                    "workers": args.workers,
                    "threads": args.threads,
                    "size": list(size),
                    "frames_per_session": args.frames,
                    "mode": args.mode,
                    "fps": args.fps,
                    "load_average": load,
                    "engine_direct": {
                        "track_p50_ms": engine_p50,
                        "track_p95_ms": pct(direct_track, 95),
                        "decode_p50_ms": pct(direct_decode, 50),
                    },
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
