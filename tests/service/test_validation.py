"""Typed validation of the form fields, the options and the stream's control messages: each bad
input found by a hostile client gets a short 4xx / error message that says what to send, the
stream goes on, and no reply ever holds NaN or Infinity."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from .conftest import new_session, open_session, ws_connect

DEEP = "[" * 100_000 + "]" * 100_000


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as a strict JSON parser does."""

    def refuse(name):
        raise AssertionError(f"the server sent {name}, which is not JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


async def recv_strict(ws, timeout: float = 30.0) -> dict:
    return strict_json(await asyncio.wait_for(ws.recv(), timeout))


@pytest.mark.parametrize(
    ("box", "options", "code", "says"),
    [
        ("10,10,1e-300,1e-300", None, "invalid_box", "at least 1 pixel"),  # was a 500 (ZeroDivisionError)
        ("10,10,0.5,20", None, "invalid_box", "at least 1 pixel"),
        ("nan,nan,10,10", None, "invalid_box", "finite"),  # dropped the connection
        ("0,0,1e308,1e308", None, "invalid_box", "65535"),
        ("inf,0,10,10", None, "invalid_box", "finite"),
        ("1," * 200_000 + "1", None, "invalid_box", "400001 characters"),  # was echoed back whole
        ("100,80,40,40", DEEP, "invalid_options", "over the limit"),  # was a 500 (RecursionError)
        ("100,80,40,40", '{"deblur":' + "[" * 400 + "]" * 400 + "}", "invalid_options", "nested"),
        ("100,80,40,40", '{"deblur": NaN}', "invalid_options", "not JSON"),
        ("100,80,40,40", json.dumps({"deblur": "x" * 100_000}), "invalid_options", "over the limit"),
        ("100,80,40,40", "[1, 2]", "invalid_options", "JSON object"),
        ("100,80,40,40", "x" * 500, "invalid_options", "not JSON"),
    ],
)
def test_hostile_session_fields_get_a_short_400(server, sequence, box, options, code, says):
    response = open_session(server, sequence.jpegs[0], box, options=options)
    assert response.status_code == 400, response.text[:300]
    body = strict_json(response.text)
    assert body["code"] == code and says in body["detail"], body
    assert len(response.text) < 600  # an excerpt of the input at most, never the input


def test_hostile_control_messages_get_errors_and_the_stream_goes_on(server, sequence):
    session_id = new_session(server, sequence)
    bad = [
        ('{"type":"reinit","box":5}', "invalid_box"),  # closed the socket without a close frame
        ('{"type":"reinit","box":true}', "invalid_box"),
        ('{"type":"reinit","box":[true,1,20,20]}', "invalid_box"),
        ('{"type":"reinit","box":"10,10,1e-300,1e-300"}', "invalid_box"),
        ('{"type":"reinit","box":[0,0,1e308,1e308]}', "invalid_box"),  # was accepted, then NaN boxes
        ('{"type":"reinit","box":[NaN,0,10,10]}', "invalid_message"),
        ('{"type":"reinit"}', "invalid_message"),
        ('{"type":"reinit","box":[1,2,30,30],"extra":1}', "invalid_message"),
        ('{"type":"close","now":true}', "invalid_message"),
        ('{"type":{"nested":[]}}', "invalid_message"),
        ("[" * 100_000, "invalid_message"),
        ('{"type":"reinit","box":' + "[" * 50 + "]" * 50 + "}", "invalid_message"),
        (json.dumps({"type": "reinit", "box": "1," * 5000}), "invalid_message"),
        ("null", "invalid_message"),
        ("\x00\x01", "invalid_message"),
    ]

    async def stream():
        replies = []
        async with ws_connect(server, session_id) as ws:
            for text, _ in bad:
                await ws.send(text)
                replies.append(await recv_strict(ws))
            await ws.send(sequence.jpegs[1])  # the stream goes on
            replies.append(await recv_strict(ws))
            await ws.send(json.dumps({"type": "reinit", "box": [100, 80, 40, 40]}))  # and a good reinit works
            await ws.send(sequence.jpegs[2])
            replies.append(await recv_strict(ws))
        return replies

    replies = asyncio.run(stream())
    for (text, code), reply in zip(bad, replies, strict=False):
        assert reply["type"] == "error" and reply["code"] == code, (text[:60], reply)
        assert len(reply["message"]) < 600
    assert replies[-2]["type"] == "result" and replies[-2]["seq"] == 1
    assert replies[-1]["type"] == "result" and replies[-1]["reinit"] and replies[-1]["box"] == [100, 80, 40, 40]
    info = httpx.get(f"{server.url}/v1/sessions/{session_id}").json()
    assert info["frames_processed"] == 2


@pytest.mark.parametrize("side", [1e308, 65535])
def test_a_huge_box_on_reinit_never_yields_nan(server, sequence, side):
    """1e308 was accepted on reinit and produced NaN boxes (invalid JSON); now it is refused, and a
    box far larger than the frame but in range tracks with finite numbers."""
    session_id = new_session(server, sequence)

    async def stream():
        replies = []
        async with ws_connect(server, session_id) as ws:
            await ws.send(json.dumps({"type": "reinit", "box": [0, 0, side, side]}))
            for jpeg in sequence.jpegs[1:5]:
                await ws.send(jpeg)
                while (reply := await recv_strict(ws)).get("seq") is None:  # the reinit's own error has none
                    replies.append(reply)
                replies.append(reply)
        return replies

    replies = asyncio.run(stream())
    kinds = [(r["type"], r.get("code")) for r in replies]
    if side > 65535:
        assert kinds[0] == ("error", "invalid_box") and kinds[1:] == [("result", None)] * 4
    else:
        assert all(kind in (("result", None), ("error", "tracking_failed")) for kind in kinds), kinds
    strict_json(httpx.get(f"{server.url}/v1/sessions/{session_id}").text)
