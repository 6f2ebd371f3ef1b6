import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blurtrack.engine.errors import InvalidBoxError
from blurtrack.engine.geometry import Box, context_size, crop_square, crop_to_frame, damp_aspect_change, iou, parse_box


def test_context_size_hand_computed():
    # w=40, h=20, p=(40+20)/2=30 -> sqrt(70*50)
    assert context_size(40, 20, 0.5) == pytest.approx(math.sqrt(70 * 50))


def test_crop_maps_centre_and_scale():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[50, 120] = 255  # one bright pixel
    crop = crop_square(frame, (120, 50), side=11, out_size=11, pad_value=(0, 0, 0))
    assert crop[5, 5].tolist() == [255, 255, 255]
    assert crop.sum() == 3 * 255
    # 2x magnification: the pixel one to the right lands two crop pixels right of the centre
    frame[50, 121] = 128
    crop = crop_square(frame, (120, 50), side=10.5, out_size=21, pad_value=(0, 0, 0))
    assert crop[10, 12].tolist() == [128, 128, 128]


def test_crop_pads_with_given_mean():
    frame = np.full((50, 50, 3), 200, np.uint8)
    crop = crop_square(frame, (0, 0), side=50, out_size=51, pad_value=(10, 20, 30))
    assert crop[0, 0].tolist() == [10, 20, 30]
    assert crop[-1, -1].tolist() == [200, 200, 200]


@settings(max_examples=60, deadline=None)
@given(
    cx=st.floats(-50, 400),
    cy=st.floats(-50, 300),
    side=st.floats(5, 500),
    out=st.sampled_from([127, 255]),
    px=st.floats(0, 126),
    py=st.floats(0, 126),
)
def test_crop_to_frame_inverts_crop_mapping(cx, cy, side, out, px, py):
    fx, fy = crop_to_frame((px, py), (cx, cy), side, out)
    scale = out / side
    c = (out - 1) / 2
    assert scale * (fx - cx) + c == pytest.approx(px, abs=1e-6)
    assert scale * (fy - cy) + c == pytest.approx(py, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(x=st.integers(5, 60), y=st.integers(5, 60))
def test_crop_round_trip_finds_marked_pixel(x, y):
    frame = np.zeros((80, 80, 3), np.uint8)
    frame[y, x] = 255
    centre = (40.0, 40.0)
    crop = crop_square(frame, centre, side=80, out_size=161, pad_value=(0, 0, 0))
    py, px = np.unravel_index(np.argmax(crop[:, :, 0]), crop.shape[:2])
    fx, fy = crop_to_frame((px, py), centre, 80, 161)
    assert abs(fx - x) <= 0.5 and abs(fy - y) <= 0.5


@pytest.mark.parametrize(
    "value, message",
    [
        ("1,2,3", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("10,10,0,5", "positive"),
        ("10,10,5,-1", "positive"),
        ("nan,1,2,3", "finite"),
        ("500,10,20,20", "outside"),
        ("-30,10,20,20", "outside"),
    ],
)
def test_bad_boxes_are_rejected_with_a_message(value, message):
    with pytest.raises(InvalidBoxError, match=message):
        parse_box(value, (100, 200, 3))


def test_box_parsing_accepts_strings_and_sequences():
    assert parse_box("1, 2, 3, 4") == Box(1, 2, 3, 4)
    assert parse_box([1, 2, 3, 4], (10, 10)) == Box(1, 2, 3, 4)
    assert parse_box("1 2 3 4") == Box(1, 2, 3, 4)


def test_iou_hand_computed():
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0.0
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0


@settings(max_examples=40, deadline=None)
@given(
    pixels=st.binary(min_size=4 * 5 * 3, max_size=4 * 5 * 3),
    color=st.sampled_from(["bgr", "rgb"]),
    mean=st.lists(st.floats(0, 200), min_size=3, max_size=3),
    std=st.lists(st.floats(0.5, 100), min_size=3, max_size=3),
)
def test_preprocess_to_image_inverts_to_input(pixels, color, mean, std):
    """The crop the tracker shows (`keep_crops`) and the deblurred training crops both come back
    through Preprocess.to_image: it must undo to_input for every colour order and normalisation."""
    from blurtrack.engine.manifest import Preprocess

    crop = np.frombuffer(pixels, np.uint8).reshape(4, 5, 3)
    pre = Preprocess(color=color, mean=mean, std=std)
    tensor = pre.to_input(crop)
    assert tensor.shape == (1, 3, 4, 5) and tensor.dtype == np.float32
    assert np.array_equal(pre.to_image(tensor), crop)


sides = st.floats(1.0, 1000.0)


@given(sides, sides, sides, sides, st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_damp_aspect_change_keeps_the_new_area_and_moves_the_shape_part_way(w0, h0, w1, h1, pace):
    old, new = np.array([w0, h0]), np.array([w1, h1])
    damped = damp_aspect_change(old, new, pace)
    assert damped[0] * damped[1] == pytest.approx(w1 * h1, rel=1e-9)
    log_old, log_new, log_damped = math.log(w0 / h0), math.log(w1 / h1), math.log(damped[0] / damped[1])
    assert log_damped == pytest.approx(log_old + pace * (log_new - log_old), abs=1e-9)


def test_damp_aspect_change_ends():
    old, new = np.array([30.0, 60.0]), np.array([50.0, 40.0])
    np.testing.assert_allclose(damp_aspect_change(old, new, 1.0), new)
    np.testing.assert_allclose(damp_aspect_change(old, new, 0.0), [np.sqrt(1000.0), np.sqrt(4000.0)])  # 2000 px, w / h 1 / 2
