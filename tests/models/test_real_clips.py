"""Training on real video: packed clips give pairs whose box is where the target is, the pack
survives its file, the training stream does not depend on the loader's worker count, and a run's
file for the GPU machine keeps its latest snapshots under the size cap."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (pip install -e '.[train]')")

from blurtrack.engine.geometry import crop_square  # noqa: E402
from blurtrack.engine.otb import load_sequence  # noqa: E402
from blurtrack.models.tracker.collect import collect_run  # noqa: E402
from blurtrack.models.tracker.data import EXEMPLAR, INSTANCE, PairConfig  # noqa: E402
from blurtrack.models.tracker.labels import AnchorTarget  # noqa: E402
from blurtrack.models.tracker.real_clips import REGION_PX, RealClipPairSampler, load_pack, pack_clip, save_pack  # noqa: E402
from blurtrack.models.tracker.training import BatchStream, save_checkpoint  # noqa: E402

from .pairs import PLAIN  # noqa: E402


@pytest.fixture(scope="module")
def clips(shared):
    real = shared / "data" / "real-train"
    return [pack_clip(real / "Football1", every=4), pack_clip(real / "Couple", every=8)]


def test_a_plain_pair_has_the_target_centred_at_the_search_scale(clips):
    sampler = RealClipPairSampler(clips, PLAIN)
    rng = np.random.default_rng(0)
    for _ in range(10):
        pair = sampler.sample(rng)
        assert pair.template.shape == (EXEMPLAR, EXEMPLAR, 3) and pair.search.shape == (INSTANCE, INSTANCE, 3)
        cx, cy, w, h = pair.box
        assert abs(cx) < 1e-3 and abs(cy) < 1e-3
        # the search side is s_z * 255 / 127 with s_z = sqrt((w + p)(h + p)), p = (w + h) / 2
        pad = (w + h) / 2
        assert np.sqrt((w + pad) * (h + pad)) == pytest.approx(EXEMPLAR, rel=1e-3)


def test_a_region_is_the_frame_around_its_target(shared, clips):
    clip = clips[0]
    k = 3
    cx, cy, scale = clip.origins[k]
    frame = load_sequence(shared / "data" / "real-train" / "Football1").read_frame(int(clip.frames[k]))
    direct = crop_square(frame, (cx, cy), REGION_PX / scale, REGION_PX, frame.reshape(-1, 3).mean(0))
    stored = RealClipPairSampler(clips).region(0, k)
    assert np.abs(direct.astype(np.float32) - stored).mean() < 3.0  # JPEG q90's error only
    gt_x, gt_y, w, h = load_sequence(shared / "data" / "real-train" / "Football1").groundtruth[clip.frames[k]]
    assert (cx, cy) == pytest.approx((gt_x - 1 + w / 2, gt_y - 1 + h / 2))  # OTB is 1-based


def test_negatives_come_from_another_clip(clips):
    sampler = RealClipPairSampler(clips, PairConfig(neg_prob=1.0))
    pair = sampler.sample(np.random.default_rng(1))
    assert pair.negative


def test_a_pack_reads_back_as_written(clips, tmp_path):
    save_pack(clips, tmp_path / "pack.npz")
    loaded = load_pack(tmp_path / "pack.npz")
    assert [c.name for c in loaded] == [c.name for c in clips]
    for a, b in zip(loaded, clips):
        assert a.regions == b.regions
        assert np.array_equal(a.frames, b.frames) and np.allclose(a.origins, b.origins)
        assert np.array_equal(np.isnan(a.boxes), np.isnan(b.boxes))


def test_the_training_stream_is_the_same_with_any_number_of_loader_workers(clips):
    stream = BatchStream(RealClipPairSampler(clips, PairConfig()), AnchorTarget(), seed=3, start=0, total=4, batch_size=2)

    def batches(workers: int):
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
        return list(loader)

    alone, shared_out = batches(0), batches(2)
    assert [it for it, _ in alone] == [it for it, _ in shared_out] == [0, 1, 2, 3]
    for (_, a), (_, b) in zip(alone, shared_out):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
        assert a[0].dtype == torch.uint8  # crops travel as bytes, a quarter of float32's


def test_a_run_file_keeps_the_latest_snapshots_under_its_size_cap(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = {"w": torch.zeros(1000)}  # 4,000 bytes per snapshot
    for it in (10, 20, 30, 40):
        save_checkpoint(run / f"snapshot_{it:06d}.pt", model=model, iteration=it, config={"name": "x"}, seed=1, metrics={})
    assert sorted(collect_run(run, 0.0, 9000)["snapshots"]) == [30, 40]
    assert sorted(collect_run(run, 0.5, 1e9)["snapshots"]) == [20, 30, 40]
