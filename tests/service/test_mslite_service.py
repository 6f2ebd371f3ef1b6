"""The service on the MindSpore Lite backend (skipped where `blurtrack setup mslite` has not run)."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from blurtrack.engine.frames import decode_image
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime.mslite.convert import convert_bundle
from blurtrack.engine.runtime.mslite.detect import runtime_status

from .conftest import new_session, open_session, stream_lockstep


@pytest.fixture(scope="module")
def ms_bundle(test_bundle, tmp_path_factory):
    status = runtime_status()
    if not status.available:
        pytest.skip(f"MindSpore Lite is not set up here ({status.detail}); run `blurtrack setup mslite`")
    bundle = tmp_path_factory.mktemp("ms") / "bundle"
    shutil.copytree(test_bundle, bundle)
    convert_bundle(bundle)
    return bundle


def test_service_on_mslite_matches_the_engine_on_mslite(ms_bundle, start_server, sequence):
    with start_server(bundle=str(ms_bundle), backend="mslite") as server:
        refused = open_session(server, sequence.jpegs[0], sequence.first_box, options={"backend": "onnxruntime"})
        assert refused.status_code == 400 and refused.json()["code"] == "backend_mismatch"
        assert "runs the mslite backend" in refused.json()["detail"]

        session_id = new_session(server, sequence, options={"backend": "mslite"})
        messages = asyncio.run(stream_lockstep(server, session_id, sequence.jpegs[1:]))

    tracker = Pipeline.from_bundle(ms_bundle, backend="mslite", threads=1).new_tracker()
    tracker.init(decode_image(sequence.jpegs[0]), sequence.boxes[0])
    expected = [tracker.track(decode_image(jpeg)).box for jpeg in sequence.jpegs[1:]]
    assert all(m["type"] == "result" for m in messages)
    np.testing.assert_allclose([m["box"] for m in messages], expected, rtol=0, atol=1e-4)
