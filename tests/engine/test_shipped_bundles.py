"""The bundles shipped in models/weights: complete, the same numbers on both runtimes, and they
follow a real blurred clip on the default runtime (MindSpore Lite)."""

from __future__ import annotations

import numpy as np
import pytest

from blurtrack.engine.geometry import context_size, crop_square
from blurtrack.engine.manifest import load_bundle
from blurtrack.engine.otb import find_sequences
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend
from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend
from blurtrack.engine.settings import get_engine_settings
from blurtrack.models.evaluation.metrics import ious

SHIPPED = ["blurtrack-effnet-eca", "blurtrack-effnet-noeca", "blurtrack-alexnet"]
# Whole networks, float32, different kernels per runtime: outputs agree to about 1e-5 of their
# magnitude; 1e-3 of it still catches a wrong weight, layout or conversion.
REL_TOL = 1e-3


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    scale = float(np.abs(expected).max())
    assert scale > 0, "degenerate network output"
    np.testing.assert_allclose(actual, expected, rtol=0, atol=REL_TOL * scale)


@pytest.fixture(scope="module")
def clip(shared):
    return find_sequences(shared / "data" / "real")[0]


def test_the_default_bundle_is_one_of_the_shipped_ones_and_each_is_complete():
    assert get_engine_settings().bundle in SHIPPED
    for name in SHIPPED:
        bundle = load_bundle(name)
        assert bundle.has_ms_files(), f"{name}: run `blurtrack models convert {name}`"
        for spec in bundle.manifest.networks().values():
            assert bundle.path(spec.onnx).is_file()
    assert load_bundle("blurtrack-effnet-eca").manifest.deblur is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_mindspore_lite_and_onnx_runtime_give_the_same_outputs(name, clip, mslite_runtime):
    bundle = load_bundle(name)
    m = bundle.manifest
    ms, ort = MindSporeLiteBackend(threads=1), OnnxRuntimeBackend(threads=1)

    def both(spec, inputs):
        a = ms.load(bundle.path(spec.ms)).run(inputs)
        b = ort.load(bundle.path(spec.onnx)).run(inputs)
        for key in b:
            assert_close(a[key], b[key])
        return b

    frame = clip.read_frame(0)
    x, y, w, h = clip.init_box
    centre = (x + w / 2, y + h / 2)
    side = context_size(w, h, m.tracker.context_amount)  # the exemplar crop, as the tracker takes it
    template = m.preprocess.to_input(crop_square(frame, centre, side, m.tracker.exemplar_size, frame.mean((0, 1))))
    search = m.preprocess.to_input(crop_square(frame, centre, side * 2, m.tracker.instance_size, frame.mean((0, 1))))
    kernels = both(m.template, {m.template_image_input: template})
    both(m.search, {m.search_image_input: search, **kernels})
    if m.deblur is not None:
        both(m.deblur, {m.deblur_image_input: search})


@pytest.mark.parametrize("name", SHIPPED)
def test_one_mindspore_lite_search_network_follows_a_change_of_template(name, clip, mslite_runtime):
    # The search networks are converted with fusion on; Lite still keeps the first template's
    # packed kernels unless the session rebuilds the model when they change.
    bundle = load_bundle(name)
    m = bundle.manifest
    ms, ort = MindSporeLiteBackend(threads=1), OnnxRuntimeBackend(threads=1)
    template_net, search_ort = ort.load(bundle.path(m.template.onnx)), ort.load(bundle.path(m.search.onnx))
    search_ms = ms.load(bundle.path(m.search.ms), weight_inputs=[t.name for t in m.template.outputs])
    frame = clip.read_frame(0)
    mean = frame.mean((0, 1))
    search = m.preprocess.to_input(crop_square(frame, (160.0, 120.0), 200.0, m.tracker.instance_size, mean))
    for centre in ((100.0, 80.0), (220.0, 150.0)):
        template = m.preprocess.to_input(crop_square(frame, centre, 60.0, m.tracker.exemplar_size, mean))
        kernels = template_net.run({m.template_image_input: template})
        want = search_ort.run({m.search_image_input: search, **kernels})
        got = search_ms.run({m.search_image_input: search, **kernels})
        for key in want:
            assert_close(got[key], want[key])


@pytest.mark.parametrize("name", SHIPPED)
def test_the_bundle_follows_a_real_blurred_clip(name, clip, mslite_runtime):
    tracker = Pipeline.from_bundle(name, backend="mslite", threads=1).new_tracker()
    tracker.init(clip.read_frame(0), tuple(clip.init_box))
    boxes = [tracker.track(clip.read_frame(i)).box for i in range(1, len(clip))]
    overlap = ious(np.asarray(boxes, dtype=np.float64), np.asarray(clip.groundtruth[1:], dtype=np.float64))
    assert np.median(overlap) > 0.5, f"{name} lost {clip.name}: median IoU {np.median(overlap):.2f}"
