"""MindSpore Lite backend: conversion, numerics against ONNX Runtime, errors, backend choice.

These tests run the real runtime: the session fixture sets it up in the configured mslite_home
(CI runs `blurtrack setup mslite` before pytest, so it is only a check there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from blurtrack.cli import main as cli_main
from blurtrack.engine.errors import BackendUnavailableError, BlurtrackError, ModelNotFoundError
from blurtrack.engine.manifest import Bundle, Manifest, NetworkSpec, TensorSpec, load_bundle
from blurtrack.engine.runtime import get_backend
from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend, names_file
from blurtrack.engine.runtime.mslite.convert import convert_bundle, convert_model
from blurtrack.engine.runtime.mslite.detect import runtime_status
from blurtrack.engine.runtime.mslite.graph import match_names as _match_names
from blurtrack.engine.runtime.mslite.install import default_home, package_dir, setup_runtime
from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend
from blurtrack.engine.runtime.search import SplitSearch
from tests.engine.onnx_models import make_conv_net, make_siamese_net

# Float32 with different kernels (MindSpore Lite may use Winograd, ORT im2col/GEMM): outputs agree
# to about 1e-5 of their magnitude; 1e-4 of it leaves room without hiding a wrong layout or weight.
REL_TOL = 1e-4


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == np.float32
    scale = float(np.abs(expected).max())
    assert scale > 0, "degenerate test output"
    np.testing.assert_allclose(actual, expected, rtol=0, atol=REL_TOL * scale)


@pytest.fixture
def ms_backend(mslite_runtime) -> MindSporeLiteBackend:
    return MindSporeLiteBackend(threads=2)


@pytest.fixture
def ort_backend() -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(threads=2)


def test_conv_net_matches_onnxruntime(tmp_path, ms_backend, ort_backend):
    onnx_path = make_conv_net(tmp_path / "conv.onnx")
    ms_path = convert_model(onnx_path, tmp_path / "conv.ms")
    ms, ort = ms_backend.load(ms_path), ort_backend.load(onnx_path)
    assert ms.input_names == ["image"] and ms.output_names == ["feat"]
    image = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    assert_close(ms.run({"image": image})["feat"], ort.run({"image": image})["feat"])
    # inputs stay NCHW (the converter would make them NHWC unless told otherwise)
    with pytest.raises(ValueError, match="expects"):
        ms.run({"image": image.transpose(0, 2, 3, 1)})


# Runs in a fresh interpreter, so no earlier test has loaded the libraries into this thread first.
_FLOAT_MODES_SCRIPT = """
import sys, threading
from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend
from blurtrack.engine.runtime.mslite.binding import denormal_modes
import numpy as np
before = denormal_modes()
session = MindSporeLiteBackend(threads=2).load(sys.argv[1])
session.run({"image": np.ones((1, 3, 64, 64), np.float32)})
in_new_thread = []
thread = threading.Thread(target=lambda: in_new_thread.append(denormal_modes()))
thread.start(); thread.join()
print(before, denormal_modes(), in_new_thread[0], sys.float_info.min / 2 > 0)
"""


def test_loading_the_runtime_keeps_python_float_arithmetic(tmp_path, mslite_runtime):
    """The wheel's libraries turn on flush-to-zero as they load (one is built with fast-math);
    the loader must put the thread's modes back, or Python floats lose their subnormals."""
    ms_path = convert_model(make_conv_net(tmp_path / "conv.onnx"), tmp_path / "conv.ms")
    result = subprocess.run(
        [sys.executable, "-c", _FLOAT_MODES_SCRIPT, str(ms_path)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], check=True,
    )  # fmt: skip
    assert result.stdout.split() == ["(False,", "False)"] * 3 + ["True"]


def test_siamese_correlation_converts_with_fusion_off_and_matches(tmp_path, ms_backend, ort_backend):
    onnx_path = make_siamese_net(tmp_path / "search.onnx")
    ms_path = convert_model(onnx_path, tmp_path / "search.ms", no_fusion=True)
    ms, ort = ms_backend.load(ms_path), ort_backend.load(onnx_path)
    assert sorted(ms.input_names) == ["search", "zf"] and sorted(ms.output_names) == ["cls", "loc"]
    rng = np.random.default_rng(1)
    feeds = {
        "search": rng.uniform(0, 255, (1, 3, 39, 39)).astype(np.float32),
        "zf": rng.standard_normal((1, 8, 7, 7)).astype(np.float32),
    }
    got, want = ms.run(feeds), ort.run(feeds)
    for name in ("cls", "loc"):
        assert_close(got[name], want[name])


def test_siamese_correlation_with_fusion_fails_cleanly(tmp_path, mslite_runtime):
    """Why convert_no_fusion exists: Lite 2.0's ConvConvFusion crashes on a conv whose weight is a
    graph input. The crash happens in a child process and surfaces as an error naming the fix."""
    onnx_path = make_siamese_net(tmp_path / "search.onnx")
    with pytest.raises(BlurtrackError, match="convert_no_fusion"):
        convert_model(onnx_path, tmp_path / "search.ms", no_fusion=False)
    assert not list(tmp_path.glob("*.ms")), "a failed conversion must leave no model file"


def test_session_runs_concurrent_calls_each_on_a_model_of_its_own(tmp_path, ms_backend):
    session = ms_backend.load(convert_model(make_conv_net(tmp_path / "conv.onnx", size=32), tmp_path / "conv.ms"))
    rng = np.random.default_rng(2)
    images = [rng.uniform(0, 255, (1, 3, 32, 32)).astype(np.float32) for _ in range(4)]
    expected = [session.run({"image": im})["feat"] for im in images]
    results: dict[int, list[np.ndarray]] = {}

    def worker(i: int) -> None:
        results[i] = [session.run({"image": images[i]})["feat"] for _ in range(10)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        for out in results[i]:
            np.testing.assert_array_equal(out, expected[i])
    # a model per thread that ran at once, never more: the pool is bounded by the callers
    assert 1 <= session.pool_size <= 4


def _write_bundle(root: Path) -> Path:
    """template [1,3,15,15] -> zf [1,8,7,7] (a conv net), search = the Siamese net; no .ms names yet."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    root.mkdir()
    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) / 5).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((8, 8, 7, 7)) / 20).astype(np.float32), "w2")
    graph = helper.make_graph(
        # kernel_shape / strides left out on purpose: conversion must spell them out itself
        [helper.make_node("Conv", ["template", "w1"], ["t1"]), helper.make_node("Conv", ["t1", "w2"], ["zf"])],
        "template_net",
        [helper.make_tensor_value_info("template", TensorProto.FLOAT, [1, 3, 15, 15])],
        [helper.make_tensor_value_info("zf", TensorProto.FLOAT, [1, 8, 7, 7])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(root / "template.onnx"))
    make_siamese_net(root / "search.onnx")
    manifest = Manifest(
        name="mini",
        template=NetworkSpec(
            onnx="template.onnx",
            inputs=[TensorSpec(name="template", shape=[1, 3, 15, 15])],
            outputs=[TensorSpec(name="zf", shape=[1, 8, 7, 7])],
        ),
        search=NetworkSpec(
            onnx="search.onnx",
            inputs=[TensorSpec(name="search", shape=[1, 3, 39, 39]), TensorSpec(name="zf", shape=[1, 8, 7, 7])],
            outputs=[TensorSpec(name="cls", shape=[1, 10, 25, 25]), TensorSpec(name="loc", shape=[1, 20, 25, 25])],
            convert_no_fusion=True,
        ),
    )
    Bundle(root=root, manifest=manifest).save()
    return root


def test_convert_bundle_names_files_and_runs_end_to_end(tmp_path, ms_backend, ort_backend):
    root = _write_bundle(tmp_path / "mini")
    written = convert_bundle(root)
    parts = [root / f"search.{part}.ms" for part in ("features", "head")]
    assert written == [root / "template.ms", root / "search.ms", *parts]
    bundle = load_bundle(root)  # the manifest was saved with the new file names
    assert (bundle.manifest.template.ms, bundle.manifest.search.ms) == ("template.ms", "search.ms")
    assert all(os.access(p, os.R_OK) and p.stat().st_mode & 0o044 for p in written), "others must read .ms files"

    rng = np.random.default_rng(4)
    template = rng.uniform(0, 255, (1, 3, 15, 15)).astype(np.float32)
    search = rng.uniform(0, 255, (1, 3, 39, 39)).astype(np.float32)
    results = {}
    for backend, fmt in ((ms_backend, "ms"), (ort_backend, "onnx")):
        t_net = backend.load(bundle.path(getattr(bundle.manifest.template, fmt)))
        s_net = backend.load(bundle.path(getattr(bundle.manifest.search, fmt)))
        results[fmt] = s_net.run({"search": search, **t_net.run({"template": template})})
    # the parts, as the pipeline runs them on Lite: the same operations as the whole network
    kernels = ms_backend.load(bundle.path("template.ms")).run({"template": template})
    split = ms_backend.load_search(bundle.path("search.ms"), "search")
    assert isinstance(split, SplitSearch)
    results["parts"] = split.for_target(kernels)(search)
    for name in ("cls", "loc"):
        assert_close(results["ms"][name], results["onnx"][name])
        assert_close(results["parts"][name], results["onnx"][name])


def test_cli_convert_and_list(tmp_path, capsys, mslite_runtime):
    root = _write_bundle(tmp_path / "mini")
    assert cli_main(["models", "convert", str(root)]) == 0
    assert cli_main(["models", "--models-dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "template.ms ok" in out and "search.ms ok" in out


def test_renamed_tensors_map_back_to_onnx_names(tmp_path, ms_backend):
    assert _match_names("outputs", [("cls", (1, 10)), ("loc", (1, 20))], [("cls", (1, 10)), ("loc_post", (1, 20))]) == {
        "loc_post": "loc"
    }
    with pytest.raises(BlurtrackError, match="cannot tell"):
        _match_names("outputs", [("loc", (1, 20))], [("x", (1, 4))])
    # a recorded rename is applied by the session
    ms_path = convert_model(make_conv_net(tmp_path / "conv.onnx", size=16), tmp_path / "conv.ms")
    names_file(ms_path).write_text(json.dumps({"outputs": {"feat": "features"}}))
    session = ms_backend.load(ms_path)
    assert session.output_names == ["features"]
    assert session.run({"image": np.zeros((1, 3, 16, 16), np.float32)})["features"].shape == (1, 8, 16, 16)


def test_missing_ms_file_names_the_convert_command(tmp_path, ms_backend):
    with pytest.raises(ModelNotFoundError, match="blurtrack models convert"):
        ms_backend.load(tmp_path / "absent.ms")
    onnx_path = make_conv_net(tmp_path / "conv.onnx", size=16)
    with pytest.raises(ModelNotFoundError, match="blurtrack models convert"):
        ms_backend.load(onnx_path)  # an ONNX file is not a MindSpore Lite model


def test_missing_runtime_names_the_setup_command(tmp_path, monkeypatch, mslite_runtime):
    if runtime_status().kind == "official":
        pytest.skip("the official mindspore_lite package is installed; mslite_home is not used")
    monkeypatch.setenv("BLURTRACK_MSLITE_HOME", str(tmp_path / "empty"))
    assert not runtime_status().available
    with pytest.raises(BackendUnavailableError, match="blurtrack setup mslite"):
        MindSporeLiteBackend(threads=2)
    with pytest.raises(BackendUnavailableError, match="blurtrack setup mslite"):
        get_backend("mslite")
    assert get_backend("auto").name == "onnxruntime"


def test_unknown_backend_name_is_rejected():
    with pytest.raises(BackendUnavailableError, match="unknown backend 'tensorrt'"):
        get_backend("tensorrt")


def test_auto_picks_mslite_when_set_up(mslite_runtime):
    assert runtime_status().available
    backend = get_backend("auto", threads=2)
    assert backend.name == "mslite" and backend.model_format == "ms"
    assert backend.describe()["backend"] == "mslite"


def test_setup_is_idempotent(mslite_runtime):
    status = setup_runtime()
    assert status.available and "already set up" in status.detail


def test_setup_reports_download_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip then fails at once, without the network
    with pytest.raises(BackendUnavailableError, match="could not download the MindSpore Lite wheel"):
        setup_runtime(tmp_path / "home")


def test_setup_reports_missing_compiler(tmp_path, monkeypatch, mslite_runtime):
    if runtime_status().kind == "official":
        pytest.skip("the official mindspore_lite package is installed; no shim is built")
    home = tmp_path / "home"
    home.mkdir()
    # an already unpacked runtime (linked, not copied) so only the build step runs
    package_dir(home).symlink_to(package_dir(default_home()))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(BackendUnavailableError, match="g\\+\\+ is not installed"):
        setup_runtime(home)


class _StandInLite:
    """The slice of the official `mindspore_lite` API that _OfficialModel uses (the package has no
    build for this Python, so it cannot run here). Like Lite 2.0, a model keeps the weight input
    of its first predict: output = image * that weight."""

    class ModelType:
        MINDIR_LITE = "mindir_lite"

    class Context:
        def __init__(self):
            self.target = []
            self.cpu = type("Cpu", (), {})()

    class _Tensor:
        def __init__(self, name, shape, data=None):
            self.name, self.shape, self.data = name, shape, data

        def set_data_from_numpy(self, array):
            self.data = array.copy()

        def get_data_to_numpy(self):
            return self.data

    class Model:
        def build_from_file(self, path, model_type, context):
            self._inputs = [_StandInLite._Tensor("image", [1, 4]), _StandInLite._Tensor("weight", [1, 4])]
            self._packed = None

        def get_inputs(self):
            return self._inputs

        def predict(self, inputs):
            if self._packed is None:
                self._packed = inputs[1].data.copy()
            return [_StandInLite._Tensor("out", [1, 4], inputs[0].data * self._packed)]


def test_official_package_model_is_not_left_with_its_warm_up_weights(tmp_path):
    from blurtrack.engine.runtime.mslite.official import OfficialModel as _OfficialModel

    model = _OfficialModel(_StandInLite, tmp_path / "net.ms", threads=1)
    assert model.inputs == [("image", (1, 4)), ("weight", (1, 4))] and model.outputs == [("out", (1, 4))]
    image, weight = np.ones((1, 4), np.float32), np.full((1, 4), 3.0, np.float32)
    # the first real predict must use its own weight, not the warm-up's zeros
    np.testing.assert_array_equal(model.predict([image, weight])[0], weight)
