"""A lost stream is never a normal end: without --reconnect the client exits non-zero and says
how many frames went unanswered and unsent; with it, the client opens a new session from the last
frame and box it got (bounded tries, growing pauses), says so, and goes on: in lockstep mode no
frame is left without a box across a server restart."""

from __future__ import annotations

import asyncio
import threading
import time

import cv2
import pytest

from blurtrack.clients.cli import main as client_main
from blurtrack.clients.client import BlurtrackClient, Reconnected, Result, StreamLost
from blurtrack.models.render import render_moving_target
from blurtrack.service.server import BackgroundServer

from .conftest import metric_samples, settings_for

N_FRAMES = 150


@pytest.fixture(scope="module")
def clip():
    seq = render_moving_target(N_FRAMES, size=(320, 240), target=(40, 40), step=(0.6, 0.3), seed=11)
    return seq.frames, seq.boxes


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, clip):
    folder = tmp_path_factory.mktemp("clip")
    for i, frame in enumerate(clip[0]):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    return folder


def _box(clip) -> str:
    return ",".join(f"{v:g}" for v in clip[1][0])


def _wait_for_frames(server: BackgroundServer, n: int) -> None:
    deadline = time.monotonic() + 60
    while not any(s.frames_processed >= n for s in server.app.state.service.registry.all()):
        assert time.monotonic() < deadline, "the client never streamed"
        time.sleep(0.02)


def _run_cli(argv: list[str]) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(client_main(argv)), daemon=True)
    thread.start()
    return thread, code


def test_cli_without_reconnect_reports_a_lost_stream(test_bundle, clip, clip_dir, capsys):
    """The server shuts down mid-stream: the realtime client said "N results" and exited 0."""
    server = BackgroundServer(settings_for(test_bundle)).start()
    thread, code = _run_cli(
        ["stream", str(clip_dir), "--box", _box(clip), "--server", server.url, "--mode", "realtime", "--fps", "30", "--quiet"]
    )
    _wait_for_frames(server, 5)
    server.stop()
    thread.join(60)
    err = capsys.readouterr().err
    assert code == [3], err
    assert "the stream was lost" in err and "code 1001 (session_shutdown)" in err
    assert "frames left unsent" in err and "--reconnect" in err
    left = int(err.split(" frames left unsent")[0].rsplit(" ", 1)[-1])
    assert 0 < left < N_FRAMES


def test_cli_with_reconnect_resumes_after_a_restart(test_bundle, clip, clip_dir, capsys):
    first = BackgroundServer(settings_for(test_bundle)).start()
    port = first.port
    thread, code = _run_cli(
        [
            "stream",
            str(clip_dir),
            "--box",
            _box(clip),
            "--server",
            first.url,
            "--mode",
            "realtime",
            "--fps",
            "30",
            "--reconnect",
            "8",
        ]
    )
    _wait_for_frames(first, 5)
    first.stop()
    second = BackgroundServer(settings_for(test_bundle), port=port).start()  # the same address, a fresh process state
    try:
        thread.join(120)
        captured = capsys.readouterr()
        assert code == [0], captured.err
        assert "reconnected (try" in captured.err and "new session" in captured.err
        assert "1 reconnects" in captured.out
        assert f"frame {N_FRAMES - 1:5d}" in captured.out, "the last frame was tracked on the new server"
        assert metric_samples(second)["blurtrack_sessions_created_total"] == 1  # the one reopened session
    finally:
        second.stop()


def test_lockstep_library_loses_no_frame_across_a_restart(test_bundle, clip):
    frames, boxes = clip
    frames = frames[:40]
    first = BackgroundServer(settings_for(test_bundle)).start()
    servers = [first]

    def restart() -> None:
        first.stop()
        servers.append(BackgroundServer(settings_for(test_bundle), port=first.port).start())

    async def run():
        items = []
        async with BlurtrackClient(first.url) as client:
            async for index, message in client.track(frames, boxes[0], mode="lockstep", reconnect=8, backoff_s=0.2):
                items.append((index, message))
                if index == 10 and isinstance(message, Result) and len(servers) == 1:
                    await asyncio.to_thread(restart)  # the stream is idle and open when the server goes
        return items

    try:
        items = asyncio.run(run())
    finally:
        servers[-1].stop()
    reconnects = [m for _, m in items if isinstance(m, Reconnected)]
    assert len(reconnects) == 1 and reconnects[0].from_index == 10
    assert reconnects[0].box == items[10][1].box and "1001" in reconnects[0].reason
    answered = {index for index, m in items if isinstance(m, Result)}
    assert answered == set(range(len(frames))), f"frames without a box: {sorted(set(range(len(frames))) - answered)}"


def test_lockstep_library_without_reconnect_raises(test_bundle, clip):
    server = BackgroundServer(settings_for(test_bundle)).start()

    async def run():
        async with BlurtrackClient(server.url) as client:
            async for index, _ in client.track(clip[0][:20], clip[1][0], mode="lockstep"):
                if index == 5:
                    await asyncio.to_thread(server.stop)

    with pytest.raises(StreamLost) as lost:
        asyncio.run(run())
    assert lost.value.close_code == 1001 and lost.value.last_answered == 5 and lost.value.frames_read == 7
