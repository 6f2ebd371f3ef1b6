"""Limits and access: idle expiry, the session limit, frame byte and pixel limits, the API key."""

from __future__ import annotations

import asyncio
import logging
import time

import cv2
import httpx
import numpy as np
import pytest
import websockets

from .conftest import metric_samples, new_session, open_session, recv_json, ws_connect


def test_idle_sessions_expire(start_server, sequence):
    with start_server(idle_timeout_s=0.6, expiry_check_s=0.1) as server:
        quiet = new_session(server, sequence)
        streaming = new_session(server, sequence)

        async def idle_stream():
            async with ws_connect(server, streaming) as ws:
                await ws.send(sequence.jpegs[1])
                result = await recv_json(ws)
                message = await recv_json(ws, timeout=20)  # then nothing: the session expires under it
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                return result, message, closed.value.rcvd.code

        result, message, code = asyncio.run(idle_stream())
        assert result["type"] == "result"
        assert message["type"] == "error" and message["code"] == "session_expired" and "without frames" in message["message"]
        assert code == 4408
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.url}/v1/sessions/{quiet}").status_code != 404:
            assert time.monotonic() < deadline, "the quiet session never expired"
            time.sleep(0.1)
        assert httpx.get(f"{server.url}/v1/sessions/{streaming}").status_code == 404
        samples = metric_samples(server)
        assert samples["blurtrack_sessions_ended_total{reason=expired}"] == 2
        assert samples["blurtrack_live_sessions"] == 0


def test_session_limit_answers_503_with_a_message(start_server, sequence):
    with start_server(max_sessions=2) as server:
        first = new_session(server, sequence)
        new_session(server, sequence)
        refused = open_session(server, sequence.jpegs[0], sequence.first_box)
        assert refused.status_code == 503
        assert refused.json()["code"] == "too_many_sessions"
        assert "maximum of 2 live sessions" in refused.json()["detail"]
        # ending one makes room again
        assert httpx.delete(f"{server.url}/v1/sessions/{first}").status_code == 204
        assert open_session(server, sequence.jpegs[0], sequence.first_box).status_code == 201
        assert httpx.get(f"{server.url}/v1/sessions").json()["max_sessions"] == 2


def test_frame_byte_and_pixel_limits(start_server, sequence):
    rng = np.random.default_rng(0)
    heavy = cv2.imencode(".png", rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))[1].tobytes()  # ~230 kB
    wide = cv2.imencode(".jpg", np.full((480, 640, 3), 60, np.uint8))[1].tobytes()  # small file, 307200 pixels
    with start_server(max_frame_bytes=60_000, max_frame_pixels=100_000) as server:
        assert len(heavy) > 60_000 and len(wide) < 60_000
        for frame, says in ((heavy, "BLURTRACK_MAX_FRAME_BYTES"), (wide, "BLURTRACK_MAX_FRAME_PIXELS")):
            response = open_session(server, frame, "10,10,40,40")
            assert response.status_code == 413, response.text
            assert response.json()["code"] == "frame_too_large" and says in response.json()["detail"]
        # a body far past the limit is refused before it is parsed
        huge = open_session(server, bytes(1_000_000), "10,10,40,40")
        assert huge.status_code == 413 and huge.json()["code"] == "frame_too_large"

        session_id = new_session(server, sequence)

        async def stream():
            async with ws_connect(server, session_id) as ws:
                replies = []
                for frame in (heavy, wide, sequence.jpegs[1]):
                    await ws.send(frame)
                    replies.append(await recv_json(ws))
                return replies

        replies = asyncio.run(stream())
        assert [(r["type"], r.get("code"), r["seq"]) for r in replies] == [
            ("error", "frame_too_large", 1),
            ("error", "frame_too_large", 2),
            ("result", None, 3),
        ]
        assert "BLURTRACK_MAX_FRAME_BYTES" in replies[0]["message"] and "downscale" in replies[1]["message"]


def test_api_key_on(start_server, sequence):
    key = "s3cret-key"
    good = {"Authorization": f"Bearer {key}"}
    with start_server(api_key=key) as server:
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
            response = open_session(server, sequence.jpegs[0], sequence.first_box, headers=headers)
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "unauthorized" and response.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{server.url}/v1/sessions").status_code == 401
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        assert httpx.get(f"{server.url}/metrics", headers=good).status_code == 200
        # probes stay open: an orchestrator holds no key
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        session_id = new_session(server, sequence, headers=good)
        assert httpx.get(f"{server.url}/v1/sessions/{session_id}", headers=good).status_code == 200

        async def refused(**connect):
            async with ws_connect(server, session_id, **connect) as ws:
                message = await recv_json(ws)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                return message["code"], closed.value.rcvd.code

        async def accepted(**connect):
            async with ws_connect(server, session_id, **connect) as ws:
                await ws.send(sequence.jpegs[1])
                return await recv_json(ws)

        assert asyncio.run(refused()) == ("unauthorized", 4401)
        assert asyncio.run(refused(query="?token=wrong")) == ("unauthorized", 4401)
        assert asyncio.run(refused(headers={"Authorization": "Bearer wrong"})) == ("unauthorized", 4401)
        assert asyncio.run(accepted(query=f"?token={key}"))["seq"] == 1
        assert asyncio.run(accepted(headers=good))["seq"] == 2


def test_api_key_off_runs_open_and_says_so(start_server, sequence, caplog):
    with caplog.at_level(logging.WARNING, logger="service"), start_server() as server:
        session_id = new_session(server, sequence)  # no header needed
        assert httpx.get(f"{server.url}/v1/sessions/{session_id}").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 200
    assert any("running open" in record.getMessage() for record in caplog.records)
