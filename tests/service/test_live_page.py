"""The live view page in a real headless Chromium (the system's, driven by Playwright) against a
real server on loopback: the API key form, the demo run through a real session, the box drawn
where the service says it is (read back from a screenshot's pixels), the chart, the session list."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from blurtrack.engine.geometry import Box, iou
from blurtrack.models.render import render_moving_target

from .conftest import JpegSequence, new_session
from .test_live_api import wait_for_preview_of, write_otb_sequence

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
if not CHROMIUM.exists():
    pytest.skip(
        f"no system Chromium at {CHROMIUM}: install it with `apt-get install -y chromium chromium-driver` (.ci/run does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the `playwright` package (dev extra)")

# The page's colours (service/static/app.js), RGB.
BOX_RGB = {"tracking": (0, 210, 90), "lost": (255, 59, 48)}
LATENCY_RGB = (78, 161, 255)
SCORE_RGB = (245, 179, 1)
API_KEY = "page-test-key"
N_FRAMES = 48


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.errors = []  # uncaught exceptions in the page's script
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("demo")
    write_otb_sequence(root, "another", n_frames=8, seed=40)
    _, boxes = write_otb_sequence(root, "square", n_frames=N_FRAMES, seed=41, step=(4.0, 3.0))
    return root, boxes


def view(page) -> dict:
    return page.evaluate("window.blurtrackView")


def wait_until(page, predicate: str, arg=None, timeout_s: float = 60) -> None:
    """Wait for a JS predicate (a function: the page's CSP forbids evaluating plain strings)."""
    page.wait_for_function(predicate, arg=arg, timeout=timeout_s * 1000)


def close_to(pixel_bgr: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 45) -> bool:
    return int(np.abs(pixel_bgr.astype(int) - np.array(rgb[::-1])).max()) <= tolerance


def colour_near(image: np.ndarray, x: float, y: float, rgb, along: str, reach: int = 3) -> bool:
    """Whether `rgb` is within `reach` pixels of (x, y), looking across a line (along 'x' or 'y')."""
    cx, cy = int(round(x)), int(round(y))
    for d in range(-reach, reach + 1):
        px, py = (cx + d, cy) if along == "x" else (cx, cy + d)
        if 0 <= py < image.shape[0] and 0 <= px < image.shape[1] and close_to(image[py, px], rgb):
            return True
    return False


def check_box_drawn(image: np.ndarray, box_px: tuple[float, float, float, float], rgb) -> None:
    """The box outline is at box_px (screenshot pixels): its colour on all four edges, and not a
    few pixels inside or outside them."""
    x, y, w, h = box_px
    for f in (0.2, 0.5, 0.8):
        assert colour_near(image, x, y + f * h, rgb, "x"), f"left edge missing at {f:.0%}"
        assert colour_near(image, x + w, y + f * h, rgb, "x"), f"right edge missing at {f:.0%}"
        assert colour_near(image, x + f * w, y, rgb, "y"), f"top edge missing at {f:.0%}"
        assert colour_near(image, x + f * w, y + h, rgb, "y"), f"bottom edge missing at {f:.0%}"
    for off in (-8, 8):  # outside and inside each edge, at its middle
        assert not colour_near(image, x + off, y + h / 2, rgb, "x", reach=1), f"box colour {off} px off the left edge"
        assert not colour_near(image, x + w + off, y + h / 2, rgb, "x", reach=1), f"box colour {off} px off the right edge"
        assert not colour_near(image, x + w / 2, y + off, rgb, "y", reach=1), f"box colour {off} px off the top edge"
        assert not colour_near(image, x + w / 2, y + h + off, rgb, "y", reach=1), f"box colour {off} px off the bottom edge"


def element_rect(page, selector: str) -> dict:
    return page.eval_on_selector(
        selector, "e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; }"
    )


def test_demo_in_the_browser_with_the_api_key(start_server, demo_dir, page, tmp_path):
    root, gt = demo_dir
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    with start_server(api_key=API_KEY, demo_dir=root, preview_max_fps=5, idle_timeout_s=300) as server:
        page.goto(f"{server.url}/")
        # the page asks for the key, refuses a wrong one, then takes the right one
        page.wait_for_selector("#key-form", state="visible")
        page.fill("#key-input", "wrong-key")
        page.click("#key-form button[type=submit]")
        wait_until(page, "() => document.getElementById('key-error').textContent.includes('refused')")
        assert page.is_visible("#key-form")
        page.fill("#key-input", API_KEY)
        page.click("#key-form button[type=submit]")
        wait_until(page, "() => document.querySelectorAll('#demo-sequence option').length === 2")
        assert page.is_hidden("#key-form")
        assert page.evaluate("sessionStorage.getItem('blurtrack.apiKey')") == API_KEY

        # pick the sequence and run the demo: the page streams it through a real session
        page.select_option("#demo-sequence", label=f"square ({N_FRAMES} frames)")
        page.click("#demo-run")
        wait_until(
            page,
            "() => { const v = window.blurtrackView; return v.demo.status === 'finished' && v.canvasBox !== null && v.chart.samples >= 2; }",
            timeout_s=120,
        )
        session_id = view(page)["demo"]["session"]
        info = httpx.get(f"{server.url}/v1/sessions/{session_id}", headers=bearer).json()
        assert (info["frames_received"], info["frames_processed"], info["frames_dropped"]) == (N_FRAMES - 1,) * 2 + (0,)

        # what the service says the preview shows (the last frame, in the end); the page shows it too
        latest = wait_for_preview_of(server, session_id, seq=N_FRAMES - 1, headers=bearer)["latest"]
        wait_until(page, "(seq) => window.blurtrackView.seq === seq", arg=latest["seq"], timeout_s=20)
        wait_until(
            page,
            "([sid, n]) => { const row = document.querySelector(`tr[data-session='${sid}']`); return row && row.cells[2].textContent === `${n} / 0`; }",
            arg=[session_id, N_FRAMES - 1],
        )
        shot = tmp_path / "live-view-demo.png"
        page.screenshot(path=str(shot))
        image = cv2.imread(str(shot), cv2.IMREAD_COLOR)

        # the box drawn is the service's box for that frame, scaled to the canvas on screen
        frame = element_rect(page, "#frame")
        assert frame["x"] >= 0 and frame["y"] >= 0 and frame["x"] + frame["w"] <= 1280 and frame["y"] + frame["h"] <= 900
        sx, sy = frame["w"] / latest["frame_width"], frame["h"] / latest["frame_height"]
        bx, by, bw, bh = latest["box"]
        box_px = (frame["x"] + bx * sx, frame["y"] + by * sy, bw * sx, bh * sy)
        check_box_drawn(image, box_px, BOX_RGB[latest["state"]])
        shown = view(page)
        np.testing.assert_allclose(shown["frameBox"], latest["box"], atol=1e-2)
        assert shown["state"] == latest["state"] == "tracking"
        # and that box is on the target: the demo sent the sequence's frames in order, boxes as in the file
        assert iou(Box(*latest["box"]), Box(*gt[latest["seq"]])) > 0.5

        # the chart drew latency and score lines
        chart = element_rect(page, "#chart")
        x0, y0 = int(chart["x"]), int(chart["y"])
        plot = image[y0 : y0 + int(chart["h"]), x0 : x0 + int(chart["w"])]
        for name, rgb in (("latency", LATENCY_RGB), ("score", SCORE_RGB)):
            count = int(np.all(np.abs(plot.astype(int) - np.array(rgb[::-1])) <= 40, axis=2).sum())
            assert count >= 15, f"the {name} line is missing from the chart ({count} pixels)"
        assert page.inner_text("#view-state") == "tracking"

        # ending the demo session from the page ends it on the server
        page.click("#demo-end")
        wait_until(page, "() => window.blurtrackView.ended === true", timeout_s=20)
        assert httpx.get(f"{server.url}/v1/sessions/{session_id}", headers=bearer).status_code == 404
    assert page.errors == []


def test_page_without_key_or_demo_watches_a_robot_session(start_server, page, tmp_path):
    with start_server(preview_max_fps=5) as server:
        page.goto(f"{server.url}/")
        wait_until(page, "() => window.blurtrackView.ready === true")
        assert page.is_hidden("#key-form")
        demo_off = page.inner_text("#demo-off")
        assert page.is_visible("#demo-off") and "--demo-dir" in demo_off and "BLURTRACK_DEMO_DIR" in demo_off
        assert page.is_visible("#sessions-empty")

        # a robot streams over its own WebSocket: the target leaves the view half-way, so the
        # tracker ends up lost; the page picks the session up and shows it
        rendered = render_moving_target(40, size=(320, 240), target=(40, 40), step=(3.0, 2.0), seed=50, leave_after=20)
        jpegs = [cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for frame in rendered.frames]
        session_id = new_session(server, JpegSequence(jpegs, rendered.boxes))
        wait_until(page, "(sid) => window.blurtrackView.session === sid", arg=session_id, timeout_s=20)
        # (Playwright's sync API runs an event loop in this thread: the robot uses the sync client)
        with connect(f"{server.ws_url}/v1/sessions/{session_id}/stream", open_timeout=30) as ws:
            for jpeg in jpegs[1:]:
                ws.send(jpeg)
                assert json.loads(ws.recv(timeout=30))["type"] == "result"
                time.sleep(0.04)
        latest = wait_for_preview_of(server, session_id, seq=len(jpegs) - 1)["latest"]
        assert latest["state"] == "lost"
        wait_until(page, "(seq) => window.blurtrackView.seq === seq", arg=latest["seq"], timeout_s=20)
        wait_until(
            page, "(sid) => document.querySelector(`tr[data-session='${sid}'] td.state`)?.textContent === 'lost'", arg=session_id
        )
        shot = tmp_path / "live-view-robot-lost.png"
        page.screenshot(path=str(shot))
        image = cv2.imread(str(shot), cv2.IMREAD_COLOR)

        frame = element_rect(page, "#frame")
        sx, sy = frame["w"] / latest["frame_width"], frame["h"] / latest["frame_height"]
        bx, by, bw, bh = latest["box"]
        check_box_drawn(image, (frame["x"] + bx * sx, frame["y"] + by * sy, bw * sx, bh * sy), BOX_RGB["lost"])
        assert page.inner_text("#view-state") == "lost"
        assert page.inner_text("#view-id") == session_id[:8]
        assert page.is_hidden("#sessions-empty")
        assert httpx.get(f"{server.url}/v1/sessions/{session_id}").json()["preview"] is True  # the page turned it on
    assert page.errors == []
