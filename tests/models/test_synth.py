"""The GoPro-style blur synthesiser: determinism, splits, ground truth, blur, OTB files."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from blurtrack.engine.deblur import blur_score
from blurtrack.models import synth


def textured_image(seed: int, h: int = 300, w: int = 420) -> np.ndarray:
    """A grey-green natural-ish texture (smoothed noise at a few scales); never magenta."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w), np.float32)
    for cells in (4, 16, 64):
        acc += cv2.resize(rng.uniform(0, 1, (cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    acc = (acc - acc.min()) / (acc.max() - acc.min())
    g = (40 + 170 * acc).astype(np.uint8)
    return np.dstack([g // 2, g, (g * 0.7).astype(np.uint8)])


def edgy_image(seed: int, h: int = 400, w: int = 500) -> np.ndarray:
    """Many sharp-edged random rectangles and discs: lots of detail for blur to remove."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), 128, np.uint8)
    for _ in range(300):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + int(rng.integers(4, 40)), y + int(rng.integers(4, 40))), colour, -1)
        else:
            cv2.circle(image, (x, y), int(rng.integers(3, 20)), colour, -1)
    return image


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [textured_image(s) for s in range(4)]


def test_render_is_deterministic_by_seed(images):
    a = synth.render_sequence(images, seed=7, n_frames=6)
    b = synth.render_sequence(images, seed=7, n_frames=6)
    c = synth.render_sequence(images, seed=8, n_frames=6)
    assert len(a.frames) == 6 and a.boxes.shape == (6, 4)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.boxes, c.boxes)


def test_frames_and_boxes_are_valid(images):
    for seed in range(6):
        seq = synth.render_sequence(images, seed=seed, n_frames=12, size=(320, 240))
        for frame in seq.frames:
            assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        x, y, w, h = seq.boxes.T
        assert np.all(w > 4) and np.all(h > 4)
        assert np.all(x >= 0) and np.all(y >= 0)
        assert np.all(x + w <= 320 + 1e-6) and np.all(y + h <= 240 + 1e-6)
        assert all(7 <= k <= 13 for k in seq.meta["k"])


def test_box_matches_the_rendered_target(images):
    """With one sub-frame per exposure and a flat magenta target, the box is the magenta mask's box."""
    magenta = np.array([255, 0, 255], np.int32)
    checked = 0
    for seed in range(5):
        seq = synth.render_sequence(images, seed=seed, n_frames=8, k_range=(1, 1), flat_target_color=(255, 0, 255))
        for frame, (x, y, w, h) in zip(seq.frames, seq.boxes):
            dist = np.abs(frame.astype(np.int32) - magenta).sum(axis=2)
            ys, xs = np.nonzero(dist < 200)  # at least half covered by the target (edges are anti-aliased)
            assert len(xs) > 50
            mask_box = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert abs(mask_box[0] - x) <= 1.5 and abs(mask_box[1] - y) <= 1.5
            assert abs(mask_box[0] + mask_box[2] - (x + w)) <= 1.5
            assert abs(mask_box[1] + mask_box[3] - (y + h)) <= 1.5
            checked += 1
    assert checked == 40


def test_box_is_at_the_middle_of_the_smear(images):
    """Blurred exposure: the box centre is the centre of the sharp middle sub-frame's target."""
    seq = synth.render_sequence(images, seed=3, n_frames=6, k_range=(9, 9), flat_target_color=(255, 0, 255), return_sharp=True)
    magenta = np.array([255, 0, 255], np.int32)
    for sharp, (x, y, w, h) in zip(seq.sharp_frames, seq.boxes):
        ys, xs = np.nonzero(np.abs(sharp.astype(np.int32) - magenta).sum(axis=2) < 200)
        assert abs((xs.min() + xs.max() + 1) / 2 - (x + w / 2)) <= 1.5
        assert abs((ys.min() + ys.max() + 1) / 2 - (y + h / 2)) <= 1.5


def test_blur_smears_the_frames(images):
    """Averaging sub-frames lowers sharpness compared with the sharp middle sub-frame."""
    seq = synth.render_sequence(images, seed=11, n_frames=10, return_sharp=True, speed_scale=2.0)
    assert max(seq.meta["smear_px"]) > 10
    blurred = [blur_score(f) for f in seq.frames]
    sharp = [blur_score(f) for f in seq.sharp_frames]
    assert np.mean(blurred) < 0.8 * np.mean(sharp)


def test_sharp_exposure_equals_the_middle_subframe(images):
    """K = 1: the blurred frame is the sharp frame (up to noise)."""
    seq = synth.render_sequence(images, seed=5, n_frames=3, k_range=(1, 1), return_sharp=True)
    for blurred, sharp in zip(seq.frames, seq.sharp_frames):
        assert np.abs(blurred.astype(np.int32) - sharp.astype(np.int32)).mean() < 3.0


def test_blur_pair_shapes_determinism_and_blur():
    image = edgy_image(9)
    b1, s1 = synth.blur_pair(image, np.random.default_rng(3))
    b2, s2 = synth.blur_pair(image, np.random.default_rng(3))
    assert b1.shape == s1.shape == (255, 255, 3) and b1.dtype == np.uint8
    assert np.array_equal(b1, b2) and np.array_equal(s1, s2)
    small_b, small_s = synth.blur_pair(image, np.random.default_rng(4), size=127)
    assert small_b.shape == small_s.shape == (127, 127, 3)
    rng = np.random.default_rng(0)
    drops = []
    for _ in range(20):
        b, s = synth.blur_pair(image, rng)
        drops.append(blur_score(b) < blur_score(s))
    assert sum(drops) >= 14  # a few pairs are meant to be (almost) unblurred


def test_linear_light_round_trip():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(synth.to_srgb_u8(synth.to_linear(values)), values)


def test_splits_are_disjoint_stable_and_proportional(tmp_path):
    for i in range(1000):
        (tmp_path / f"photo_{i:04d}.jpg").touch()
    splits = synth.split_images(tmp_path)
    names = {k: {p.name for p in v} for k, v in splits.items()}
    assert not (names["train"] & names["dev"]) and not (names["train"] & names["test"]) and not (names["dev"] & names["test"])
    assert sum(len(v) for v in names.values()) == 1000
    assert 0.75 < len(names["train"]) / 1000 < 0.85 and 0.06 < len(names["dev"]) / 1000 < 0.14
    assert all(v == sorted(v) for v in splits.values())
    (tmp_path / "photo_new.jpg").touch()  # adding a photo moves no other photo between splits
    again = {k: {p.name for p in v} for k, v in synth.split_images(tmp_path).items()}
    assert all(names[k] <= again[k] for k in names)


def test_missing_photo_folder_says_what_to_do(tmp_path):
    with pytest.raises(synth.ModelNotFoundError, match="BLURTRACK_SHARED_DIR"):
        synth.list_images(tmp_path / "nope")


def test_shared_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BLURTRACK_SHARED_DIR", str(tmp_path))
    assert synth.shared_dir() == tmp_path.resolve()
    assert synth.default_images_dir() == tmp_path.resolve() / "data" / "images"


def test_splits_of_the_shared_photos(shared):
    splits = synth.split_images(shared / "data" / "images")
    sets = [set(v) for v in splits.values()]
    assert all(sets) and not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(splits["train"]) > 5 * len(splits["test"])


def read_otb_groundtruth(path) -> np.ndarray:
    rows = [line.replace("\t", ",").split(",") for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float64)


def test_write_otb_round_trip(images, tmp_path):
    seq = synth.render_sequence(images, seed=2, n_frames=5)
    seq_dir = synth.write_otb(seq, tmp_path, "clip")
    assert seq_dir == tmp_path / "clip"
    gt = read_otb_groundtruth(seq_dir / "groundtruth_rect.txt")
    np.testing.assert_allclose(gt, seq.boxes + [1, 1, 0, 0], atol=0.006)  # OTB: 1-based x, y
    files = sorted((seq_dir / "img").iterdir())
    assert [f.name for f in files] == [f"{i:04d}.jpg" for i in range(1, 6)]
    first = cv2.imread(str(files[0]))
    assert first.shape == seq.frames[0].shape
    assert np.abs(first.astype(np.int32) - seq.frames[0].astype(np.int32)).mean() < 4.0  # JPEG


def _dev_photos(tmp_path):
    """A photo folder with two DEV-split photos (the split follows the file name)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    i = 0
    while len([p for p in photos.iterdir() if synth.split_of(p.name) == "dev"]) < 2:
        cv2.imwrite(str(photos / f"p{i:03d}.jpg"), textured_image(i, 240, 320))
        i += 1
    return photos


def _make_small_split(args):
    """make_split, then what a tracking run does next: read every sequence (name, frames on disk)."""
    out, photos, delay = args
    time.sleep(delay)
    synth.make_split("dev", out, n_sequences=3, seed=1, n_frames=6, size=(320, 240), images_dir=photos)
    return [(g.parent.name, len(list((g.parent / "img").glob("*.jpg")))) for g in sorted(out.glob("*/groundtruth_rect.txt"))]


def test_make_split_side_by_side_renders_once_for_all(tmp_path):
    """Runs started side by side ask for one split at once: none may find it half-written,
    take it for stale and delete it under the others (stop 15 lost a CONFIRM run that way)."""
    import multiprocessing

    photos = _dev_photos(tmp_path)
    out = tmp_path / "dev"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        # staggered, so that later runs arrive while the first one is rendering
        results = pool.map(_make_small_split, [(out, photos, 0.1 * k) for k in range(4)])
    complete = [("synth_dev_000", 6), ("synth_dev_001", 6), ("synth_dev_002", 6)]
    assert results == [complete] * 4
    stamps = [g.stat().st_mtime_ns for g in sorted(out.glob("*/groundtruth_rect.txt"))]
    assert _make_small_split((out, photos, 0)) == complete
    assert [g.stat().st_mtime_ns for g in sorted(out.glob("*/groundtruth_rect.txt"))] == stamps  # reused, not re-rendered


def test_make_split_renders_once_and_reuses(tmp_path):
    photos = _dev_photos(tmp_path)
    out = synth.make_split("dev", tmp_path / "dev", n_sequences=2, seed=1, n_frames=4, size=(320, 240), images_dir=photos)
    gts = sorted(out.glob("*/groundtruth_rect.txt"))
    assert [g.parent.name for g in gts] == ["synth_dev_000", "synth_dev_001"]
    stamps = [g.stat().st_mtime_ns for g in gts]
    again = synth.make_split("dev", tmp_path / "dev", n_sequences=2, seed=1, n_frames=4, size=(320, 240), images_dir=photos)
    assert again == out and [g.stat().st_mtime_ns for g in gts] == stamps
    assert len(read_otb_groundtruth(gts[0])) == 4
    more = synth.make_split("dev", tmp_path / "dev", n_sequences=3, seed=1, n_frames=4, size=(320, 240), images_dir=photos)
    assert [g.stat().st_mtime_ns for g in gts] == stamps  # growing keeps what exists
    assert len(list(more.glob("*/groundtruth_rect.txt"))) == 3
    synth.make_split("dev", tmp_path / "dev", n_sequences=1, seed=2, n_frames=4, size=(320, 240), images_dir=photos)
    assert [p.name for p in sorted((tmp_path / "dev").iterdir()) if p.is_dir()] == ["synth_dev_000"]  # new seed: re-rendered
    assert (tmp_path / "dev" / "synth_dev_000" / "groundtruth_rect.txt").stat().st_mtime_ns != stamps[0]
    with pytest.raises(synth.BlurtrackError, match="unknown split"):
        synth.make_split("validation", tmp_path / "x", 1, images_dir=photos)
