"""Training on deblurred input: the engine's gate and deblur network applied to training pairs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from blurtrack.engine.deblur import blur_score
from blurtrack.models.tracker.data import Pair
from blurtrack.models.tracker.deblur_input import DeblurredInput


class FixedPairs:
    """A sampler that hands out the same pair every time."""

    def __init__(self, template: np.ndarray, search: np.ndarray):
        self.pair = Pair(template=template, search=search, box=np.array([3, -2, 40, 30], np.float32), negative=False)

    def sample(self, rng):
        return self.pair


def _textured(side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def _blurry(side: int, seed: int) -> np.ndarray:
    return cv2.GaussianBlur(_textured(side, seed), (0, 0), 6)


def test_gated_crops_go_through_the_bundles_deblur_network_and_sharp_ones_do_not(test_bundle):
    sharp_t, sharp_s, blurry_t, blurry_s = _textured(127, 0), _textured(255, 1), _blurry(127, 2), _blurry(255, 3)
    assert blur_score(sharp_s) > 150 > blur_score(blurry_s)  # the test bundle's gate threshold

    untouched = DeblurredInput(FixedPairs(sharp_t, sharp_s), test_bundle)
    pair = untouched.sample(np.random.default_rng(0))
    assert np.array_equal(pair.template, sharp_t) and np.array_equal(pair.search, sharp_s)
    assert untouched.counts == {"search": 0, "template": 0, "pairs": 1}

    deblurred = DeblurredInput(FixedPairs(blurry_t, blurry_s), test_bundle)
    pair = deblurred.sample(np.random.default_rng(0))
    assert deblurred.counts == {"search": 1, "template": 1, "pairs": 1}
    assert pair.search.shape == blurry_s.shape and pair.search.dtype == np.uint8
    assert pair.template.shape == blurry_t.shape and pair.template.dtype == np.uint8
    # the test bundle's deblurrer is an unsharp mask: it raises the edge energy the gate measures
    assert blur_score(pair.search) > blur_score(blurry_s)
    assert blur_score(pair.template) > blur_score(blurry_t)
    assert np.array_equal(pair.box, [3, -2, 40, 30]) and not pair.negative


def test_a_bundle_without_a_deblur_network_is_refused(tmp_path, test_bundle):
    manifest = json.loads((test_bundle / "manifest.json").read_text())
    manifest.pop("deblur")
    bundle = tmp_path / "no-deblur"
    bundle.mkdir()
    for f in test_bundle.iterdir():
        if f.name != "manifest.json":
            (bundle / f.name).write_bytes(f.read_bytes())
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="no deblur network"):
        DeblurredInput(FixedPairs(_textured(127, 0), _textured(255, 1)), bundle)


def test_scale_calibration_sees_the_same_deblurred_input_as_training(tmp_path, test_bundle):
    """Export's --calibrate-scale measures on DEV pairs; for a tracker trained with deblur_input it
    must measure on deblurred pairs too: same pairs (same seed), blurry search crops rewritten."""
    pytest.importorskip("torch")
    from blurtrack.models.tracker.calibrate import calibration_batches

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):  # blurry textured stand-ins for photos; the split hashes file names
        cv2.imwrite(
            str(images / f"photo_{i:03d}.jpg"), cv2.GaussianBlur(rng.integers(0, 255, (160, 200, 3), dtype=np.uint8), (0, 0), 4)
        )
    raw = calibration_batches(images, None, seed=2, batches=1, batch_size=4)
    deblurred = calibration_batches(images, None, seed=2, batches=1, batch_size=4, deblur_bundle=test_bundle)
    raw_search, new_search = raw[0][1].numpy(), deblurred[0][1].numpy()
    assert raw_search.shape == new_search.shape == (4, 3, 255, 255)
    assert np.array_equal(raw[0][5], deblurred[0][5])  # the same pairs and boxes
    changed = [not np.array_equal(a, b) for a, b in zip(raw_search, new_search)]
    assert any(changed)
