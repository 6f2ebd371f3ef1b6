"""Decompression bombs are refused on their header, before anything decodes them: every accepted
format's size is read from its header, every other format is refused, and a `blurtrack serve`
process under four concurrent bombs of each format stays within a few MB of where it was."""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from blurtrack.service.image_header import read_header

from .bombs import SIDE, bombs
from .conftest import free_port, new_session, open_session, recv_json, serve_process, ws_connect

MB = 1024 * 1024


@pytest.fixture(scope="session")
def bomb_files(request) -> dict[str, bytes]:
    return bombs(request.config.cache.mkdir("bombs"))


@pytest.mark.parametrize(
    ("ext", "params", "channels", "fmt"),
    [
        (".jpg", [], 3, "JPEG"),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], 1, "JPEG"),
        (".png", [], 3, "PNG"),
        (".png", [], 4, "PNG"),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 3, "WebP"),  # lossy: VP8
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], 3, "WebP"),  # lossless: VP8L
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 4, "WebP"),  # lossy with alpha: VP8X
        (".bmp", [], 3, "BMP"),
        (".bmp", [], 1, "BMP"),
    ],
)
def test_header_sizes_match_what_opencv_decodes(ext, params, channels, fmt):
    image = np.random.default_rng(1).integers(0, 256, (23, 37, channels), dtype=np.uint8)
    data = cv2.imencode(ext, image, params)[1].tobytes()
    header = read_header(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert header.format == fmt
    assert header.size == (decoded.shape[1], decoded.shape[0]) == (37, 23)


@pytest.mark.parametrize("ext", [".tiff", ".ppm", ".hdr", ".ras"])
def test_formats_without_a_checked_header_are_not_accepted(ext):
    image = np.zeros((8, 8, 3), np.uint8 if ext not in (".exr", ".hdr") else np.float32)
    try:
        ok, buffer = cv2.imencode(ext, image)
    except cv2.error:
        pytest.skip(f"this OpenCV cannot write {ext}")
    if not ok:
        pytest.skip(f"this OpenCV cannot write {ext}")
    header = read_header(buffer.tobytes())
    assert header.format is None and header.other is not None  # refused by name: 415 unsupported_format


def _status_of(path: str) -> dict[str, int]:
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def test_bombs_cost_a_serve_process_no_memory(test_bundle, bomb_files):
    """The issue's measurement: four concurrent session requests per format, each a bomb of
    16000x16000 pixels; peak RSS of the server process must grow by less than 300 MB."""
    process, url = serve_process(test_bundle, free_port(), "--workers", "4", "--threads", "1", "--log-level", "warning")
    try:
        status = f"/proc/{process.pid}/status"
        with open(f"/proc/{process.pid}/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current RSS
        before = _status_of(status)

        def post(fmt: str) -> httpx.Response:
            files = {"frame": (f"bomb.{fmt}", bomb_files[fmt], "application/octet-stream")}
            return httpx.post(f"{url}/v1/sessions", files=files, data={"box": "10,10,50,50"}, timeout=120)

        replies = {}
        with ThreadPoolExecutor(4) as pool:
            for fmt in bomb_files:
                replies[fmt] = list(pool.map(post, [fmt] * 4))
        after = _status_of(status)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)

    growth = after["VmHWM"] - before["VmRSS"]
    assert growth < 300 * MB, f"peak RSS grew by {growth / MB:.0f} MB under the bombs"
    for fmt, responses in replies.items():
        for response in responses:
            expected = (415, "unsupported_format") if fmt == "tiff" else (413, "frame_too_large")
            assert (response.status_code, response.json()["code"]) == expected, (fmt, response.text)
            if fmt != "tiff":
                assert f"{SIDE}x{SIDE}" in response.json()["detail"]


def test_bombs_on_the_stream_get_errors_and_the_stream_goes_on(server, sequence, bomb_files):
    session_id = new_session(server, sequence)

    async def stream():
        replies = []
        async with ws_connect(server, session_id) as ws:
            for data in [*bomb_files.values(), sequence.jpegs[1]]:
                await ws.send(data)
                replies.append(await recv_json(ws))
        return replies

    replies = asyncio.run(stream())
    codes = [(r["type"], r.get("code"), r["seq"]) for r in replies]
    expected = [
        ("error", "unsupported_format" if fmt == "tiff" else "frame_too_large", i + 1) for i, fmt in enumerate(bomb_files)
    ]
    assert codes == [*expected, ("result", None, len(bomb_files) + 1)]


def _many_segments_jpeg() -> bytes:
    """A valid 320x240 JPEG with 5000 empty comment segments before its frame header."""
    jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
    return jpeg[:2] + b"\xff\xfe\x00\x02" * 5000 + jpeg[2:]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (_many_segments_jpeg(), 400, "invalid_frame"),  # a slow header scan on the event loop: refused
        # a WebP that only declares its 16000x16000 canvas: refused on the header, not "could not decode"
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00" + (15999).to_bytes(3, "little") * 2,
            413,
            "frame_too_large",
        ),
        (b"GIF89a" + bytes(20), 415, "unsupported_format"),
        (b"II*\x00" + bytes(20), 415, "unsupported_format"),
        (b"not an image at all", 400, "invalid_frame"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 400, "invalid_frame"),  # header cut short
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + bytes(8) + bytes(9), 400, "invalid_frame"),  # 0x0 pixels
    ],
)
def test_headers_are_checked_before_the_worker(server, sequence, data, status, code):
    response = open_session(server, data, sequence.first_box)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert len(response.text) < 500
