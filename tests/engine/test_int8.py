"""INT8 networks: the hand-made test bundle calibrated on a few real frames, built the way
`blurtrack models convert` builds it on every machine, run on both runtimes against fp32; the
manifest's precision fields; which file a pipeline loads at each precision."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from blurtrack.engine.errors import ModelNotFoundError
from blurtrack.engine.manifest import Int8Spec, Manifest, PrecisionChoice, load_bundle
from blurtrack.engine.otb import load_sequence
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime.int8 import build_int8, build_int8_onnx
from blurtrack.engine.runtime.mslite.detect import runtime_status
from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend
from blurtrack.models.evaluation.splits import split_dirs
from blurtrack.models.quantization.calibration import collect
from blurtrack.models.quantization.command import calibrate
from blurtrack.models.testbundle import build_test_bundle
from tests.conftest import require_mslite

# Error power at most 1 % of the signal's. One 8-bit step per tensor alone leaves ~48 dB; the test
# bundle's template and search chain five quantised tensors (convolution, |.|, pooling, ...), and the
# shipped search network ends at 20-30 dB. A wrong scale, zero point or kernel range lands near 0 dB.
MIN_SQNR_DB = 20.0


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    noise = float(np.sum((reference - candidate) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(float(np.sum(reference**2)) / noise)


@pytest.fixture(scope="module")
def quantized(shared, tmp_path_factory) -> Path:
    """The test bundle with INT8 versions: ranges from 3 frame pairs of each of two train clips.
    The search network's local-energy normalisation stays fp32 (see models/testbundle.py)."""
    root = build_test_bundle(tmp_path_factory.mktemp("int8") / "bundle")
    bundle = load_bundle(root)
    crops = collect(bundle, split_dirs(shared / "data" / "real-train", "train")[:2], per_clip=3)
    for role, net in bundle.manifest.networks().items():
        calibrate(bundle, role, net, crops, keep_float=("energy/",))
    bundle.save()
    if runtime_status().available:  # what `blurtrack models convert` does: fp32 .ms, then the INT8 files
        from blurtrack.engine.runtime.mslite.convert import convert_bundle

        convert_bundle(bundle)
    build_int8(bundle, mslite=runtime_status().available)
    return root


@pytest.fixture(scope="module")
def select_crops(shared, quantized):
    """Crops of a clip calibration never saw."""
    return collect(load_bundle(quantized), split_dirs(shared / "data" / "real-train", "select")[:1], per_clip=4)


def test_int8_onnx_is_quantized_and_keeps_the_correlation_float(quantized):
    graph = onnx.load(str(quantized / "search.int8.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights, "no convolution weight was stored as int8"
    # The correlation's weight is the template's features, fed as an input: its range changes with
    # every target, so it is never given a calibrated range (it stays a float input of the Conv).
    correlation = next(node for node in graph.node if node.op_type == "Conv" and node.name == "Conv_4")
    producers = {out: node.op_type for node in graph.node for out in node.output}
    assert producers.get(correlation.input[1]) == "Reshape"


@pytest.mark.parametrize("role", ["template", "search", "deblur"])
def test_int8_onnx_runtime_outputs_stay_close_to_fp32(quantized, select_crops, role):
    bundle = load_bundle(quantized)
    net = bundle.manifest.networks()[role]
    assert net.int8 is not None
    backend = OnnxRuntimeBackend(threads=1)
    fp32, int8 = backend.load(bundle.path(net.onnx)), backend.load(bundle.path(net.int8.onnx))
    for feed in select_crops.feeds[role]:
        want, got = fp32.run(feed), int8.run(feed)
        for name in want:
            assert sqnr_db(want[name], got[name]) >= MIN_SQNR_DB, f"{role} output {name}"


@pytest.mark.parametrize("role", ["template", "search", "deblur"])
def test_int8_mindspore_lite_runs_and_stays_close_to_fp32(quantized, select_crops, role):
    require_mslite()
    from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend

    bundle = load_bundle(quantized)
    net = bundle.manifest.networks()[role]
    assert net.int8 is not None and net.int8.ms is not None and net.ms is not None
    backend = MindSporeLiteBackend(threads=1)
    kernels = [t.name for t in bundle.manifest.template.outputs] if role == "search" else []
    fp32 = backend.load(bundle.path(net.ms), weight_inputs=kernels)
    int8 = backend.load(bundle.path(net.int8.ms), weight_inputs=kernels)
    for feed in select_crops.feeds[role]:
        want, got = fp32.run(feed), int8.run(feed)
        for name in want:
            assert sqnr_db(want[name], got[name]) >= MIN_SQNR_DB, f"{role} output {name}"


def test_shipped_search_network_int8_mindspore_lite_is_smaller_and_close(shared):
    """The test bundle's weights are all under the size Lite quantises (its int8 .ms files equal
    the fp32 ones); the shipped search network's are not."""
    require_mslite()
    from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend

    bundle = load_bundle("blurtrack-effnet-eca")
    net = bundle.manifest.search
    if net.int8 is None or net.int8.ms is None or not bundle.path(net.int8.ms).is_file():
        pytest.skip("the shipped bundle's INT8 MindSpore Lite files are not built (`make setup` builds them)")
    assert net.ms is not None
    assert bundle.path(net.int8.ms).stat().st_size < 0.5 * bundle.path(net.ms).stat().st_size
    crops = collect(bundle, split_dirs(shared / "data" / "real-train", "select")[:1], per_clip=3)
    backend = MindSporeLiteBackend(threads=1)
    kernels = [t.name for t in bundle.manifest.template.outputs]
    fp32 = backend.load(bundle.path(net.ms), weight_inputs=kernels)
    int8 = backend.load(bundle.path(net.int8.ms), weight_inputs=kernels)
    for feed in crops.feeds["search"]:
        want, got = fp32.run(feed), int8.run(feed)
        for name in want:
            assert sqnr_db(want[name], got[name]) >= MIN_SQNR_DB, name


def test_rebuilding_needs_no_data_and_is_skipped_when_up_to_date(quantized, tmp_path):
    copy = shutil.copytree(quantized, tmp_path / "copy")
    net = load_bundle(copy).manifest.search
    assert net.int8 is not None
    out = copy / net.int8.onnx
    out.unlink()
    args = (copy / net.onnx, copy / net.int8.calibration, out, net.int8.float_nodes)
    assert build_int8_onnx(*args) is True
    assert build_int8_onnx(*args) is False  # same inputs: kept
    assert onnx.load(str(out)).graph == onnx.load(str(quantized / net.int8.onnx)).graph
    assert build_int8_onnx(args[0], args[1], out, []) is True  # other float nodes: rebuilt


def test_manifest_round_trips_the_precision_fields(test_bundle):
    manifest = load_bundle(test_bundle).manifest
    manifest.search.int8 = Int8Spec(calibration="s.json", onnx="s.int8.onnx", ms="s.int8.ms", float_nodes=["Conv_4"])
    manifest.search.precision = PrecisionChoice(onnxruntime="int8", mslite="fp32", measured={"onnxruntime": {"speedup": 1.4}})
    again = Manifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest
    assert again.search.precision.for_runtime("onnxruntime") == "int8"
    assert again.search.file("onnx", "int8") == "s.int8.onnx" and again.search.file("ms", "fp32") == manifest.search.ms
    assert again.template.int8 is None and again.template.file("onnx", "int8") is None


def test_pipeline_loads_each_network_at_the_chosen_precision(quantized, tmp_path):
    root = shutil.copytree(quantized, tmp_path / "bundle")
    bundle = load_bundle(root)
    bundle.manifest.search.precision.onnxruntime = "int8"
    bundle.save()
    auto = Pipeline.from_bundle(root, backend="onnxruntime", precision="auto")
    assert auto.precisions == {"template": "fp32", "search": "int8", "deblur": "fp32"}
    assert Pipeline.from_bundle(root, backend="onnxruntime", precision="int8").precisions["template"] == "int8"
    assert set(Pipeline.from_bundle(root, backend="onnxruntime", precision="fp32").precisions.values()) == {"fp32"}

    (root / "search.int8.onnx").unlink()  # chosen but not built here: auto runs fp32, int8 says what to do
    assert Pipeline.from_bundle(root, backend="onnxruntime").precisions["search"] == "fp32"
    with pytest.raises(ModelNotFoundError, match="blurtrack models convert"):
        Pipeline.from_bundle(root, backend="onnxruntime", precision="int8")


def test_int8_on_a_bundle_without_int8_versions_says_how_to_make_them(test_bundle):
    with pytest.raises(ModelNotFoundError, match="blurtrack models quantize"):
        Pipeline.from_bundle(test_bundle, backend="onnxruntime", precision="int8")


def test_shipped_bundle_tracks_at_int8_on_mindspore_lite_with_the_shared_search_parts(shared, caplog):
    """`--precision int8` on Lite loads the INT8 search network's parts (features shared, a head per
    target) and follows the fp32 path on a real clip's first frames (MotorRolling's fast motion
    parts them after a few frames: any change of the networks' outputs moves where)."""
    require_mslite()
    bundle = load_bundle("blurtrack-effnet-eca")
    net = bundle.manifest.search
    if net.int8 is None or net.int8.ms is None or not bundle.path(net.int8.ms).is_file():
        pytest.skip("the shipped bundle's INT8 MindSpore Lite files are not built (`make setup` builds them)")
    clip = load_sequence(shared / "data" / "real-train" / "bag")  # a steady train clip: paths can agree
    paths = {}
    for precision in ("fp32", "int8"):
        with caplog.at_level("WARNING"):
            pipeline = Pipeline.from_bundle(bundle.root, backend="mslite", threads=1, precision=precision)
        assert set(pipeline.precisions.values()) == {precision}
        tracker = pipeline.new_tracker(deblur="off")
        tracker.init(clip.read_frame(0), tuple(clip.init_box))
        paths[precision] = np.array([tracker.track(clip.read_frame(i)).box for i in range(1, 20)])
    assert "no converted parts" not in caplog.text
    centres = {p: b[:, :2] + b[:, 2:] / 2 for p, b in paths.items()}
    assert float(np.mean(np.hypot(*(centres["fp32"] - centres["int8"]).T))) < 3.0
