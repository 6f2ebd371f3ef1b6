"""Limits that hold below the routes: request bodies (chunked or not, and slow ones), the number
of requests and streams served at once, and the WebSocket message size. Each is a setting."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
import websockets

from .conftest import new_session, recv_json, ws_connect


def raw_http(server, head: bytes, body: bytes = b"", read_timeout_s: float = 60.0) -> tuple[int, dict]:
    """Send `head` and `body` as they are (no framing added) and read the answer; the body may
    be deliberately incomplete."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout_s) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed without an answer: {data!r}"
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
    return int(header.split()[1]), json.loads(rest[:length])


def _post_head(server, extra: str) -> bytes:
    return (
        f"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: multipart/form-data; boundary=xyz\r\n{extra}\r\n"
    ).encode()


def test_chunked_body_over_the_limit_is_refused_before_its_end(start_server):
    """Was read to the end (300 MiB accepted, then 400). The body here never ends: only a limit
    that holds while reading can answer."""
    with start_server(max_frame_bytes=100_000) as server:
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))  # 320 KiB, no final 0-chunk
        status, answer = raw_http(server, _post_head(server, "Transfer-Encoding: chunked\r\n"), body)
        assert status == 413 and answer["code"] == "frame_too_large", answer
        assert "limit of" in answer["detail"]
        assert httpx.get(f"{server.url}/v1/sessions", timeout=10).status_code == 200  # and it still serves


def test_a_trickled_body_times_out_with_408(start_server):
    """A body announced as 100000 bytes that stops after 10: answered when BLURTRACK_BODY_TIMEOUT_S
    runs out (the connection was held indefinitely)."""
    with start_server(body_timeout_s=1.0) as server:
        status, answer = raw_http(server, _post_head(server, "Content-Length: 100000\r\n"), b"--xyz\r\nabc")
        assert status == 408 and answer["code"] == "body_timeout", answer
        assert "BLURTRACK_BODY_TIMEOUT_S" in answer["detail"]


def test_connection_cap_answers_503_and_1013_and_frees_up(start_server, sequence):
    with start_server(max_connections=2) as server:
        sessions = [new_session(server, sequence) for _ in range(2)]

        async def scenario():
            async with ws_connect(server, sessions[0]) as first, ws_connect(server, sessions[1]) as second:
                for ws in (first, second):  # both streams are live
                    await ws.send(sequence.jpegs[1])
                    assert (await recv_json(ws))["type"] == "result"
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                    refused = await http.get("/v1/sessions")
                    probe = await http.get("/healthz")
                async with ws_connect(server, sessions[0]) as third:
                    message = await recv_json(third)
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await asyncio.wait_for(third.recv(), 10)
                await first.send(sequence.jpegs[2])  # the served streams go on
                still = await recv_json(first)
            return refused, probe, message, closed.value.rcvd.code, still

        refused, probe, message, code, still = asyncio.run(scenario())
        assert refused.status_code == 503 and refused.json()["code"] == "too_many_connections"
        assert "BLURTRACK_MAX_CONNECTIONS" in refused.json()["detail"]
        assert probe.status_code == 200  # probes are never capped
        assert message["code"] == "too_many_connections" and code == 1013
        assert still["type"] == "result"
        assert httpx.get(f"{server.url}/v1/sessions", timeout=10).status_code == 200  # room again


def test_websocket_message_cap_is_a_setting(start_server, sequence):
    with start_server(max_frame_bytes=100_000, max_message_bytes=200_000) as server:
        session_id = new_session(server, sequence)

        async def stream():
            async with ws_connect(server, session_id) as ws:
                await ws.send(b"\xff\xd8\xff" + bytes(150_000))  # over the frame limit: an error, the stream goes on
                over_frame = await recv_json(ws)
                await ws.send(sequence.jpegs[1])
                result = await recv_json(ws)
                await ws.send(bytes(300_000))  # over the message cap: the server closes
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                return over_frame, result, closed.value.rcvd.code

        over_frame, result, code = asyncio.run(stream())
        assert over_frame["code"] == "frame_too_large" and result["type"] == "result"
        assert code == 1009
