"""Tracking metrics exactly as ../shared/EVALUATION.md defines them.

- Scored frames: every frame after the first (the initialisation), and only where the ground truth
  is present (finite, w > 0 and h > 0).
- A frame without a prediction (None, a non-finite box, or past the end of the predictions) is a
  failure: centre error +inf, IoU 0.
- Boxes are continuous x, y, w, h: centre = (x + w/2, y + h/2), area = w * h. Both metrics are
  invariant to the 0- or 1-based convention as long as prediction and ground truth share it.
- Precision@T: share of scored frames with centre error <= T px (OTB).
- Success@T: share of scored frames with IoU > T, strictly (OTB); AUC: mean success over the 21
  thresholds 0, 0.05, ..., 1.0, so a perfect tracker scores 20/21 as in the OTB toolkit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PRECISION_THRESHOLDS_PX = np.arange(0, 51, dtype=np.float64)  # 0, 1, ..., 50 px
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)  # 0, 0.05, ..., 1.0
PRECISION_AT = (15.0, 20.0)
SUCCESS_AT = 0.6

BoxLike = Sequence[float] | None


def _as_boxes(boxes: Iterable[BoxLike], length: int) -> np.ndarray:
    """(length, 4) float array; NaN rows for None entries and for missing tail entries."""
    out = np.full((length, 4), np.nan)
    for i, box in enumerate(boxes):
        if i >= length:
            break
        if box is not None:
            out[i] = np.asarray(box, dtype=np.float64)[:4]
    return out


def gt_present(gt: np.ndarray) -> np.ndarray:
    """Mask of frames whose ground truth is present: finite with w > 0 and h > 0."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    finite = np.all(np.isfinite(gt), axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (gt[:, 2] > 0) & (gt[:, 3] > 0)


def center_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance between box centres per row; +inf where the prediction is missing."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    pc = pred[:, :2] + pred[:, 2:] / 2.0
    gc = gt[:, :2] + gt[:, 2:] / 2.0
    err = np.hypot(pc[:, 0] - gc[:, 0], pc[:, 1] - gc[:, 1])
    return np.where(np.all(np.isfinite(pred), axis=1), err, np.inf)


def ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Intersection over union per row; 0 where the prediction is missing or has no area."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    valid = np.all(np.isfinite(pred), axis=1)
    p = np.where(valid[:, None], pred, 0.0)
    pw, ph = np.maximum(p[:, 2], 0.0), np.maximum(p[:, 3], 0.0)
    iw = np.maximum(0.0, np.minimum(p[:, 0] + pw, gt[:, 0] + gt[:, 2]) - np.maximum(p[:, 0], gt[:, 0]))
    ih = np.maximum(0.0, np.minimum(p[:, 1] + ph, gt[:, 1] + gt[:, 3]) - np.maximum(p[:, 1], gt[:, 1]))
    inter = iw * ih
    union = pw * ph + gt[:, 2] * gt[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(valid, out, 0.0)


@dataclass(frozen=True)
class FrameScores:
    """Per-frame centre errors and IoUs of the scored frames of one or more sequences."""

    center_errors: np.ndarray
    ious: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.ious.size)

    @classmethod
    def pooled(cls, parts: Iterable[FrameScores]) -> FrameScores:
        parts = list(parts)
        if not parts:
            return cls(np.zeros(0), np.zeros(0))
        return cls(np.concatenate([p.center_errors for p in parts]), np.concatenate([p.ious for p in parts]))


def score_sequence(predictions: Sequence[BoxLike], groundtruth: np.ndarray) -> FrameScores:
    """Score one sequence. `predictions[i]` is the box for frame i (frame 0, the given box, is not
    scored); fewer predictions than frames, None entries and non-finite boxes are failures."""
    gt = np.asarray(groundtruth, dtype=np.float64).reshape(-1, 4)
    pred = _as_boxes(predictions, len(gt))
    scored = gt_present(gt)
    scored[:1] = False  # the first frame initialises the tracker
    return FrameScores(center_errors(pred[scored], gt[scored]), ious(pred[scored], gt[scored]))


def precision(errors: np.ndarray, threshold_px: float) -> float:
    """Share of frames with centre error <= threshold; NaN when no frame is scored."""
    errors = np.asarray(errors, dtype=np.float64)
    return float(np.mean(errors <= threshold_px)) if errors.size else float("nan")


def success(overlaps: np.ndarray, threshold: float) -> float:
    """Share of frames with IoU > threshold (strictly); NaN when no frame is scored."""
    overlaps = np.asarray(overlaps, dtype=np.float64)
    return float(np.mean(overlaps > threshold)) if overlaps.size else float("nan")


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS_PX) -> np.ndarray:
    return np.array([precision(errors, t) for t in thresholds])


def success_curve(overlaps: np.ndarray, thresholds: np.ndarray = SUCCESS_THRESHOLDS) -> np.ndarray:
    return np.array([success(overlaps, t) for t in thresholds])


def auc(overlaps: np.ndarray) -> float:
    """Area under the success curve: mean success over the 21 OTB thresholds 0..1."""
    return float(np.mean(success_curve(overlaps))) if np.asarray(overlaps).size else float("nan")


def summarize(scores: FrameScores) -> dict[str, float | int | None]:
    """The headline numbers; None (JSON null) where no frame is scored."""

    def clean(value: float) -> float | None:
        return None if np.isnan(value) else round(value, 4)

    out: dict[str, float | int | None] = {"scored_frames": scores.frames}
    for t in PRECISION_AT:
        out[f"precision@{t:g}"] = clean(precision(scores.center_errors, t))
    out[f"success@{SUCCESS_AT:g}"] = clean(success(scores.ious, SUCCESS_AT))
    out["auc"] = clean(auc(scores.ious))
    return out


def curves(scores: FrameScores) -> dict[str, dict[str, list[Any]]]:
    """Precision (0..50 px) and success (IoU 0..1) curves, ready for JSON."""

    def as_list(values: np.ndarray) -> list[float | None]:
        return [None if np.isnan(v) else round(float(v), 4) for v in values]

    return {
        "precision": {
            "thresholds_px": PRECISION_THRESHOLDS_PX.tolist(),
            "values": as_list(precision_curve(scores.center_errors)),
        },
        "success": {
            "thresholds_iou": [round(float(t), 2) for t in SUCCESS_THRESHOLDS],
            "values": as_list(success_curve(scores.ious)),
        },
    }


def latency_stats(timings: Iterable[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median and p95 in ms per stage over the frames that report that stage."""
    per_stage: dict[str, list[float]] = {}
    for frame in timings:
        for stage, ms in frame.items():
            if ms is not None and np.isfinite(ms):
                per_stage.setdefault(stage, []).append(float(ms))
    return {
        stage: {
            "median": round(float(np.median(values)), 3),
            "p95": round(float(np.percentile(values, 95)), 3),
            "frames": len(values),
        }
        for stage, values in per_stage.items()
    }


def fps(frames: int, seconds: float) -> float | None:
    return round(frames / seconds, 2) if seconds > 0 else None
