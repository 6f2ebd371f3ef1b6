"""The inference worker on the real test bundle: a frame is bound to a worker thread only when the
thread starts on it, so a frame that waited for a free thread is never tracked when a newer one
of its stream has arrived."""

from __future__ import annotations

import asyncio
import threading
import time

from blurtrack.engine.frames import decode_image
from blurtrack.engine.geometry import Box
from blurtrack.service.errors import ApiError
from blurtrack.service.schemas import SessionOptions
from blurtrack.service.sessions import FrameSlot, History, PendingFrame, PreviewState, Session
from blurtrack.service.worker import FrameOutcome, InferenceWorker

from .conftest import render_sequence, settings_for


async def _one_worker_with_a_session(test_bundle, seq) -> tuple[InferenceWorker, Session]:
    """A loaded worker with one thread, and a session started on the sequence's first frame."""
    worker = InferenceWorker(settings_for(test_bundle, workers=1))
    await worker.load()
    tracker = worker.require_pipeline().new_tracker()
    first = tracker.init(decode_image(seq.jpegs[0]), Box(*seq.boxes[0]))
    session = Session(
        tracker=tracker, options=SessionOptions(), first=first, preview=PreviewState(1.0, 10.0), history=History(10.0)
    )
    return worker, session


def test_a_frame_waiting_for_a_thread_is_replaced_by_a_newer_one(test_bundle):
    seq = render_sequence(seed=5, n_frames=4)

    async def scenario():
        worker, session = await _one_worker_with_a_session(test_bundle, seq)
        slot = FrameSlot()
        release = threading.Event()
        busy = asyncio.ensure_future(worker._run(release.wait))  # the only thread, taken by another job
        slot.put(PendingFrame(1, seq.jpegs[1], time.perf_counter()))
        job = asyncio.ensure_future(worker.process_newest(session, slot))
        await asyncio.sleep(0.05)  # the job waits in the executor's queue ...
        replaced = slot.put(PendingFrame(2, seq.jpegs[2], time.perf_counter()))  # ... while frame 2 arrives
        release.set()
        await busy
        taken = await job
        empty = await worker.process_newest(session, slot)  # the slot is empty now: nothing to track
        worker.shutdown()
        return replaced, taken, empty

    replaced, taken, empty = asyncio.run(scenario())
    assert replaced is not None and replaced.seq == 1
    assert taken is not None
    frame, outcome = taken
    assert frame.seq == 2, "the job tracked the newest frame, taken when its thread started"
    assert isinstance(outcome, FrameOutcome) and outcome.result.state == "tracking"
    assert empty is None


def test_a_frame_that_fails_comes_back_with_its_error(test_bundle):
    seq = render_sequence(seed=6, n_frames=2)

    async def scenario():
        worker, session = await _one_worker_with_a_session(test_bundle, seq)
        slot = FrameSlot()
        slot.put(PendingFrame(7, b"\xff\xd8 not a jpeg", time.perf_counter()))
        taken = await worker.process_newest(session, slot)
        worker.shutdown()
        return taken

    taken = asyncio.run(scenario())
    assert taken is not None
    frame, outcome = taken
    assert frame.seq == 7
    assert isinstance(outcome, ApiError) and (outcome.status, outcome.code) == (400, "invalid_frame"), outcome
