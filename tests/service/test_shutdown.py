"""Graceful shutdown: /readyz turns unready first, new sessions are refused, frames already sent
are answered, and every stream gets a `session_shutdown` error and close code 1001 with a reason
(uvicorn alone closed them with 1012 and no word)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import websockets

from blurtrack.service.server import BackgroundServer

from .conftest import new_session, recv_json, settings_for, ws_connect


def _stop_in_background(server: BackgroundServer) -> threading.Thread:
    thread = threading.Thread(target=server.stop, daemon=True)
    thread.start()
    return thread


def test_shutdown_turns_unready_answers_frames_then_closes_1001(test_bundle, sequence):
    server = BackgroundServer(settings_for(test_bundle, shutdown_delay_s=2.0)).start()
    streaming = new_session(server, sequence)
    idle = new_session(server, sequence)

    async def scenario():
        async with ws_connect(server, streaming) as ws:
            await ws.send(sequence.jpegs[1])
            first = await recv_json(ws)
            stopper = _stop_in_background(server)
            await ws.send(sequence.jpegs[2])  # sent once the shutdown began: still answered
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                deadline = time.monotonic() + 30
                while (ready := await http.get("/readyz")).status_code == 200:
                    assert time.monotonic() < deadline, "/readyz never turned unready"
                    await asyncio.sleep(0.02)
                refused = await http.post(
                    "/v1/sessions", files={"frame": ("f.jpg", sequence.jpegs[0], "image/jpeg")}, data={"box": sequence.first_box}
                )
            messages = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    messages.append(await recv_json(ws))
        await asyncio.to_thread(stopper.join, 30)
        return first, ready, refused, messages, closed.value.rcvd

    first, ready, refused, messages, close = asyncio.run(scenario())
    assert first["type"] == "result"
    assert ready.status_code == 503 and ready.json() == {"ready": False, "detail": "shutting down", "backend": {}}
    assert refused.status_code == 503 and refused.json()["code"] == "shutting_down"
    assert [(m["type"], m.get("seq"), m.get("code")) for m in messages] == [
        ("result", 2, None),
        ("error", None, "session_shutdown"),
    ]
    assert "shutting down" in messages[-1]["message"]
    assert close.code == 1001 and close.reason == "session_shutdown"
    assert idle not in [s.id for s in server.app.state.service.registry.all()]


def test_a_stream_opened_while_draining_is_refused_with_1001(test_bundle, sequence):
    server = BackgroundServer(settings_for(test_bundle, shutdown_delay_s=2.0)).start()
    session_id = new_session(server, sequence)
    stopper = _stop_in_background(server)
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    async def attach():
        async with ws_connect(server, session_id) as ws:
            message = await recv_json(ws)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return message, closed.value.rcvd.code

    message, code = asyncio.run(attach())
    stopper.join(30)
    assert message["code"] == "shutting_down" and code == 1001
