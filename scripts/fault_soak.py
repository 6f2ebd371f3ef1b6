"""Fault soak of the streaming service (a benchmark, not a test): concurrent sessions for a while
against a real `blurtrack serve` process, with clients that misbehave, and one server restart.

    python scripts/fault_soak.py                          # 16 sessions, 90 s, the hand-made test bundle
    python scripts/fault_soak.py --sessions 16 --duration 300 --bundle blurtrack-effnet-eca

The sessions are split into three kinds:
- lockstep: send a frame, wait for its box (client library, reconnect=8): no frame may end
  without a box, across the restart too ("results lost" must be 0);
- realtime: send at --fps and read concurrently (reconnect=8): the server drops what it cannot
  keep up with; lost results are frames in flight when a stream was lost;
- chaos: open a session, send frames mixed with corrupt frames, decompression bombs and bad
  control messages, then drop the connection without a close (or delete the session), again and
  again; every refusal must be an error message with a code.
Halfway through, the server gets SIGTERM (graceful shutdown: streams get 1001) and is started
again on the same port; lockstep and realtime clients reconnect.

It prints frames sent, results received, errors by code, results lost, p95 round trip, the
reconnects, and the server's RSS at start, its peak and at the end (both processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
import websockets

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from blurtrack.clients.client import BlurtrackClient, Reconnected, Result, StreamError, StreamLost  # noqa: E402
from blurtrack.models.render import render_moving_target  # noqa: E402
from tests.service.bombs import bomb_headers  # noqa: E402

MB = 1024 * 1024


@dataclass
class Stats:
    frames_sent: Counter = field(default_factory=Counter)  # by kind
    results: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # by code
    lost: Counter = field(default_factory=Counter)  # frames that never got a box, by kind
    reconnects: int = 0
    failures: list[str] = field(default_factory=list)  # a client that gave up, or a reply out of shape
    rtt_ms: list[float] = field(default_factory=list)


def render(seed: int) -> tuple[list[bytes], tuple[float, ...]]:
    seq = render_moving_target(60, size=(320, 240), target=(40, 40), step=(2.0, 1.0), seed=seed)
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in seq.frames]
    return jpegs, tuple(float(v) for v in seq.boxes[0])


def looping(jpegs: list[bytes], until: float):
    """The sequence forward and back (the target never jumps) until the deadline."""
    order = list(range(len(jpegs))) + list(range(len(jpegs) - 2, 0, -1))
    i = 0
    while time.monotonic() < until:
        yield jpegs[order[i % len(order)]]
        i += 1


# -- server process ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, bundle: str, port: int, log) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "blurtrack",
        "serve",
        "--port",
        str(port),
        "--bundle",
        bundle,
        "--backend",
        args.backend,
        "--workers",
        str(args.workers),
        "--threads",
        "1",
        "--max-sessions",
        "64",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                json.load(response)
                return process
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {log.name}") from None
            time.sleep(0.2)


def rss(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


# -- clients -------------------------------------------------------------------------------------


async def tracked_client(url: str, kind: str, seed: int, until: float, fps: float, stats: Stats) -> None:
    """lockstep or realtime through the client library, with reconnect."""
    jpegs, box = render(seed)
    read = answered = 0
    try:
        async with BlurtrackClient(url) as client:
            frames = looping(jpegs, until)

            def counted():
                nonlocal read
                for frame in frames:
                    read += 1
                    yield frame

            seen: set[int] = set()
            async for index, message in client.track(counted(), box, mode=kind, fps=fps, reconnect=8, backoff_s=0.5):
                if isinstance(message, Reconnected):
                    stats.reconnects += 1
                elif isinstance(message, Result):
                    stats.results[kind] += 1
                    if index not in seen:
                        seen.add(index)
                        answered += 1
                    if message.rtt_ms is not None:
                        stats.rtt_ms.append(message.rtt_ms)
                elif isinstance(message, StreamError):
                    stats.errors[message.code] += 1
    except StreamLost as exc:
        stats.failures.append(f"{kind} client gave up: {exc}")
    except Exception as exc:
        stats.failures.append(f"{kind} client: {type(exc).__name__}: {exc}")
    stats.frames_sent[kind] += read
    if kind == "lockstep":  # realtime answers skip the frames the server dropped, by design
        stats.lost[kind] += read - answered


async def chaos_client(url: str, seed: int, until: float, stats: Stats) -> None:
    rng = random.Random(seed)
    jpegs, box = render(seed)
    bombs = list(bomb_headers().values())
    bad_text = [
        '{"type":"reinit","box":5}',
        '{"type":"reinit","box":[0,0,1e308,1e308]}',
        "[" * 5000,
        "hello",
        '{"type":"reinit"}',
    ]
    ws_url = "ws" + url[len("http") :]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while time.monotonic() < until:
            try:
                opened = await http.post(
                    "/v1/sessions", files={"frame": ("f.jpg", jpegs[0], "image/jpeg")}, data={"box": ",".join(map(str, box))}
                )
                if opened.status_code != 201:
                    stats.errors[opened.json().get("code", f"http_{opened.status_code}")] += 1
                    await asyncio.sleep(0.5)
                    continue
                session_id = opened.json()["session_id"]
                async with websockets.connect(f"{ws_url}/v1/sessions/{session_id}/stream", compression=None) as ws:
                    for i in range(rng.randint(5, 30)):
                        roll = rng.random()
                        stats.frames_sent["chaos"] += roll < 0.2 or roll >= 0.3  # every binary message is a frame
                        if roll < 0.1:
                            await ws.send(rng.choice(bombs))
                        elif roll < 0.2:
                            await ws.send(jpegs[1][: rng.randint(0, len(jpegs[1]))] + os.urandom(rng.randint(0, 50)))
                        elif roll < 0.3:
                            await ws.send(rng.choice(bad_text))
                        else:
                            await ws.send(jpegs[1 + i % (len(jpegs) - 1)])
                        reply = json.loads(await asyncio.wait_for(ws.recv(), 30), parse_constant=lambda c: float("nan"))
                        if reply["type"] == "result":
                            stats.results["chaos"] += 1
                            if not all(np.isfinite(reply["box"])):
                                stats.failures.append(f"non-finite box {reply['box']}")
                        elif reply["type"] == "error" and reply.get("code"):
                            stats.errors[reply["code"]] += 1
                        else:
                            stats.failures.append(f"reply out of shape: {str(reply)[:100]}")
                    if rng.random() < 0.5:
                        ws.transport.abort()  # drop without a close: the session stays until it expires
                    else:
                        await http.delete(f"/v1/sessions/{session_id}")
            except (TimeoutError, websockets.ConnectionClosed, OSError, httpx.TransportError) as exc:
                stats.errors[f"chaos_connection_{type(exc).__name__}"] += 1  # the restart, mostly
                await asyncio.sleep(0.5)


# -- the run -------------------------------------------------------------------------------------


async def soak(args, url: str, restart) -> Stats:
    stats = Stats()
    until = time.monotonic() + args.duration
    kinds = ["lockstep", "realtime", "chaos"]
    tasks = []
    for i in range(args.sessions):
        kind = kinds[i % 3]
        if kind == "chaos":
            tasks.append(chaos_client(url, i, until, stats))
        else:
            tasks.append(tracked_client(url, kind, i, until, args.fps, stats))

    async def restarter():
        await asyncio.sleep(args.duration / 2)
        await asyncio.to_thread(restart)

    await asyncio.gather(*tasks, restarter())
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of load (the restart is halfway)")
    parser.add_argument("--fps", type=float, default=15.0, help="realtime clients' send rate")
    parser.add_argument("--bundle", default=None, help="model bundle (default: the hand-made test bundle)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fault-soak-"))
    bundle = args.bundle
    if bundle is None:
        from blurtrack.models.testbundle import build_test_bundle

        bundle = str(build_test_bundle(tmp / "test-bundle"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "w")
    processes = [start_server(args, bundle, port, log)]
    memory = [{"start": rss(processes[0].pid)["VmRSS"], "peak": 0}]

    def restart() -> None:
        old = processes[-1]
        memory[-1]["end"] = rss(old.pid).get("VmRSS", 0)
        memory[-1]["peak"] = rss(old.pid).get("VmHWM", 0)
        old.send_signal(signal.SIGTERM)
        old.wait(60)
        processes.append(start_server(args, bundle, port, log))
        memory.append({"start": rss(processes[-1].pid)["VmRSS"], "peak": 0})

    started = time.monotonic()
    stats = asyncio.run(soak(args, url, restart))
    final = rss(processes[-1].pid)
    memory[-1]["end"], memory[-1]["peak"] = final.get("VmRSS", 0), final.get("VmHWM", 0)
    processes[-1].send_signal(signal.SIGTERM)
    processes[-1].wait(60)

    p95 = float(np.percentile(stats.rtt_ms, 95)) if stats.rtt_ms else float("nan")
    split = Counter(["lockstep", "realtime", "chaos"][i % 3] for i in range(args.sessions))
    print(
        f"fault soak: {args.sessions} sessions {dict(split)}, {time.monotonic() - started:.0f} s, one restart; "
        f"bundle {Path(bundle).name}, {args.workers} workers, realtime at {args.fps:g} fps"
    )
    print(f"frames sent:      {dict(stats.frames_sent)}")
    print(f"results received: {dict(stats.results)}")
    print(f"results lost:     lockstep {stats.lost['lockstep']} (must be 0)")
    print(f"errors by code:   {dict(sorted(stats.errors.items()))}")
    print(f"reconnects:       {stats.reconnects}")
    print(f"round trip p95:   {p95:.1f} ms (lockstep and realtime results)")
    for i, m in enumerate(memory):
        print(
            f"server process {i + 1} RSS: start {m['start'] / MB:.0f} MB, peak {m['peak'] / MB:.0f} MB, end {m['end'] / MB:.0f} MB"
        )
    print(f"client failures:  {len(stats.failures)}" + "".join(f"\n  {f}" for f in stats.failures[:10]))
    print(f"server log: {log.name}")
    return 0 if not stats.failures and stats.lost["lockstep"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
