"""The demo catalog's folder scans run off the event loop. A request for an unknown sequence name
makes the catalog rescan the folder; here the scan is slow (a ground-truth file of 1000000 lines),
and a frame sent on a stream while it runs is answered before the scan ends. The scan used to run
on the event loop, stalling every session for as long as it took."""

from __future__ import annotations

import asyncio

import httpx

from .conftest import new_session, recv_json, ws_connect
from .test_live_api import write_otb_sequence


def test_a_slow_catalog_scan_does_not_stall_streams(start_server, sequence, tmp_path):
    write_otb_sequence(tmp_path, "ready", n_frames=3, seed=31)
    slow = tmp_path / "slow"
    (slow / "img").mkdir(parents=True)
    (slow / "img" / "0001.jpg").write_bytes(sequence.jpegs[0])
    (slow / "groundtruth_rect.txt").write_text("10,10,20,20\n" * 1_000_000)

    with start_server(demo_dir=tmp_path) as server:
        session_id = new_session(server, sequence)

        async def scenario():
            async with ws_connect(server, session_id) as ws, httpx.AsyncClient(base_url=server.url, timeout=120) as http:
                await ws.send(sequence.jpegs[1])
                await recv_json(ws)
                lookup = asyncio.create_task(http.get("/v1/demo/sequences/no-such/frames/0"))  # starts a rescan
                await asyncio.sleep(0.1)  # let the request reach the server (not a timing assertion)
                await ws.send(sequence.jpegs[2])
                during = await recv_json(ws)
                scan_still_running = not lookup.done()
                return during, scan_still_running, await lookup

        during, scan_still_running, lookup = asyncio.run(scenario())
    assert during["type"] == "result" and during["seq"] == 2
    assert scan_still_running, "the frame was answered only after the folder scan: the scan blocked the event loop"
    assert lookup.status_code == 404 and lookup.json()["code"] == "unknown_sequence"
