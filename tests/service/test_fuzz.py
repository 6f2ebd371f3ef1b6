"""Property-based fuzzing of a real server on loopback (hypothesis, a bounded number of examples):
random and adversarial form fields, option JSON, box strings, image bytes (truncated, wrong
magic, bombs in each format) and stream messages. Whatever comes in: no 5xx, every error is
strict JSON with a code, the stream goes on, another session streaming meanwhile keeps getting
correct boxes, and peak memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import math
import threading

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blurtrack.engine.geometry import Box, iou

from .bombs import bomb_headers
from .conftest import render_sequence, ws_connect
from .test_bombs import MB, _status_of

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)

GOOD = render_sequence(seed=7, n_frames=4, step=(3.0, 2.0))


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"the server sent {name}, which is not JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


# -- strategies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)
numbers = st.floats() | st.integers(-(10**400), 10**400) | st.sampled_from([1e-300, 1e308, -0.0, 65535.5, 0.5])
box_strings = st.one_of(
    st.lists(numbers, min_size=0, max_size=6).map(lambda vs: ",".join(str(v) for v in vs)),
    st.text(max_size=60),
    st.sampled_from(["10,10,1e-300,1e-300", "nan,nan,10,10", "0,0,1e308,1e308", "1," * 5000, " , , ,", "1e999,1,1,1"]),
)
options = st.one_of(
    st.none(),
    json_values.map(lambda v: json.dumps(v)),
    st.text(max_size=80),
    st.sampled_from(['{"deblur": NaN}', "[" * 3000 + "]" * 3000, '{"deblur":"on","backend":"mslite"}', '{"deblur":"auto"}']),
)


def _truncations(data: bytes):
    return st.integers(0, len(data)).map(lambda n: data[:n])


frames = st.one_of(
    _truncations(GOOD.jpegs[0]),
    st.binary(max_size=300),
    st.binary(max_size=64).map(lambda b: b"\xff\xd8\xff" + b),
    st.binary(max_size=64).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
    st.binary(max_size=64).map(lambda b: b"RIFF\x00\x00\x00\x00WEBP" + b),
    st.binary(max_size=64).map(lambda b: b"BM" + b),
    st.sampled_from(list(bomb_headers().values())),
    st.just(GOOD.jpegs[0]),
)


def _is_close(text: str) -> bool:
    """A real close message ends the session the test streams on; it is not fuzz."""
    try:
        return len(text) < 100 and json.loads(text) == {"type": "close"}
    except (ValueError, RecursionError):
        return False


control_messages = st.one_of(
    json_values.map(lambda box: json.dumps({"type": "reinit", "box": box})),
    st.lists(numbers, min_size=4, max_size=4).map(lambda box: json.dumps({"type": "reinit", "box": box})),
    box_strings.map(lambda box: json.dumps({"type": "reinit", "box": box})),
    json_values.map(json.dumps),
    st.text(max_size=100),
    st.just("[" * 5000),
).filter(lambda t: not _is_close(t))
stream_messages = st.lists(control_messages | frames, min_size=1, max_size=4)


# -- a bystander that must keep getting correct boxes ------------------------------------------


class Bystander(threading.Thread):
    """Streams a rendered sequence in lockstep, over and over, until stopped; every answer must
    be a result whose box overlaps the truth."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.sequence = render_sequence(seed=9, n_frames=40, step=(2.0, 1.0))
        self.stop = threading.Event()
        self.results = 0
        self.failures: list[str] = []

    def run(self) -> None:
        try:
            asyncio.run(self._stream())
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")

    async def _stream(self) -> None:
        seq = self.sequence
        while not self.stop.is_set():
            files = {"frame": ("f.jpg", seq.jpegs[0], "image/jpeg")}
            async with httpx.AsyncClient(timeout=60) as http:
                opened = await http.post(f"{self.server.url}/v1/sessions", files=files, data={"box": seq.first_box})
            session_id = opened.json()["session_id"]
            async with ws_connect(self.server, session_id) as ws:
                for jpeg, truth in zip(seq.jpegs[1:], seq.boxes[1:], strict=True):
                    await ws.send(jpeg)
                    message = strict_json(await asyncio.wait_for(ws.recv(), 60))
                    if message["type"] != "result" or iou(Box(*message["box"]), Box(*truth)) < 0.5:
                        self.failures.append(str(message)[:300])
                    self.results += 1
                await ws.send(json.dumps({"type": "close"}))


@pytest.fixture(scope="module")
def fuzz_server(start_server):
    with start_server(max_sessions=8, max_frame_bytes=1_000_000) as server:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # peak RSS from here
        rss_before = _status_of("/proc/self/status")["VmRSS"]
        bystander = Bystander(server)
        bystander.start()
        yield server
        bystander.stop.set()
        bystander.join(120)
        growth = _status_of("/proc/self/status")["VmHWM"] - rss_before
        assert not bystander.failures, bystander.failures[:3]
        assert bystander.results > 0
        assert growth < 300 * MB, f"peak RSS grew by {growth / MB:.0f} MB while fuzzing"


def _check_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:300]
    body = strict_json(response.text)
    assert isinstance(body.get("code"), str) and isinstance(body.get("detail"), str), body
    assert len(response.text) < 2000


@FUZZ
@given(frame=frames, box=box_strings, options=options)
# what a hostile client tried (issue 26), always among the examples
@example(frame=GOOD.jpegs[0], box="10,10,1e-300,1e-300", options=None)
@example(frame=GOOD.jpegs[0], box="nan,nan,10,10", options=None)
@example(frame=GOOD.jpegs[0], box="1," * 100_000 + "1", options=None)
@example(frame=GOOD.jpegs[0], box="100,80,40,40", options="[" * 100_000 + "]" * 100_000)
def test_fuzz_session_requests(fuzz_server, frame, box, options):
    data = {"box": box} if options is None else {"box": box, "options": options}
    response = httpx.post(f"{fuzz_server.url}/v1/sessions", files={"frame": ("f", frame, "image/jpeg")}, data=data, timeout=60)
    if response.status_code == 201:
        httpx.delete(f"{fuzz_server.url}/v1/sessions/{response.json()['session_id']}", timeout=30)
    else:
        _check_error(response)


@pytest.fixture(scope="module")
def victim(fuzz_server):
    response = httpx.post(
        f"{fuzz_server.url}/v1/sessions",
        files={"frame": ("f.jpg", GOOD.jpegs[0], "image/jpeg")},
        data={"box": GOOD.first_box},
        timeout=60,
    )
    return response.json()["session_id"]


@FUZZ
@given(messages=stream_messages)
@example(messages=['{"type":"reinit","box":5}'])
@example(messages=['{"type":"reinit","box":true}', "[" * 100_000])
@example(messages=['{"type":"reinit","box":[0,0,1e308,1e308]}', GOOD.jpegs[2]])
def test_fuzz_stream_messages(fuzz_server, victim, messages):
    received = httpx.get(f"{fuzz_server.url}/v1/sessions/{victim}", timeout=30).json()["frames_received"]
    last = received + sum(isinstance(m, bytes) for m in messages) + 1  # the seq of the good frame sent after them

    async def stream():
        replies = []
        async with ws_connect(fuzz_server, victim) as ws:
            for message in messages:
                await ws.send(message)
            for seq in (last, last + 1):  # the stream goes on: both good frames are answered
                await ws.send(GOOD.jpegs[1])
                while (reply := strict_json(await asyncio.wait_for(ws.recv(), 60))).get("seq") != seq:
                    replies.append(reply)
                replies.append(reply)
        return replies

    replies = asyncio.run(stream())
    # a fuzzed reinit box may be refused on the first good frame; the one after is tracked
    assert replies[-1]["type"] == "result", replies[-1]
    for reply in replies:
        if reply["type"] == "result":
            assert all(math.isfinite(v) for v in reply["box"]) and math.isfinite(reply["score"])
        else:
            assert reply["type"] == "error" and isinstance(reply["code"], str) and len(reply["message"]) < 600, reply


def test_fuzz_other_routes(fuzz_server, victim):
    """Odd paths, methods and bodies elsewhere: errors with a code, never a 5xx."""
    calls = [
        ("PUT", f"/v1/sessions/{victim}/preview", "[" * 100_000),
        ("PUT", f"/v1/sessions/{victim}/preview", '{"enabled": NaN}'),
        ("GET", "/v1/sessions/" + "x" * 5000, None),
        ("GET", "/nope", None),
        ("POST", "/healthz", None),
        ("GET", "/v1/demo/sequences/..%2F..%2Fetc/frames/0", None),
        ("GET", f"/v1/sessions/{victim}/preview.jpg", None),
    ]
    for method, path, body in calls:
        response = httpx.request(
            method, f"{fuzz_server.url}{path}", content=body, headers={"content-type": "application/json"}, timeout=30
        )
        _check_error(response)
