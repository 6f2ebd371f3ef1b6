"""Sessions end to end over a real server: the boxes equal the engine's, sessions stay apart,
latest-frame-wins drops frames only for a sender that outruns the server."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
import websockets

from blurtrack.engine.frames import decode_image
from blurtrack.engine.geometry import Box, iou
from blurtrack.engine.pipeline import Pipeline

from .conftest import new_session, recv_json, render_sequence, stream_lockstep, ws_connect

LATENCY_KEYS = {"queue", "decode", "deblur", "track", "total"}


@pytest.fixture(scope="module")
def engine(test_bundle) -> Pipeline:
    """The engine run directly, as the reference (same bundle, backend and thread count as the server)."""
    return Pipeline.from_bundle(test_bundle, backend="onnxruntime", threads=1)


def engine_boxes(engine: Pipeline, seq) -> list:
    tracker = engine.new_tracker()
    tracker.init(decode_image(seq.jpegs[0]), seq.boxes[0])
    return [tracker.track(decode_image(jpeg)) for jpeg in seq.jpegs[1:]]


def test_session_boxes_equal_the_engine_run_directly(server, sequence, engine):
    session_id = new_session(server, sequence)
    messages = asyncio.run(stream_lockstep(server, session_id, sequence.jpegs[1:]))
    expected = engine_boxes(engine, sequence)

    assert [m["type"] for m in messages] == ["result"] * len(expected), messages
    assert [m["seq"] for m in messages] == list(range(1, len(expected) + 1))
    for message, reference in zip(messages, expected):
        np.testing.assert_allclose(message["box"], reference.box, rtol=0, atol=1e-6)
        assert message["score"] == pytest.approx(reference.score, abs=1e-6)
        assert message["state"] == reference.state
        assert message["dropped"] == 0
        assert LATENCY_KEYS <= set(message["latency_ms"])
        assert message["latency_ms"]["total"] >= message["latency_ms"]["engine"] > 0
    # and the engine really tracks on these frames (the comparison is not between two failures)
    assert min(iou(Box(*m["box"]), Box(*gt)) for m, gt in zip(messages, sequence.boxes[1:])) > 0.5


def test_twenty_concurrent_sessions_do_not_cross(server, engine):
    sequences = [
        render_sequence(seed=100 + i, n_frames=5, step=(3.0 + i % 5, -2.0 + i % 4), start=(20.0 + 12 * i, 15.0 + 8 * (i % 20)))
        for i in range(20)
    ]

    async def run_all():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:

            async def open_one(seq):
                response = await http.post(
                    "/v1/sessions", files={"frame": ("f.jpg", seq.jpegs[0], "image/jpeg")}, data={"box": seq.first_box}
                )
                assert response.status_code == 201, response.text
                return response.json()["session_id"]

            ids = await asyncio.gather(*(open_one(seq) for seq in sequences))
        assert len(set(ids)) == 20
        return ids, await asyncio.gather(*(stream_lockstep(server, sid, seq.jpegs[1:]) for sid, seq in zip(ids, sequences)))

    ids, all_messages = asyncio.run(run_all())
    for seq, messages in zip(sequences, all_messages):
        expected = engine_boxes(engine, seq)
        assert [m["seq"] for m in messages] == [1, 2, 3, 4]
        # Each session's boxes are its own sequence's: another session's result would differ.
        np.testing.assert_allclose([m["box"] for m in messages], [r.box for r in expected], rtol=0, atol=1e-6)
    # every stream closed its session
    listed = httpx.get(f"{server.url}/v1/sessions").json()["sessions"]
    assert not set(ids) & {s["session_id"] for s in listed}


def test_fast_sender_gets_drops_and_only_recent_frames(server):
    seq = render_sequence(seed=7, n_frames=31, step=(3.0, 1.0))
    session_id = new_session(server, seq)
    frames = seq.jpegs[1:]

    async def burst():
        results = []
        async with ws_connect(server, session_id) as ws:
            for jpeg in frames:  # as fast as the socket takes them, reading nothing
                await ws.send(jpeg)
            while not results or results[-1]["seq"] < len(frames):
                message = await recv_json(ws)
                assert message["type"] == "result", message
                results.append(message)
        return results

    results = asyncio.run(burst())
    seqs = [r["seq"] for r in results]
    assert seqs == sorted(set(seqs)), "results come newest-first-taken, never older after newer"
    assert seqs[-1] == len(frames), "the newest frame is always processed"
    for index, result in enumerate(results):
        # every frame older than the one answered that got no answer was counted as dropped: no hidden queue
        assert result["dropped"] >= result["seq"] - (index + 1)
    assert results[-1]["dropped"] == len(frames) - len(results) > 0
    info = httpx.get(f"{server.url}/v1/sessions/{session_id}").json()
    assert (info["frames_received"], info["frames_processed"], info["frames_dropped"]) == (
        len(frames),
        len(results),
        len(frames) - len(results),
    )


def test_lockstep_sender_gets_no_drops(server):
    seq = render_sequence(seed=8, n_frames=16)
    session_id = new_session(server, seq)

    async def lockstep_keep_open():
        async with ws_connect(server, session_id) as ws:
            messages = []
            for jpeg in seq.jpegs[1:]:
                await ws.send(jpeg)
                messages.append(await recv_json(ws))
            return messages

    messages = asyncio.run(lockstep_keep_open())
    assert [m["seq"] for m in messages] == list(range(1, 16))
    assert all(m["dropped"] == 0 for m in messages)
    info = httpx.get(f"{server.url}/v1/sessions/{session_id}").json()
    assert info["frames_dropped"] == 0 and info["frames_processed"] == 15
    # a disconnect without {"type":"close"} keeps the session; the stream can be reattached
    assert info["streaming"] is False
    assert httpx.delete(f"{server.url}/v1/sessions/{session_id}").status_code == 204


def test_reinit_restarts_on_the_new_box(server, sequence):
    session_id = new_session(server, sequence)
    new_box = [float(v) for v in sequence.boxes[3]]

    async def run():
        async with ws_connect(server, session_id) as ws:
            await ws.send(sequence.jpegs[1])
            first = await recv_json(ws)
            await ws.send(json.dumps({"type": "reinit", "box": new_box}))
            await ws.send(sequence.jpegs[3])
            reinit = await recv_json(ws)
            await ws.send(sequence.jpegs[4])
            after = await recv_json(ws)
            return first, reinit, after

    first, reinit, after = asyncio.run(run())
    assert first["reinit"] is False
    assert reinit["reinit"] is True and reinit["box"] == new_box and reinit["seq"] == 2
    assert after["reinit"] is False and iou(Box(*after["box"]), Box(*sequence.boxes[4])) > 0.5


def test_delete_ends_the_stream_and_the_session(server, sequence):
    session_id = new_session(server, sequence)

    async def run():
        async with ws_connect(server, session_id) as ws:
            await ws.send(sequence.jpegs[1])
            await recv_json(ws)
            async with httpx.AsyncClient() as http:
                assert (await http.delete(f"{server.url}/v1/sessions/{session_id}")).status_code == 204
            message = await recv_json(ws)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return message, closed.value.rcvd.code

    message, code = asyncio.run(run())
    assert message["type"] == "error" and message["code"] == "session_deleted"
    assert code == 4410
    assert httpx.get(f"{server.url}/v1/sessions/{session_id}").status_code == 404


def test_one_stream_per_session(server, sequence):
    session_id = new_session(server, sequence)

    async def run():
        async with ws_connect(server, session_id) as first:
            await first.send(sequence.jpegs[1])
            await recv_json(first)
            async with ws_connect(server, session_id) as second:
                message = await recv_json(second)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(second.recv(), 10)
            # the first stream is unaffected
            await first.send(sequence.jpegs[2])
            return message, closed.value.rcvd.code, await recv_json(first)

    message, code, still = asyncio.run(run())
    assert message["code"] == "stream_busy" and code == 4409
    assert still["type"] == "result" and still["seq"] == 2
    httpx.delete(f"{server.url}/v1/sessions/{session_id}")
