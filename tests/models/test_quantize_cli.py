"""`blurtrack models quantize` on the hand-made test bundle with real clips: it calibrates, builds,
measures and writes each network's choice and measurements into the manifest; bad input says what
to do."""

from __future__ import annotations

import subprocess
import sys

from blurtrack.engine.manifest import load_bundle
from blurtrack.engine.runtime.mslite.detect import runtime_status
from blurtrack.models.testbundle import build_test_bundle


def blurtrack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blurtrack", *args], capture_output=True, text=True, timeout=600)


def test_quantize_writes_int8_versions_choices_and_measurements(shared, tmp_path):
    root = build_test_bundle(tmp_path / "bundle")
    # the local-energy normalisation stays fp32 (models/testbundle.py says why)
    result = blurtrack("models", "quantize", str(root), "--per-clip", "1", "--keep-float", "energy/")
    assert result.returncode == 0, result.stderr
    runtimes = ["onnxruntime"] + (["mslite"] if runtime_status().available else [])
    for runtime in runtimes:
        assert f"\n{runtime}" in result.stdout
    bundle = load_bundle(root)
    for role, net in bundle.manifest.networks().items():
        assert net.int8 is not None and bundle.path(net.int8.calibration).is_file() and bundle.path(net.int8.onnx).is_file()
        for runtime in runtimes:
            measured = net.precision.measured[runtime]
            assert measured["fp32_ms"] > 0 and measured["int8_ms"] > 0 and 0 <= measured["box_iou_mean"] <= 1
        # the template network runs once per target: its speed never pays for its error
        assert role != "template" or net.precision.for_runtime("onnxruntime") == "fp32"
    assert bundle.manifest.search.int8 is not None and "energy/sqrt" in bundle.manifest.search.int8.float_nodes

    listed = blurtrack("models", "--models-dir", str(tmp_path), "list")
    assert listed.returncode == 0 and "search.int8.onnx ok" in listed.stdout


def test_quantize_without_clips_says_where_they_go(tmp_path, test_bundle):
    result = blurtrack("models", "quantize", str(test_bundle), "--real-train", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "--real-train" in result.stderr
