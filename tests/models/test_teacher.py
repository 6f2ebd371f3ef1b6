"""NanoTrack v2 as a distillation teacher: its map lands on our score grid where the target is,
and the distillation loss pulls each cell's best anchor towards it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (pip install -e '.[train]')")

from blurtrack.engine.manifest import AnchorConfig  # noqa: E402
from blurtrack.models.tracker.data import PairConfig  # noqa: E402
from blurtrack.models.tracker.labels import AnchorTarget  # noqa: E402
from blurtrack.models.tracker.real_clips import RealClipPairSampler, pack_clip  # noqa: E402
from blurtrack.models.tracker.teacher import NanoTrackTeacher  # noqa: E402
from blurtrack.models.tracker.training import BatchStream, distill_loss, to_tensor  # noqa: E402

from .pairs import PLAIN  # noqa: E402

GRID = AnchorConfig()


@pytest.fixture(scope="module")
def teacher(shared):
    return NanoTrackTeacher(shared / "peers" / "nanotrack" / "v2", temperature=2.0)


@pytest.fixture(scope="module")
def clips(shared):
    return [pack_clip(shared / "data" / "real-train" / name, every=4) for name in ("Football1", "Couple")]


@pytest.fixture(scope="module")
def pairs(clips):
    sampler = RealClipPairSampler(clips, PLAIN, max_gap=8)
    rng = np.random.default_rng(0)
    return [sampler.sample(rng) for _ in range(24)]


def peak_offset(response: np.ndarray) -> np.ndarray:
    """(dx, dy) in search-crop pixels from the crop centre of a map's highest cell."""
    row, col = np.unravel_index(int(np.argmax(response)), response.shape)
    return (np.array([col, row]) - GRID.score_size // 2) * GRID.stride


def test_the_teacher_peaks_where_the_target_is(teacher, pairs):
    z = to_tensor([p.template for p in pairs]).numpy()
    centred = to_tensor([p.search for p in pairs]).numpy()
    shift = np.array([32, -24])
    moved_images = [
        cv2.warpAffine(p.search, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (255, 255), borderMode=cv2.BORDER_REPLICATE)
        for p in pairs
    ]
    moved = to_tensor(moved_images).numpy()

    maps = teacher.responses(z, centred)
    assert maps.shape == (len(pairs), GRID.score_size, GRID.score_size) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    near_centre = [np.hypot(*peak_offset(m)) <= 16 for m in maps]
    near_shift = [np.hypot(*(peak_offset(m) - shift)) <= 16 for m in teacher.responses(z, moved)]
    assert np.mean(near_centre) >= 0.75 and np.mean(near_shift) >= 0.75, (near_centre, near_shift)


def test_distill_loss_pulls_each_cells_best_anchor_towards_the_teacher():
    k, size = 5, 4
    rng = np.random.default_rng(1)
    cls = torch.tensor(rng.normal(size=(2, 2 * k, size, size)), dtype=torch.float32, requires_grad=True)
    teacher_map = torch.tensor(rng.uniform(size=(2, size, size)), dtype=torch.float32)
    loss = distill_loss(cls, teacher_map, smoothing=0.1)
    loss.backward()
    # only the best anchor of each cell (largest fg - bg) gets a gradient
    diff = (cls[:, k:] - cls[:, :k]).detach()
    best = diff.argmax(dim=1, keepdim=True)
    moved = cls.grad[:, k:].abs() > 0
    assert torch.equal(moved, torch.zeros_like(moved).scatter_(1, best, True))
    # and the loss is smallest where the student already says what the (smoothed) teacher says
    target = 0.1 + 0.8 * teacher_map
    agreeing = torch.zeros(2, 2 * k, size, size)
    agreeing[:, k:] = torch.logit(target)[:, None]
    assert distill_loss(agreeing, teacher_map, 0.1) < loss


def test_the_training_stream_carries_the_teachers_maps(clips, shared):
    sampler = RealClipPairSampler(clips, PairConfig(), max_gap=20)

    def make_teacher():
        return NanoTrackTeacher(shared / "peers" / "nanotrack" / "v2")

    stream = BatchStream(sampler, AnchorTarget(), seed=5, start=0, total=1, batch_size=4, make_teacher=make_teacher)
    [(it, batch)] = list(stream)
    assert it == 0 and len(batch) == 6
    assert batch[5].shape == (4, GRID.score_size, GRID.score_size)
    plain = BatchStream(sampler, AnchorTarget(), seed=5, start=0, total=1, batch_size=4)
    [(_, without)] = list(plain)
    assert len(without) == 5 and all(torch.equal(a, b) for a, b in zip(batch[:5], without, strict=True))
