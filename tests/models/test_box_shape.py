"""scripts/box_shape.py: the box-shape diagnostic behind the model card's aspect study."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "box_shape.py"


@pytest.fixture(scope="module")
def box_shape():
    spec = importlib.util.spec_from_file_location("box_shape", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_box_twice_as_tall_is_reported_so_and_unscored_frames_are_left_out(box_shape):
    gt = np.array([[0, 0, 10, 10], [5, 5, 20, 10], [5, 5, 20, 10], [0, 0, 0, 0]], dtype=float)
    pred = np.array([[0, 0, 99, 1], [5, 0, 20, 20], [5, 0, 20, 20], [0, 0, 50, 1]], dtype=float)
    errors = box_shape.shape_errors(gt, pred)
    # frame 0 is the initialisation and frame 3 has no ground truth: two frames scored
    assert errors["frames"] == 2
    assert errors["w_ratio"] == pytest.approx(1.0)
    assert errors["h_ratio"] == pytest.approx(2.0)
    assert errors["log_aspect_error"] == pytest.approx(-math.log(2.0))
