import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from blurtrack.engine.anchors import (
    base_anchor_sizes,
    decode_boxes,
    encode_boxes,
    flatten_loc,
    foreground_scores,
    generate_anchors,
    vote_box,
)
from blurtrack.engine.manifest import AnchorConfig


def test_base_anchor_sizes_hand_computed():
    # stride 8 -> area 64; ratio 0.33: w = int(sqrt(64/0.33)) = 13, h = int(13*0.33) = 4; x scale 8
    sizes = base_anchor_sizes(8, [0.33, 0.5, 1, 2, 3], [8])
    assert sizes.tolist() == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]


def test_anchor_grid_is_centred_and_anchor_major():
    anchors = generate_anchors(AnchorConfig(score_size=25))
    assert anchors.shape == (5 * 25 * 25, 4)
    # first anchor: ratio 0.33 at the top-left cell, -(25 // 2) * 8 = -96
    assert anchors[0].tolist() == [-96, -96, 104, 32]
    # the centre cell of every anchor type sits on the crop centre
    centre = 12 * 25 + 12
    for a in range(5):
        assert anchors[a * 625 + centre, :2].tolist() == [0, 0]
    # index a*S*S + row*S + col: one step in col moves x by the stride
    assert anchors[1, 0] - anchors[0, 0] == 8
    assert anchors[25, 1] - anchors[0, 1] == 8


def test_decode_hand_computed():
    anchors = np.array([[10.0, -20.0, 64.0, 32.0]], np.float32)
    deltas = np.array([[0.5, -0.25, np.log(2.0), 0.0]], np.float32)
    box = decode_boxes(deltas, anchors)[0]
    assert box.tolist() == pytest.approx([10 + 32, -20 - 8, 128, 32])


@settings(max_examples=50, deadline=None)
@given(
    boxes=arrays(np.float32, (6, 4), elements=st.floats(1, 300, width=32)),
    anchors=arrays(np.float32, (6, 4), elements=st.floats(1, 300, width=32)),
)
def test_encode_decode_round_trip(boxes, anchors):
    np.testing.assert_allclose(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes, rtol=1e-4, atol=1e-3)


def test_output_layouts_follow_pysot():
    k, s = 5, 3
    cls = np.zeros((1, 2 * k, s, s), np.float32)
    cls[0, k + 2, 1, 1] = 4.0  # foreground logit of anchor 2 at row 1, col 1
    scores = foreground_scores(cls)
    assert scores.shape == (k * s * s,)
    assert scores[2 * s * s + 1 * s + 1] == pytest.approx(1 / (1 + np.exp(-4.0)))
    assert scores[0] == pytest.approx(0.5)
    loc = np.zeros((1, 4 * k, s, s), np.float32)
    loc[0, 3 * k + 2, 1, 1] = 7.0  # dh of the same anchor
    assert flatten_loc(loc)[2 * s * s + 4].tolist() == [0, 0, 0, 7]


def test_vote_box_averages_the_overlapping_boxes_by_weight():
    boxes = np.array([[0, 0, 40, 40], [4, 0, 40, 40], [200, 200, 40, 40]], np.float32)
    weights = np.array([3.0, 1.0, 100.0], np.float32)
    # IoU of the first two is 36/44 = 0.82; the far box (weight 100) does not overlap and has no say
    assert vote_box(boxes, weights, 0, 0.6).tolist() == pytest.approx([1, 0, 40, 40])
    # above their overlap, only the best box is left
    assert vote_box(boxes, weights, 0, 0.9).tolist() == pytest.approx([0, 0, 40, 40])


def test_vote_box_keeps_the_best_box_when_no_weight_is_left():
    boxes = np.array([[0, 0, 40, 40], [2, 0, 40, 40]], np.float32)
    assert vote_box(boxes, np.zeros(2, np.float32), 1, 0.5).tolist() == [2, 0, 40, 40]


@settings(max_examples=50, deadline=None)
@given(
    boxes=arrays(np.float32, (8, 4), elements=st.floats(1, 100, width=32)),
    weights=arrays(np.float32, (8,), elements=st.floats(0.125, 1, width=32)),
    best=st.integers(0, 7),
    min_iou=st.floats(0.05, 1.0),
)
def test_vote_box_stays_within_the_voters(boxes, weights, best, min_iou):
    voted = vote_box(boxes, weights, best, min_iou)
    # a weighted mean lies between the smallest and largest value of each coordinate
    assert np.all(voted >= boxes.min(axis=0) - 1e-3) and np.all(voted <= boxes.max(axis=0) + 1e-3)
