"""What the live page reads, over a real server: the opt-in preview (off by default, downscaled,
rate-limited, switching itself off), the per-session history, the demo sequences, the page and
its static files, and the API key on all of it."""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from blurtrack.models.render import render_moving_target

from .conftest import new_session, recv_json, render_sequence, ws_connect

PREVIEW_MAX_FPS = 2.0
PREVIEW_MAX_SIDE = 160  # frames are 320x240: previews are 160x120


def write_otb_sequence(root: Path, name: str, n_frames: int, seed: int, step=(4.0, 2.0)) -> tuple[Path, np.ndarray]:
    """A rendered sequence in OTB layout: <root>/<name>/img/0001.jpg ... + groundtruth_rect.txt
    (boxes as rendered, 0-based; the demo passes the file's boxes through unchanged)."""
    rendered = render_moving_target(n_frames, size=(320, 240), target=(40, 40), step=step, seed=seed)
    image_dir = root / name / "img"
    image_dir.mkdir(parents=True)
    for i, frame in enumerate(rendered.frames, start=1):
        cv2.imwrite(str(image_dir / f"{i:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    lines = [",".join(f"{v:g}" for v in box) for box in rendered.boxes]
    (root / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return root / name, rendered.boxes


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_otb_sequence(root, "square", n_frames=12, seed=21)
    write_otb_sequence(root, "nested/second", n_frames=6, seed=22, step=(-3.0, 2.0))
    return root


@pytest.fixture(scope="module")
def live_server(start_server, demo_dir):
    with start_server(demo_dir=demo_dir, preview_max_fps=PREVIEW_MAX_FPS, preview_max_side=PREVIEW_MAX_SIDE) as server:
        yield server


def stream_keep_session(server, session_id: str, jpegs: list[bytes], headers=None) -> list[dict]:
    """Lockstep stream that then disconnects without `close`, so the session (and its preview and
    history) stays for inspection."""

    async def run():
        messages = []
        async with ws_connect(server, session_id, headers=headers) as ws:
            for jpeg in jpegs:
                await ws.send(jpeg)
                messages.append(await recv_json(ws))
        return messages

    return asyncio.run(run())


def preview_status(server, session_id: str, headers=None) -> dict:
    response = httpx.get(f"{server.url}/v1/sessions/{session_id}/preview", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_preview_of(server, session_id: str, seq: int, headers=None) -> dict:
    """Wait until the preview shows frame `seq` (the newest frame is always encoded in the end)."""
    deadline = time.monotonic() + 20
    while (status := preview_status(server, session_id, headers))["latest"] is None or status["latest"]["seq"] != seq:
        assert time.monotonic() < deadline, f"frame {seq} never reached the preview: {status}"
        time.sleep(0.05)
    return status


# -- preview ----------------------------------------------------------------------------------


def test_preview_is_off_by_default_and_costs_nothing(live_server, sequence):
    session_id = new_session(live_server, sequence)
    results = stream_keep_session(live_server, session_id, sequence.jpegs[1:6])
    assert [r["type"] for r in results] == ["result"] * 5

    status = preview_status(live_server, session_id)
    assert status["enabled"] is False
    assert status["frames_encoded"] == 0, "no frame may be encoded while nobody watches"
    assert status["latest"] is None
    image = httpx.get(f"{live_server.url}/v1/sessions/{session_id}/preview.jpg")
    assert image.status_code == 409 and image.json()["code"] == "preview_off"
    assert '{"enabled": true}' in image.json()["detail"]
    assert httpx.get(f"{live_server.url}/v1/sessions/{session_id}").json()["preview"] is False


def test_preview_on_gives_a_downscaled_jpeg_of_a_processed_frame(live_server, sequence):
    session_id = new_session(live_server, sequence)
    response = httpx.put(f"{live_server.url}/v1/sessions/{session_id}/preview", json={"enabled": True})
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is True and response.json()["max_side"] == PREVIEW_MAX_SIDE
    missing = httpx.get(f"{live_server.url}/v1/sessions/{session_id}/preview.jpg")
    assert missing.status_code == 404 and missing.json()["code"] == "no_preview"

    results = stream_keep_session(live_server, session_id, sequence.jpegs[1:4])
    status = wait_for_preview_of(live_server, session_id, seq=3)  # the last frame sent
    latest = status["latest"]
    by_seq = {r["seq"]: r for r in results}
    assert latest["seq"] in by_seq
    assert (latest["width"], latest["height"], latest["frame_width"], latest["frame_height"]) == (160, 120, 320, 240)
    assert latest["scale"] == pytest.approx(0.5)
    np.testing.assert_allclose(latest["box"], by_seq[latest["seq"]]["box"], atol=1e-6)
    np.testing.assert_allclose(latest["preview_box"], np.array(latest["box"]) * 0.5, atol=1e-6)
    assert latest["state"] == by_seq[latest["seq"]]["state"]

    image = httpx.get(f"{live_server.url}/v1/sessions/{session_id}/preview.jpg")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (120, 160, 3), "the JPEG is the downscaled frame"
    assert int(image.headers["x-preview-seq"]) == latest["seq"]
    np.testing.assert_allclose([float(v) for v in image.headers["x-preview-box"].split(",")], latest["box"], atol=1e-3)
    assert image.headers["x-preview-frame-size"] == "320x240"
    assert image.headers["x-preview-state"] == latest["state"]
    # It is that frame: the preview matches the sent frame shrunk, not another one.
    sent = cv2.imdecode(np.frombuffer(sequence.jpegs[latest["seq"]], np.uint8), cv2.IMREAD_COLOR)
    shrunk = cv2.resize(sent, (160, 120), interpolation=cv2.INTER_AREA).astype(float)
    other = cv2.resize(
        cv2.imdecode(np.frombuffer(sequence.jpegs[latest["seq"] + 3], np.uint8), cv2.IMREAD_COLOR),
        (160, 120),
        interpolation=cv2.INTER_AREA,
    ).astype(float)
    assert np.abs(decoded - shrunk).mean() < 0.5 * np.abs(decoded - other).mean()
    assert httpx.get(f"{live_server.url}/v1/sessions/{session_id}").json()["preview"] is True

    # turning it off frees the image
    off = httpx.put(f"{live_server.url}/v1/sessions/{session_id}/preview", json={"enabled": False}).json()
    assert off["enabled"] is False and off["latest"] is None
    assert httpx.get(f"{live_server.url}/v1/sessions/{session_id}/preview.jpg").status_code == 409


def test_preview_rate_limit_is_respected(live_server):
    seq = render_sequence(seed=31, n_frames=41, step=(3.0, 2.0))
    session_id = new_session(live_server, seq)
    started = time.monotonic()
    assert httpx.put(f"{live_server.url}/v1/sessions/{session_id}/preview", json={"enabled": True}).status_code == 200
    stream_keep_session(live_server, session_id, seq.jpegs[1:])
    # The newest frame is kept and encoded once the limit allows: the stream's last frame shows up.
    status = wait_for_preview_of(live_server, session_id, seq=40)
    elapsed = time.monotonic() - started
    encoded = status["frames_encoded"]
    # at most one at once, then one per 1/max_fps seconds
    assert 2 <= encoded <= 1 + math.floor(elapsed * PREVIEW_MAX_FPS), (encoded, elapsed)
    assert encoded < 40 or elapsed * PREVIEW_MAX_FPS >= 39  # (the bound bites unless 40 frames took 20 s)


def test_preview_body_is_validated(live_server, sequence):
    session_id = new_session(live_server, sequence)
    for body in ({"enabled": "maybe"}, {"enable": True}, {}):
        response = httpx.put(f"{live_server.url}/v1/sessions/{session_id}/preview", json=body)
        assert response.status_code == 422 and response.json()["code"] == "invalid_request", response.text
        assert "POST /v1/sessions" not in response.json()["detail"]
    for path in ("preview", "preview.jpg", "history"):
        response = httpx.get(f"{live_server.url}/v1/sessions/no-such-session/{path}")
        assert response.status_code == 404 and response.json()["code"] == "unknown_session"
    assert httpx.put(f"{live_server.url}/v1/sessions/nope/preview", json={"enabled": True}).status_code == 404


# -- history ----------------------------------------------------------------------------------


def test_history_holds_each_processed_frame(live_server, sequence):
    session_id = new_session(live_server, sequence)
    results = stream_keep_session(live_server, session_id, sequence.jpegs[1:])
    history = httpx.get(f"{live_server.url}/v1/sessions/{session_id}/history").json()
    n = len(results)
    assert history["window_s"] == 60
    assert history["seq"] == [r["seq"] for r in results] == list(range(1, n + 1))
    np.testing.assert_allclose(history["latency_ms"], [r["latency_ms"]["total"] for r in results], atol=2e-3)
    np.testing.assert_allclose(history["score"], [r["score"] for r in results], atol=1e-4)
    assert history["state"] == [r["state"] for r in results]
    assert all(-60 <= t <= 0 for t in history["t"]) and history["t"] == sorted(history["t"])

    info = httpx.get(f"{live_server.url}/v1/sessions/{session_id}").json()
    assert info["fps"] > 0
    assert info["latency_ms"] == pytest.approx(results[-1]["latency_ms"]["total"], abs=2e-3)


def test_history_window_and_preview_idle_switch_off(start_server, sequence):
    with start_server(history_s=0.5, preview_idle_off_s=0.3, expiry_check_s=0.1) as server:
        session_id = new_session(server, sequence)
        stream_keep_session(server, session_id, sequence.jpegs[1:3])
        assert len(httpx.get(f"{server.url}/v1/sessions/{session_id}/history").json()["seq"]) == 2
        httpx.put(f"{server.url}/v1/sessions/{session_id}/preview", json={"enabled": True})
        time.sleep(0.7)  # longer than both the window and the preview's idle switch-off
        assert httpx.get(f"{server.url}/v1/sessions/{session_id}/history").json()["seq"] == []
        assert httpx.get(f"{server.url}/v1/sessions/{session_id}").json()["fps"] == 0
        # nobody fetched the preview: the next frame is not encoded and the preview is off
        stream_keep_session(server, session_id, sequence.jpegs[3:4])
        status = preview_status(server, session_id)
        assert status["enabled"] is False and status["frames_encoded"] == 0


# -- demo -------------------------------------------------------------------------------------


def test_demo_sequences_are_listed_and_served(live_server, demo_dir):
    listing = httpx.get(f"{live_server.url}/v1/demo/sequences").json()
    assert listing["enabled"] is True
    by_name = {s["name"]: s for s in listing["sequences"]}
    assert set(by_name) == {"square", "nested/second"}
    assert (by_name["square"]["frames"], by_name["square"]["width"], by_name["square"]["height"]) == (12, 320, 240)
    first_line = (demo_dir / "square" / "groundtruth_rect.txt").read_text().splitlines()[0]
    assert by_name["square"]["first_box"] == [float(v) for v in first_line.split(",")]

    for name, index, file in (("square", 0, "0001.jpg"), ("square", 11, "0012.jpg"), ("nested/second", 2, "0003.jpg")):
        response = httpx.get(f"{live_server.url}/v1/demo/sequences/{name}/frames/{index}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        assert response.content == (demo_dir / name / "img" / file).read_bytes()

    for path, code in (
        ("square/frames/12", "unknown_frame"),
        ("square/frames/-1", "unknown_frame"),
        ("nope/frames/0", "unknown_sequence"),
        ("..%2F..%2Fetc/frames/0", "unknown_sequence"),
    ):
        response = httpx.get(f"{live_server.url}/v1/demo/sequences/{path}")
        assert response.status_code == 404 and response.json()["code"] == code, (path, response.text)


def test_demo_sequence_runs_through_a_session(live_server, demo_dir):
    """What the page does, in Python: first frame + first box from the demo endpoints, then the rest."""
    listing = {s["name"]: s for s in httpx.get(f"{live_server.url}/v1/demo/sequences").json()["sequences"]}
    square = listing["square"]
    frames = [httpx.get(f"{live_server.url}/v1/demo/sequences/square/frames/{i}").content for i in range(square["frames"])]
    created = httpx.post(
        f"{live_server.url}/v1/sessions",
        files={"frame": ("f.jpg", frames[0], "image/jpeg")},
        data={"box": ",".join(str(v) for v in square["first_box"])},
    )
    assert created.status_code == 201, created.text
    results = stream_keep_session(live_server, created.json()["session_id"], frames[1:])
    gt = np.loadtxt(demo_dir / "square" / "groundtruth_rect.txt", delimiter=",")
    from blurtrack.engine.geometry import Box, iou

    assert min(iou(Box(*r["box"]), Box(*gt[r["seq"]])) for r in results) > 0.5


# -- the page, and the API key ------------------------------------------------------------------


def test_page_and_static_files_are_served(live_server):
    page = httpx.get(f"{live_server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and "/static/style.css" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    paths = httpx.get(f"{live_server.url}/openapi.json").json()["paths"]
    for path in (
        "/v1/sessions/{session_id}/preview",
        "/v1/sessions/{session_id}/preview.jpg",
        "/v1/sessions/{session_id}/history",
        "/v1/demo/sequences",
        "/v1/demo/sequences/{name}/frames/{index}",
    ):
        assert path in paths, f"{path} is missing from the OpenAPI schema"
    assert "/" not in paths  # the page is not an API route
    for path, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        response = httpx.get(f"{live_server.url}{path}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "http://" not in response.text and "https://" not in response.text, f"{path} must load nothing from elsewhere"


def test_api_key_is_required_on_live_routes(start_server, sequence):
    key = "live-view-key"
    bearer = {"Authorization": f"Bearer {key}"}
    with start_server(api_key=key) as server:
        session_id = new_session(server, sequence, headers=bearer)
        calls = [
            ("GET", "/v1/demo/sequences", None),
            ("GET", "/v1/demo/sequences/x/frames/0", None),
            ("PUT", f"/v1/sessions/{session_id}/preview", {"enabled": True}),
            ("GET", f"/v1/sessions/{session_id}/preview", None),
            ("GET", f"/v1/sessions/{session_id}/preview.jpg", None),
            ("GET", f"/v1/sessions/{session_id}/history", None),
        ]
        for method, path, body in calls:
            for headers in (None, {"Authorization": "Bearer wrong"}):
                response = httpx.request(method, f"{server.url}{path}", json=body, headers=headers)
                assert response.status_code == 401 and response.json()["code"] == "unauthorized", (method, path)
        # with the key: through (the preview image is 404 until a frame is streamed)
        statuses = [httpx.request(m, f"{server.url}{p}", json=b, headers=bearer).status_code for m, p, b in calls]
        assert statuses == [200, 404, 200, 200, 404, 200]
        stream_keep_session(server, session_id, sequence.jpegs[1:3], headers=bearer)
        wait_for_preview_of(server, session_id, seq=2, headers=bearer)
        assert httpx.get(f"{server.url}/v1/sessions/{session_id}/preview.jpg", headers=bearer).status_code == 200
        # without a demo folder the list says how to enable it
        listing = httpx.get(f"{server.url}/v1/demo/sequences", headers=bearer).json()
        assert listing == {"enabled": False, "hint": listing["hint"], "sequences": []}
        assert "--demo-dir" in listing["hint"] and "BLURTRACK_DEMO_DIR" in listing["hint"]
        # the page itself holds no secret: it loads without the key and then asks for it
        assert httpx.get(f"{server.url}/").status_code == 200
        assert httpx.get(f"{server.url}/static/app.js").status_code == 200


def test_websocket_token_is_masked_in_the_server_log(start_server, sequence):
    """The page sends the key as ?token= (browsers cannot set WebSocket headers); uvicorn logs
    WebSocket paths with their query, so the key must be masked there."""
    key = "do-not-log-me"
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect()
    with start_server(api_key=key, log_level="info") as server:
        logging.getLogger("uvicorn.error").addHandler(handler)
        try:
            session_id = new_session(server, sequence, headers={"Authorization": f"Bearer {key}"})
            messages = asyncio.run(_one_frame(server, session_id, f"?token={key}", sequence.jpegs[1]))
        finally:
            logging.getLogger("uvicorn.error").removeHandler(handler)
    assert messages["type"] == "result"
    lines = [r for r in records if "WebSocket" in r]
    assert lines and all("token=***" in line for line in lines), lines
    assert not any(key in r for r in records)


async def _one_frame(server, session_id: str, query: str, jpeg: bytes) -> dict:
    async with ws_connect(server, session_id, query) as ws:
        await ws.send(jpeg)
        return await recv_json(ws)


def test_serve_refuses_a_demo_dir_without_sequences(tmp_path, test_bundle):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "blurtrack",
            "serve",
            "--bundle",
            str(test_bundle),
            "--backend",
            "onnxruntime",
            "--demo-dir",
            str(tmp_path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no OTB sequences" in done.stderr and "groundtruth_rect.txt" in done.stderr, done.stderr


def test_api_docs_load_nothing_from_elsewhere(server):
    """/docs was blank without internet: Swagger UI came from a CDN. Its assets are served here."""
    import re

    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{server.url}{page}").text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert assets, html
        for url in assets:
            assert not url.startswith(("http://", "https://", "//")), f"{page} loads {url} from elsewhere"
            assert httpx.get(f"{server.url}{url}").status_code == 200, url
