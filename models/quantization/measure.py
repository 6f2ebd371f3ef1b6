"""What an INT8 network costs and gains, measured on the tracker's own crops.

Accuracy is read where it matters, in the box the tracker would pick: the all-fp32 path and the path
with one network in INT8 each pick the best anchor (foreground score blended with the cosine window,
as the tracker does while tracking) on the same crop, and the two boxes are compared (centre
distance in crop pixels, IoU). The template network is judged through the kernels it hands to the
fp32 search network, the deblur network through the fp32 search network's pick on its output.
Speed: the fp32 and INT8 sessions are called in turn and compared pair by pair, so a slow phase of a
shared host hits both. `tracking_scores` runs the whole tracker on clips, for the closed-loop check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blurtrack.engine.anchors import box_iou_cxcywh, decode_boxes, flatten_loc, foreground_scores, generate_anchors
from blurtrack.engine.deblur import DeblurMode
from blurtrack.engine.manifest import Bundle, Manifest
from blurtrack.engine.otb import load_sequence
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime import get_backend
from blurtrack.engine.runtime.base import ModelSession
from blurtrack.models.evaluation.runner import evaluate, run_dataset
from blurtrack.models.evaluation.temporal import temporal_segments
from blurtrack.models.quantization.calibration import CalibrationSet

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Agreement:
    """How closely the INT8 path's picked boxes follow the fp32 path's, over `crops` crops."""

    crops: int
    centre_shift_px_median: float
    centre_shift_px_p90: float
    iou_mean: float

    def passes(self, min_iou: float, max_shift_p90: float) -> bool:
        return self.iou_mean >= min_iou and self.centre_shift_px_p90 <= max_shift_p90


class BoxPicker:
    """The tracker's choice of box from search-network outputs, without its per-target state."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.anchors = generate_anchors(manifest.anchors)
        hanning = np.hanning(manifest.anchors.score_size)
        self.window = np.tile(np.outer(hanning, hanning).ravel(), manifest.anchors.anchor_num)

    def __call__(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The picked box, cx, cy, w, h in crop pixels relative to the crop centre."""
        score = foreground_scores(outputs[self.manifest.cls_output])
        boxes = decode_boxes(flatten_loc(outputs[self.manifest.loc_output]), self.anchors)
        influence = self.manifest.tracker.window_influence
        return boxes[int(np.argmax(score * (1.0 - influence) + self.window * influence))]


def compare_boxes(reference: list[np.ndarray], candidate: list[np.ndarray]) -> Agreement:
    shifts = np.array([float(np.hypot(*(a[:2] - b[:2]))) for a, b in zip(reference, candidate)])
    ious = np.array([float(box_iou_cxcywh(b[None], a)[0]) for a, b in zip(reference, candidate)])
    return Agreement(len(shifts), float(np.median(shifts)), float(np.percentile(shifts, 90)), float(ious.mean()))


def search_feeds(role: str, crops: CalibrationSet, manifest: Manifest, network: ModelSession) -> list[Feeds]:
    """The search network's inputs on each crop once `network` (the role's fp32 or INT8 version)
    has done its part: made the template's kernels, or deblurred the search crop."""
    feeds = crops.feeds["search"]
    if role == "template":
        return [dict(f, **network.run(t)) for f, t in zip(feeds, crops.feeds["template"])]
    if role == "deblur":
        image = manifest.search_image_input
        return [dict(f, **{image: network.run(d)[manifest.deblur_output]}) for f, d in zip(feeds, crops.feeds["deblur"])]
    return feeds


def agreement(
    role: str, crops: CalibrationSet, manifest: Manifest, search_fp32: ModelSession, fp32: ModelSession, int8: ModelSession
) -> Agreement:
    """Box agreement between the fp32 path and the path with the `role` network in INT8."""
    pick = BoxPicker(manifest)
    candidate_search = int8 if role == "search" else search_fp32
    reference = [pick(search_fp32.run(f)) for f in search_feeds(role, crops, manifest, fp32)]
    candidate = [pick(candidate_search.run(f)) for f in search_feeds(role, crops, manifest, int8)]
    return compare_boxes(reference, candidate)


@dataclass(frozen=True)
class Speed:
    """fp32 against INT8 over calls made in turn: medians, and per pair (an fp32 call and the INT8
    call right after it) the ratio of their times, so a slow phase of the host cancels out."""

    fp32_ms: float
    int8_ms: float
    speedup: float  # median of the pairs' fp32 / int8 ratios
    faster_share: float  # share of pairs where the INT8 call was the faster


def paired_speed(fp32: ModelSession, int8: ModelSession, feeds: list[Feeds], repeats: int) -> Speed:
    """`repeats` pairs of calls per feed. A feed's first call per session is not timed (a network
    whose weights are inputs may rebuild when they change)."""
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for feed in feeds:
        fp32.run(feed)
        int8.run(feed)
        for _ in range(repeats):
            for name, session in (("fp32", fp32), ("int8", int8)):
                start = time.perf_counter()
                session.run(feed)
                times[name].append((time.perf_counter() - start) * 1e3)
    ratios = np.array(times["fp32"]) / np.array(times["int8"])
    return Speed(
        float(np.median(times["fp32"])), float(np.median(times["int8"])), float(np.median(ratios)), float(np.mean(ratios > 1.0))
    )


def tracking_scores(
    bundle: Bundle, runtime: str, threads: int, precision: str, deblur: DeblurMode | None, clips: list[Path], starts: int = 1
) -> dict[str, float]:
    """Pooled P@15 and S@0.6 of the whole tracker on `clips`, each tracked from `starts` start frames
    (models/evaluation/temporal.py; 1: from its first box only)."""
    pipeline = Pipeline(bundle, get_backend(runtime, threads=threads), precision=precision)
    sequences = temporal_segments([load_sequence(clip) for clip in clips], starts)
    pooled = evaluate(run_dataset(lambda: pipeline.new_tracker(deblur=deblur), sequences), sequences)["pooled"]
    return {"precision@15": pooled["precision@15"], "success@0.6": pooled["success@0.6"]}
