"""Run a tracker over OTB sequences, timing only its `init` and `track` calls, and score the runs.

Any object with `init(frame, box)` and `track(frame) -> result` (result with `.box` and, where the
tracker has them, `.score`, `.state`, `.timings` in ms and `.deblurred`) can be run: our Pipeline
trackers and the in-process peers alike. Image decoding happens outside the timed calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from blurtrack.engine.geometry import Box
from blurtrack.engine.otb import MissingFrameError, Sequence
from blurtrack.models.evaluation import metrics

log = logging.getLogger(__name__)

BoxTuple = tuple[float, float, float, float]


class SupportsTracking(Protocol):
    def init(self, frame: Any, box: Any) -> object: ...

    def track(self, frame: Any) -> Any: ...


@dataclass
class SequenceRun:
    """What a tracker did on one sequence: a box per frame (the first is the given box; None where
    the frame's image was missing), and the time spent inside init + track."""

    name: str
    boxes: list[BoxTuple | None]
    seconds: float
    frames: int  # frames handed to the tracker (init frame included)
    timings: list[dict[str, float]] = field(default_factory=list)  # per tracked frame, ms per stage
    states: list[str | None] = field(default_factory=list)
    deblurred: int = 0  # tracked frames on which the deblur network ran


def run_sequence(
    tracker: SupportsTracking,
    sequence: Sequence,
    on_frame: Callable[[int], None] | None = None,
) -> SequenceRun:
    """Initialise on frame 0 with its ground truth, then track every later frame."""
    init_box = sequence.init_box
    first = sequence.read_frame(0)
    start = time.perf_counter()
    tracker.init(first, tuple(init_box))
    seconds = time.perf_counter() - start
    run = SequenceRun(name=sequence.name, boxes=[init_box], seconds=0.0, frames=1)
    if on_frame:
        on_frame(1)
    for index in range(1, len(sequence)):
        try:
            frame = sequence.read_frame(index)
        except MissingFrameError as exc:
            # No image, no prediction: the frame counts as a failure where it has ground truth.
            log.warning("%s; no box for this frame", exc)
            run.boxes.append(None)
            run.states.append(None)
            if on_frame:
                on_frame(1)
            continue
        start = time.perf_counter()
        result = tracker.track(frame)
        seconds += time.perf_counter() - start
        run.frames += 1
        run.boxes.append(Box(*(float(v) for v in result.box)))
        run.states.append(getattr(result, "state", None))
        timings = getattr(result, "timings", None)
        if timings:
            run.timings.append(dict(timings))
        run.deblurred += int(bool(getattr(result, "deblurred", False)))
        if on_frame:
            on_frame(1)
    run.seconds = seconds
    return run


def sequence_report(run: SequenceRun, sequence: Sequence) -> tuple[dict[str, Any], metrics.FrameScores]:
    """Metrics, speed and state counts of one run, plus its per-frame scores for pooling."""
    scores = metrics.score_sequence(run.boxes, sequence.groundtruth)
    report: dict[str, Any] = {"frames": len(sequence), **metrics.summarize(scores)}
    report["fps"] = metrics.fps(run.frames, run.seconds)
    report["seconds"] = round(run.seconds, 4)
    report["lost_frames"] = sum(1 for s in run.states if s == "lost")
    report["deblurred_frames"] = run.deblurred
    return report, scores


def evaluate(runs: Iterable[SequenceRun], sequences: Iterable[Sequence]) -> dict[str, Any]:
    """Per-sequence and pooled metrics (pooled over all scored frames of all sequences), pooled FPS
    (all frames / all init+track seconds), per-stage latency median/p95 and the two curves."""
    by_name = {s.name: s for s in sequences}
    per_sequence: dict[str, Any] = {}
    all_scores: list[metrics.FrameScores] = []
    all_timings: list[dict[str, float]] = []
    frames = tracked = 0
    seconds = 0.0
    lost = deblurred = 0
    for run in runs:
        report, scores = sequence_report(run, by_name[run.name])
        per_sequence[run.name] = report
        all_scores.append(scores)
        all_timings.extend(run.timings)
        frames += report["frames"]
        tracked += run.frames
        seconds += run.seconds
        lost += report["lost_frames"]
        deblurred += run.deblurred
    pooled_scores = metrics.FrameScores.pooled(all_scores)
    pooled: dict[str, Any] = {"frames": frames, **metrics.summarize(pooled_scores)}
    pooled["fps"] = metrics.fps(tracked, seconds)
    pooled["seconds"] = round(seconds, 4)
    pooled["lost_frames"] = lost
    pooled["deblurred_frames"] = deblurred
    pooled["latency_ms"] = metrics.latency_stats(all_timings)
    return {"sequences": per_sequence, "pooled": pooled, "curves": metrics.curves(pooled_scores)}


def run_dataset(
    make_tracker: Callable[[], SupportsTracking],
    sequences: Iterable[Sequence],
    on_frame: Callable[[int], None] | None = None,
) -> list[SequenceRun]:
    """A fresh tracker per sequence (trackers keep per-target state), every sequence in order."""
    return [run_sequence(make_tracker(), sequence, on_frame) for sequence in sequences]
