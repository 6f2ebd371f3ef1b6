"""A real server on loopback (uvicorn in a thread, the real app, the real test bundle on ONNX
Runtime) and small helpers to talk to it with httpx and a real `websockets` client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import httpx
import numpy as np
import pytest
import websockets

from blurtrack.models.render import render_moving_target
from blurtrack.service.config import ServiceSettings
from blurtrack.service.server import BackgroundServer


@dataclass
class JpegSequence:
    jpegs: list[bytes]
    boxes: np.ndarray  # ground truth x, y, w, h per frame

    @property
    def first_box(self) -> str:
        return ",".join(f"{v:g}" for v in self.boxes[0])


def render_sequence(seed: int = 0, n_frames: int = 8, step: tuple[float, float] = (4.0, 2.0), start=None) -> JpegSequence:
    """A bright textured square moving over a dark noisy background, 320x240, JPEG-encoded."""
    seq = render_moving_target(n_frames, size=(320, 240), target=(40, 40), step=step, start=start, seed=seed)
    jpegs = [cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for frame in seq.frames]
    return JpegSequence(jpegs, seq.boxes)


@pytest.fixture(scope="session")
def sequence() -> JpegSequence:
    return render_sequence(seed=3, n_frames=10, step=(5.0, 3.0))


def settings_for(bundle, **overrides) -> ServiceSettings:
    values = {"bundle": str(bundle), "backend": "onnxruntime", "threads": 1, "workers": 2, "log_level": "warning"}
    values.update(overrides)
    return ServiceSettings(**values)


@pytest.fixture(scope="session")
def start_server(test_bundle):
    """Factory: `with start_server(max_sessions=2) as server:` runs a server with those settings."""

    @contextlib.contextmanager
    def start(**overrides) -> Iterator[BackgroundServer]:
        overrides.setdefault("bundle", test_bundle)
        with BackgroundServer(settings_for(**overrides)) as server:
            yield server

    return start


@pytest.fixture(scope="module")
def server(start_server) -> Iterator[BackgroundServer]:
    """One shared server per test module, with the default limits."""
    with start_server(max_sessions=32) as srv:
        yield srv


def open_session(server: BackgroundServer, jpeg: bytes, box: str, *, headers=None, options=None) -> httpx.Response:
    data = {"box": box}
    if options is not None:
        data["options"] = options if isinstance(options, str) else json.dumps(options)
    return httpx.post(
        f"{server.url}/v1/sessions", files={"frame": ("frame.jpg", jpeg, "image/jpeg")}, data=data, headers=headers, timeout=30
    )


def new_session(server: BackgroundServer, seq: JpegSequence, **kwargs) -> str:
    response = open_session(server, seq.jpegs[0], seq.first_box, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


def ws_connect(server: BackgroundServer, session_id: str, query: str = "", headers=None):
    return websockets.connect(
        f"{server.ws_url}/v1/sessions/{session_id}/stream{query}", additional_headers=headers, open_timeout=30
    )


async def recv_json(ws, timeout: float = 30.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def stream_lockstep(server: BackgroundServer, session_id: str, jpegs: list[bytes]) -> list[dict]:
    """Send each frame and wait for its answer; then close the stream."""
    messages = []
    async with ws_connect(server, session_id) as ws:
        for jpeg in jpegs:
            await ws.send(jpeg)
            messages.append(await recv_json(ws))
        await ws.send(json.dumps({"type": "close"}))
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)
    return messages


def metric_samples(server: BackgroundServer, headers=None) -> dict[str, float]:
    """/metrics parsed by prometheus_client's own text parser: {sample name{labels}: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_process(bundle, port: int, *flags: str, env=None) -> tuple[subprocess.Popen, str]:
    """`blurtrack serve` as a user starts it (ONNX Runtime), once /readyz answers 200; returns the
    process (output in its stdout) and its base URL."""
    command = [sys.executable, "-m", "blurtrack", "serve", "--port", str(port), "--bundle", str(bundle)]
    process = subprocess.Popen(
        [*command, "--backend", "onnxruntime", *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.2)
