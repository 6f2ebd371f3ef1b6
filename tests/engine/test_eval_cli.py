"""`blurtrack eval` and `blurtrack bench` end to end on a tiny generated OTB data set with the
hand-made test bundle: the files they write and what is in them."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from engine.evaluation.otb import read_groundtruth
from engine.render import render_moving_target


def write_otb(root, seq, name, skip=()):
    """OTB layout with 1-based boxes, as OTB files are; lossless PNG frames."""
    img = root / name / "img"
    img.mkdir(parents=True)
    for i, frame in enumerate(seq.frames, start=1):
        if i not in skip:
            cv2.imwrite(str(img / f"{i:04d}.png"), frame)
    lines = [f"{x + 1:g},{y + 1:g},{w:g},{h:g}" for x, y, w, h in seq.boxes]
    (root / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n\n")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("otb")
    write_otb(root, render_moving_target(20, step=(4, 2), seed=3), "square-a")
    write_otb(root, render_moving_target(16, step=(-3, 3), seed=5, start=(200, 40)), "square-b", skip={7})
    return root


def blurtrack(*args):
    return subprocess.run([sys.executable, "-m", "blurtrack", *map(str, args)], capture_output=True, text=True)


def test_eval_writes_boxes_and_summary(dataset, test_bundle, tmp_path):
    out = tmp_path / "results"
    result = blurtrack("eval", dataset, "--out", out, "--bundle", test_bundle, "--backend", "onnxruntime", "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert "all (pooled)" in result.stdout and "square-a" in result.stdout

    for name, frames in (("square-a", 20), ("square-b", 16)):
        boxes = read_groundtruth(out / f"{name}.txt")
        gt = read_groundtruth(dataset / name / "groundtruth_rect.txt")
        assert boxes.shape == (frames, 4)
        np.testing.assert_allclose(boxes[0], gt[0])  # the given first box, same 1-based convention
    # frame 7 of square-b has no image: no box, and a warning says so
    assert np.isnan(read_groundtruth(out / "square-b.txt")[6]).all()
    assert "frame 7 has no image" in result.stderr

    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "onnxruntime" and summary["threads"] == 1
    assert summary["bundle"] == "test-matched-filter"
    assert set(summary["sequences"]) == {"square-a", "square-b"}
    a, b, pooled = summary["sequences"]["square-a"], summary["sequences"]["square-b"], summary["pooled"]
    assert a["scored_frames"] == 19 and b["scored_frames"] == 15  # every frame after the first
    assert pooled["scored_frames"] == 34 and pooled["frames"] == 36
    # the bright square on a dark background is easy: the matched filter follows it
    assert a["precision@20"] >= 0.9
    # the missing frame is a failure, so square-b cannot be perfect
    assert b["precision@20"] <= 14 / 15
    assert pooled["fps"] > 0 and a["fps"] > 0
    assert {"crop", "deblur", "track", "post", "total"} <= set(pooled["latency_ms"])
    assert pooled["latency_ms"]["total"]["p95"] >= pooled["latency_ms"]["total"]["median"] > 0
    assert len(summary["curves"]["precision"]["values"]) == 51
    assert len(summary["curves"]["success"]["values"]) == 21


def test_eval_no_deblur_never_runs_the_deblurrer(dataset, test_bundle, tmp_path):
    out = tmp_path / "results"
    # auto on a bundle without .ms files runs on ONNX Runtime, MindSpore Lite set up or not
    result = blurtrack("eval", dataset, "--out", out, "--bundle", test_bundle, "--backend", "auto", "--no-deblur")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "onnxruntime"
    assert summary["deblur"] == "off"
    assert summary["pooled"]["deblurred_frames"] == 0


def test_eval_rejects_a_folder_without_sequences(test_bundle, tmp_path):
    result = blurtrack("eval", tmp_path, "--out", tmp_path / "r", "--bundle", test_bundle, "--backend", "onnxruntime")
    assert result.returncode == 2
    assert "no OTB sequences" in result.stderr


def test_bench_fills_available_rows_and_explains_missing_ones(dataset, test_bundle, tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(f"""
reference = "test"
[data.tiny]
kind = "otb"
path = "{dataset}"
[[trackers]]
name = "test"
label = "test bundle"
kind = "bundle"
bundle = "{test_bundle}"
[[trackers]]
name = "test-no-deblur"
kind = "bundle"
bundle = "{test_bundle}"
deblur = "off"
[[trackers]]
name = "alexnet"
kind = "bundle"
bundle = "no-such-bundle"
missing = "train with `blurtrack models train`"
[[trackers]]
name = "csrt"
kind = "opencv"
""")
    out = tmp_path / "bench"
    result = blurtrack(
        "bench", "--config", config, "--out", out, "--backend", "onnxruntime", "--cache-dir", tmp_path / "cache",
        "--no-peer-setup", "--markdown", tmp_path / "BENCH.md",
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "results.json").read_text())
    rows = {r["name"]: r for r in doc["trackers"]}
    assert rows["test"]["available"] and rows["test-no-deblur"]["available"]
    assert rows["test"]["results"]["tiny"]["pooled"]["speed_ratio"] == 1.0
    assert rows["test-no-deblur"]["results"]["tiny"]["pooled"]["speed_ratio"] > 0
    assert not rows["alexnet"]["available"]
    assert "not available" in rows["alexnet"]["reason"] and "blurtrack models train" in rows["alexnet"]["reason"]
    assert "--setup-peers" in rows["csrt"]["reason"]  # no contrib venv in this cache, and none made
    for png in ("curves_tiny.png", "speed_accuracy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "boxes" / "tiny" / "test" / "square-a.txt").is_file()
    report = (tmp_path / "BENCH.md").read_text()
    assert "| test " in report and "not available" in report
    assert "(bench/curves_tiny.png)" in report  # linked relative to the copy
    assert "not available" in result.stdout
