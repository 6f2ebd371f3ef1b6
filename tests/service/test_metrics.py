"""/metrics parses with Prometheus' own text parser and its counters equal what was sent."""

from __future__ import annotations

import asyncio
import json

import httpx

from .conftest import metric_samples, new_session, recv_json, render_sequence, stream_lockstep, ws_connect


def test_metrics_count_what_was_sent(start_server, sequence):
    burst = render_sequence(seed=11, n_frames=21)
    with start_server() as server:
        lockstep_id = new_session(server, sequence)
        burst_id = new_session(server, burst)
        deleted_id = new_session(server, sequence)
        assert httpx.delete(f"{server.url}/v1/sessions/{deleted_id}").status_code == 204

        lockstep = asyncio.run(stream_lockstep(server, lockstep_id, sequence.jpegs[1:7] + [b"not an image"]))

        async def fast():
            async with ws_connect(server, burst_id) as ws:
                for jpeg in burst.jpegs[1:]:
                    await ws.send(jpeg)
                results = []
                while not results or results[-1]["seq"] < 20:
                    results.append(await recv_json(ws))
                return results  # then disconnect without "close": the session stays

        burst_results = asyncio.run(fast())
        processed = 6 + len(burst_results)
        dropped = burst_results[-1]["dropped"]
        assert [m["type"] for m in lockstep] == ["result"] * 6 + ["error"]

        samples = metric_samples(server)
        assert samples["blurtrack_frames_received_total"] == 27
        assert samples["blurtrack_frames_processed_total"] == processed
        assert samples["blurtrack_frames_dropped_total"] == dropped == 20 - len(burst_results)
        assert samples["blurtrack_frames_failed_total{reason=invalid_frame}"] == 1
        assert samples["blurtrack_sessions_created_total"] == 3
        assert samples["blurtrack_sessions_ended_total{reason=closed}"] == 1
        assert samples["blurtrack_sessions_ended_total{reason=deleted}"] == 1
        assert samples["blurtrack_live_sessions"] == 1
        # one observation per processed frame in the end-to-end and in every stage histogram
        assert samples["blurtrack_frame_seconds_count"] == processed
        assert samples["blurtrack_frame_seconds_bucket{le=+Inf}"] == processed
        for stage in ("queue", "decode", "crop", "deblur", "track", "post"):
            assert samples[f"blurtrack_stage_seconds_count{{stage={stage}}}"] == processed
        assert samples["blurtrack_stage_seconds_sum{stage=track}"] > 0
        assert samples["blurtrack_frame_seconds_sum"] >= samples["blurtrack_stage_seconds_sum{stage=track}"]
        info = [k for k in samples if k.startswith("blurtrack_backend_info{")]
        assert len(info) == 1 and "backend=onnxruntime" in info[0] and "bundle=test-matched-filter" in info[0]
        assert json.loads(httpx.get(f"{server.url}/readyz").text)["backend"]["backend"] == "onnxruntime"
