"""The robot client (library, CLI, example) against a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from blurtrack.clients.cli import main as client_main
from blurtrack.clients.client import BlurtrackClient, Result, ServerError
from blurtrack.engine.geometry import Box, iou
from blurtrack.models.render import render_moving_target

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frames():
    seq = render_moving_target(24, size=(320, 240), target=(40, 40), step=(4.0, 2.0), seed=5)
    return seq.frames, seq.boxes


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, frames):
    folder = tmp_path_factory.mktemp("frames")
    for i, frame in enumerate(frames[0]):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    return folder


def collect(server, frames, box, mode, fps=30.0):
    async def run():
        async with BlurtrackClient(server.url) as client:
            return [item async for item in client.track(frames, box, mode=mode, fps=fps)]

    return asyncio.run(run())


def test_lockstep_tracks_every_frame(server, frames):
    images, boxes = frames
    items = collect(server, images, boxes[0], "lockstep")
    assert [index for index, _ in items] == list(range(len(images)))
    assert all(isinstance(m, Result) and m.dropped == 0 for _, m in items)
    assert all(m.rtt_ms is not None and m.rtt_ms > 0 for _, m in items[1:])
    assert min(iou(Box(*m.box), Box(*gt)) for (_, m), gt in zip(items, boxes)) > 0.5


def test_realtime_answers_recent_frames_in_order(server, frames):
    images, boxes = frames
    items = collect(server, images, boxes[0], "realtime", fps=200.0)
    indices = [index for index, _ in items]
    assert indices == sorted(set(indices)) and indices[0] == 0
    assert indices[-1] == len(images) - 1, "the last frame is always answered"
    last = items[-1][1]
    assert last.dropped == len(images) - len(items)  # every frame is answered or counted as dropped
    for index, message in items:
        assert iou(Box(*message.box), Box(*boxes[index])) > 0.5


def test_client_reports_server_refusals(server, frames):
    async def run():
        async with BlurtrackClient(server.url) as client:
            await client.open_session(frames[0][0], "0,0,0,10")

    with pytest.raises(ServerError) as error:
        asyncio.run(run())
    assert error.value.status == 400 and error.value.code == "invalid_box"


@pytest.mark.parametrize("mode", ["lockstep", "realtime"])
def test_cli_streams_a_folder_and_writes_an_annotated_video(server, frames, image_dir, tmp_path, mode, capsys):
    out = tmp_path / "annotated.mp4"
    box = ",".join(f"{v:g}" for v in frames[1][0])
    argv = ["stream", str(image_dir), "--box", box, "--server", server.url, "--mode", mode, "--fps", "100", "--out", str(out)]
    assert client_main(argv) == 0
    printed = capsys.readouterr().out
    assert "results" in printed and "annotated video" in printed
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames[0])  # every source frame, dropped ones too
    video.release()


def test_cli_says_when_the_server_is_unreachable(image_dir, capsys):
    assert client_main(["stream", str(image_dir), "--box", "1,1,10,10", "--server", "http://127.0.0.1:9"]) == 2
    assert "blurtrack-client" in capsys.readouterr().err


def test_example_runs(server, frames, image_dir):
    box = ",".join(f"{v:g}" for v in frames[1][0])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "blurtrack.clients.example",
            str(image_dir),
            "--box",
            box,
            "--server",
            server.url,
            "--max-frames",
            "6",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("tracking") == 5


def test_cli_sends_a_jpeg_files_own_bytes(image_dir):
    """The client decoded every JPEG of a folder and re-encoded it at quality 90: the camera's
    bytes are sent as they are now (the server takes JPEG/PNG)."""
    from blurtrack.clients.client import encode_frame
    from blurtrack.clients.sources import open_source

    files = sorted(image_dir.glob("*.jpg"))
    frames = list(open_source(str(image_dir), encoded=True).frames)
    assert frames == [p.read_bytes() for p in files]
    assert encode_frame(frames[0]) == files[0].read_bytes()
