"""Tracking metrics against hand-computed cases (../shared/EVALUATION.md)."""

import math

import numpy as np
import pytest

from blurtrack.models.evaluation import metrics
from blurtrack.models.evaluation.metrics import FrameScores, score_sequence


def test_center_error_is_euclidean_distance_of_box_centres():
    # centres (5, 5) and (8, 9): a 3-4-5 triangle
    assert metrics.center_errors([[0, 0, 10, 10]], [[3, 4, 10, 10]]) == pytest.approx([5.0])
    # a different size moves the centre: (0,0,10,10) -> (5,5); (0,0,20,10) -> (10,5)
    assert metrics.center_errors([[0, 0, 20, 10]], [[0, 0, 10, 10]]) == pytest.approx([5.0])


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 10, 10], 50 / 150),  # half overlap
        ([0, 0, 10, 10], [2, 2, 5, 5], 25 / 100),  # contained
        ([0, 0, 10, 10], [10, 0, 10, 10], 0.0),  # touching edges
        ([0, 0, 10, 10], [30, 30, 5, 5], 0.0),  # disjoint
        ([0, 0, 0, 10], [0, 0, 10, 10], 0.0),  # prediction without area
    ],
)
def test_iou_hand_computed(pred, gt, expected):
    assert metrics.ious([pred], [gt]) == pytest.approx([expected])


def test_precision_threshold_is_inclusive_and_success_threshold_strict():
    # error exactly 15 counts, just above does not
    assert metrics.precision(np.array([15.0, 15.0001, 3.0]), 15) == pytest.approx(2 / 3)
    # (0,0,10,10) vs (0,0,6,10): IoU exactly 60/100 = 0.6, which is not > 0.6
    iou = metrics.ious([[0, 0, 6, 10]], [[0, 0, 10, 10]])[0]
    assert iou == 0.6
    assert metrics.success(np.array([iou, 0.61, 0.2]), 0.6) == pytest.approx(1 / 3)


def test_first_frame_and_absent_ground_truth_are_not_scored():
    gt = np.array(
        [
            [10, 10, 20, 20],  # first frame: initialisation, never scored
            [10, 10, 20, 20],
            [0, 0, 0, 0],  # absent: w = h = 0
            [5, 5, 0, 10],  # absent: w = 0
            [np.nan] * 4,  # absent: no line
            [12, 10, 20, 20],
        ]
    )
    pred = [(100, 100, 5, 5), (10, 10, 20, 20), (1, 1, 1, 1), (1, 1, 1, 1), (1, 1, 1, 1), (10, 10, 20, 20)]
    scores = score_sequence(pred, gt)
    assert scores.frames == 2
    assert scores.center_errors == pytest.approx([0.0, 2.0])
    assert scores.ious == pytest.approx([1.0, 360 / 440])


def test_missing_predictions_count_as_failures():
    gt = np.tile([10.0, 10.0, 20.0, 20.0], (5, 1))
    # frame 2 has no prediction, frame 3 a non-finite one, frame 4 is past the end of the list
    pred = [(10, 10, 20, 20), (10, 10, 20, 20), None, (np.nan, 1, 2, 3)]
    scores = score_sequence(pred, gt)
    assert scores.frames == 4
    assert scores.center_errors[0] == 0.0 and np.all(np.isinf(scores.center_errors[1:]))
    assert scores.ious.tolist() == [1.0, 0.0, 0.0, 0.0]
    summary = metrics.summarize(scores)
    assert summary["precision@15"] == 0.25
    assert summary["precision@20"] == 0.25
    assert summary["success@0.6"] == 0.25
    # even at the loosest thresholds a missing prediction fails
    assert metrics.precision_curve(scores.center_errors)[-1] == 0.25
    assert metrics.success_curve(scores.ious)[0] == 0.25


def test_auc_is_mean_success_over_21_thresholds():
    assert len(metrics.SUCCESS_THRESHOLDS) == 21
    # perfect tracking passes every threshold but IoU > 1.0: 20/21, as in the OTB toolkit
    assert metrics.auc(np.ones(7)) == pytest.approx(20 / 21)
    # IoU 0.52 passes 0, 0.05, ..., 0.5: 11 thresholds
    assert metrics.auc(np.full(4, 0.52)) == pytest.approx(11 / 21)
    assert metrics.auc(np.zeros(3)) == 0.0
    assert math.isnan(metrics.auc(np.zeros(0)))


def test_curves_cover_0_to_50_px_and_0_to_1_iou():
    scores = FrameScores(center_errors=np.array([0.5, 10.0, 60.0]), ious=np.array([0.9, 0.3, 0.0]))
    c = metrics.curves(scores)
    assert c["precision"]["thresholds_px"] == list(range(51))
    assert c["precision"]["values"][0] == 0.0
    assert c["precision"]["values"][10] == pytest.approx(2 / 3, abs=1e-4)
    assert c["precision"]["values"][50] == pytest.approx(2 / 3, abs=1e-4)
    assert c["success"]["thresholds_iou"][0] == 0.0 and c["success"]["thresholds_iou"][-1] == 1.0
    assert c["success"]["values"][0] == pytest.approx(2 / 3, abs=1e-4)
    assert c["success"]["values"][-1] == 0.0


def test_pooling_weights_every_frame_equally():
    a = FrameScores(center_errors=np.array([0.0]), ious=np.array([1.0]))  # 1 frame, all good
    b = FrameScores(center_errors=np.array([99.0, 99.0, 99.0]), ious=np.zeros(3))  # 3 frames, all bad
    pooled = metrics.summarize(FrameScores.pooled([a, b]))
    assert pooled["scored_frames"] == 4
    assert pooled["precision@15"] == 0.25  # not the mean of per-sequence values (0.5)


def test_empty_scores_summarize_to_null():
    summary = metrics.summarize(FrameScores.pooled([]))
    assert summary["scored_frames"] == 0
    assert summary["precision@15"] is None and summary["auc"] is None


def test_latency_median_and_p95_per_stage():
    timings = [{"track": float(v), "deblur": 2.0} for v in range(1, 101)]
    timings.append({"track": float("nan")})  # ignored
    stats = metrics.latency_stats(timings)
    assert stats["track"]["median"] == pytest.approx(50.5)
    assert stats["track"]["p95"] == pytest.approx(95.05)
    assert stats["track"]["frames"] == 100
    assert stats["deblur"] == {"median": 2.0, "p95": 2.0, "frames": 100}


def test_fps_is_frames_over_seconds():
    assert metrics.fps(100, 2.0) == 50.0
    assert metrics.fps(10, 0.0) is None
