"""Every bad input gets a clear 4xx or error message, and never hurts the stream or another session."""

from __future__ import annotations

import asyncio
import json

import cv2
import httpx
import numpy as np
import pytest
import websockets

from .conftest import new_session, open_session, recv_json, ws_connect

CORRUPT = b"\xff\xd8\xff\xe0 this is not really a JPEG" + bytes(200)


@pytest.mark.parametrize(
    ("frame", "box", "options", "status", "code", "says"),
    [
        (CORRUPT, "100,80,40,40", None, 400, "invalid_frame", "could not decode"),
        (b"", "100,80,40,40", None, 400, "invalid_frame", "empty"),
        (None, "one,two,3,4", None, 400, "invalid_box", "four numbers"),
        (None, "100,80,40", None, 400, "invalid_box", "four numbers"),
        (None, "100,80,0,40", None, 400, "invalid_box", "positive"),
        (None, "100,80,40,nan", None, 400, "invalid_box", "finite"),
        (None, "1000,900,40,40", None, 400, "invalid_box", "outside"),
        (None, "100,80,40,40", "{not json", 400, "invalid_options", "JSON object"),
        (None, "100,80,40,40", {"deblur": "sometimes"}, 400, "invalid_options", "deblur"),
        (None, "100,80,40,40", {"colour": "red"}, 400, "invalid_options", "colour"),
        (None, "100,80,40,40", {"backend": "mslite"}, 400, "backend_mismatch", "runs the onnxruntime backend"),
    ],
)
def test_bad_session_requests_get_a_clear_4xx(server, sequence, frame, box, options, status, code, says):
    response = open_session(server, sequence.jpegs[0] if frame is None else frame, box, options=options)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert says in body["detail"]


def test_good_options_are_accepted(server, sequence):
    for options in ({"backend": "onnxruntime", "deblur": "off"}, {"backend": "auto", "deblur": "on"}, {}):
        response = open_session(server, sequence.jpegs[0], sequence.first_box, options=options)
        assert response.status_code == 201, response.text
        httpx.delete(f"{server.url}/v1/sessions/{response.json()['session_id']}")


def test_missing_fields_get_422(server, sequence):
    response = httpx.post(f"{server.url}/v1/sessions", files={"frame": ("f.jpg", sequence.jpegs[0], "image/jpeg")})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request" and "box" in response.json()["detail"]


def test_unknown_session_ids(server):
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{server.url}/v1/sessions/no-such-session")
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_session"

    async def stream_unknown():
        async with ws_connect(server, "no-such-session") as ws:
            message = await recv_json(ws)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return message, closed.value.rcvd.code

    message, code = asyncio.run(stream_unknown())
    assert message == {"type": "error", "code": "unknown_session", "message": message["message"]}
    assert "POST /v1/sessions" in message["message"] and code == 4404


def test_bad_stream_messages_get_errors_and_the_stream_goes_on(server, sequence):
    """One stream takes every kind of bad message while another session streams beside it."""
    victim = new_session(server, sequence)
    bystander = new_session(server, sequence)
    grey16 = cv2.imencode(".png", np.full((240, 320), 40000, np.uint16))[1].tobytes()  # odd but valid

    async def bad_stream():
        replies = []
        async with ws_connect(server, victim) as ws:
            for message in [CORRUPT, b"", "hello", json.dumps({"type": "dance"}), "[1, 2]", sequence.jpegs[1]]:
                await ws.send(message)
                replies.append(await recv_json(ws))
            await ws.send(json.dumps({"type": "reinit", "box": [1, 2, 0, 4]}))
            replies.append(await recv_json(ws))
            await ws.send(json.dumps({"type": "reinit", "box": [5000, 5000, 10, 10]}))  # valid numbers, outside the frame
            await ws.send(sequence.jpegs[2])
            replies.append(await recv_json(ws))
            await ws.send(grey16)
            replies.append(await recv_json(ws))
            await ws.send(sequence.jpegs[3])
            replies.append(await recv_json(ws))
        return replies

    async def good_stream():
        results = []
        async with ws_connect(server, bystander) as ws:
            for jpeg in sequence.jpegs[1:]:
                await ws.send(jpeg)
                results.append(await recv_json(ws))
        return results

    async def both():
        return await asyncio.gather(bad_stream(), good_stream())

    replies, bystander_results = asyncio.run(both())
    codes = [(r["type"], r.get("code"), r.get("seq")) for r in replies]
    assert codes == [
        ("error", "invalid_frame", 1),
        ("error", "invalid_frame", 2),
        ("error", "invalid_message", None),
        ("error", "invalid_message", None),
        ("error", "invalid_message", None),
        ("result", None, 3),
        ("error", "invalid_box", None),  # zero-size reinit box: refused at once
        ("error", "invalid_box", 4),  # reinit box outside that frame: refused on the frame
        ("result", None, 5),  # a 16-bit grey PNG decodes and is tracked
        ("result", None, 6),
    ]
    assert "could not decode" in replies[0]["message"] and "empty" in replies[1]["message"]
    assert "binary" in replies[2]["message"]
    assert all(r["type"] == "result" for r in bystander_results) and len(bystander_results) == len(sequence.jpegs) - 1
    info = httpx.get(f"{server.url}/v1/sessions/{victim}").json()
    assert info["frames_received"] == 6 and info["frames_failed"] == 3 and info["frames_processed"] == 3


def test_a_reinit_waits_out_a_frame_that_cannot_be_decoded_and_is_used_once(server, sequence):
    """A re-init request belongs to the next frame the tracker can use: a corrupt frame fails
    without consuming it, the next good frame re-initialises on its box, the one after tracks."""
    session_id = new_session(server, sequence)

    async def scenario():
        async with ws_connect(server, session_id) as ws:
            await ws.send(json.dumps({"type": "reinit", "box": [100, 80, 40, 40]}))
            replies = []
            for frame in (CORRUPT, sequence.jpegs[1], sequence.jpegs[2]):
                await ws.send(frame)
                replies.append(await recv_json(ws))
            return replies

    corrupt, reinit, tracked = asyncio.run(scenario())
    assert (corrupt["type"], corrupt["code"], corrupt["seq"]) == ("error", "invalid_frame", 1)
    assert reinit["type"] == "result" and reinit["seq"] == 2 and reinit["reinit"] and reinit["box"] == [100, 80, 40, 40]
    assert tracked["type"] == "result" and tracked["seq"] == 3 and not tracked["reinit"]
