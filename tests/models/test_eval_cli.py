"""`blurtrack eval` and `blurtrack bench` end to end on a tiny generated OTB data set with the
hand-made test bundle: the files they write and what is in them."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from blurtrack.engine.otb import read_groundtruth
from blurtrack.models.evaluation.host import host_signature
from blurtrack.models.render import render_moving_target


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


def test_eval_tracks_jpeg_reencoded_copies(dataset, test_bundle, tmp_path):
    runs = {}
    for quality in (None, 30):
        out = tmp_path / f"q{quality}"
        extra = [] if quality is None else ["--jpeg-quality", quality]
        result = blurtrack("eval", dataset, "--out", out, "--bundle", test_bundle, "--backend", "onnxruntime", *extra)
        assert result.returncode == 0, result.stderr
        runs[quality] = out, json.loads((out / "summary.json").read_text())
    (plain, summary), (copied, summary_q30) = runs[None], runs[30]
    assert summary["jpeg_quality"] is None and summary_q30["jpeg_quality"] == 30
    assert set(summary_q30["sequences"]) == {"square-a@q30", "square-b@q30"}
    boxes, boxes_q30 = read_groundtruth(plain / "square-a.txt"), read_groundtruth(copied / "square-a@q30.txt")
    assert boxes_q30.shape == boxes.shape and np.array_equal(boxes[0], boxes_q30[0])  # same frames, same first box
    assert np.isnan(read_groundtruth(copied / "square-b@q30.txt")[6]).all()  # the missing frame stays missing

    result = blurtrack("eval", dataset, "--out", tmp_path / "bad", "--jpeg-quality", "0")
    assert result.returncode == 2 and "expected a JPEG quality 1..100" in result.stderr


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
name = "test-update"
kind = "bundle"
bundle = "{test_bundle}"
tracker = {{ template_update = 0.5, template_update_interval = 2, template_update_score = 0.0 }}
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
        "bench",
        "--config",
        config,
        "--out",
        out,
        "--backend",
        "onnxruntime",
        "--cache-dir",
        tmp_path / "cache",
        "--no-peer-setup",
        "--markdown",
        tmp_path / "BENCH.md",
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
    # a row's tracker table replaces the bundle's settings for that row alone
    assert (
        rows["test-update"]["details"]["tracker_settings"]
        == "template_update 0.5, template_update_interval 2, template_update_score 0"
    )
    assert "tracker_settings" not in rows["test"]["details"]
    boxes = {row: (out / "boxes" / "tiny" / row / "square-a.txt").read_text() for row in ("test", "test-update")}
    assert boxes["test"] != boxes["test-update"]
    report = (tmp_path / "BENCH.md").read_text()
    assert "| test " in report and "not available" in report
    assert "(bench/curves_tiny.png)" in report  # linked relative to the copy
    assert "not available" in result.stdout


def test_bench_refuses_unknown_tracker_settings(dataset, test_bundle, tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(f"""
[data.tiny]
kind = "otb"
path = "{dataset}"
[[trackers]]
name = "test"
kind = "bundle"
bundle = "{test_bundle}"
tracker = {{ template_updates = 0.5 }}
""")
    result = blurtrack("bench", "--config", config, "--out", tmp_path / "bench", "--no-peer-setup")
    assert result.returncode == 2
    assert "unknown tracker settings ['template_updates']" in result.stderr and "template_update," in result.stderr


def test_tuning_runs_every_setting_through_the_pipeline_and_ranks_them(dataset, test_bundle):
    from blurtrack.engine.otb import find_sequences
    from blurtrack.engine.pipeline import Pipeline
    from blurtrack.models.evaluation.tuning import settings_grid, tune

    pipeline = Pipeline.from_bundle(test_bundle, backend="onnxruntime", threads=1)
    grid = settings_grid({"window_influence": [1.0, 0.3], "penalty_k": [0.0]})
    assert grid == [{"window_influence": 1.0, "penalty_k": 0.0}, {"window_influence": 0.3, "penalty_k": 0.0}]
    rows = tune(pipeline, find_sequences(dataset), grid)
    assert [r["objective"] for r in rows] == sorted((r["objective"] for r in rows), reverse=True)
    by_window = {r["settings"]["window_influence"]: r for r in rows}
    # all window and no score: the tracker never leaves its first position while the square moves on
    assert by_window[1.0]["precision@15"] < by_window[0.3]["precision@15"]
    assert rows[0]["settings"]["window_influence"] == 0.3
    with pytest.raises(ValueError, match="tunable settings are"):
        settings_grid({"lost_threshold": [0.2]})


def test_tuning_the_deblur_gate_changes_only_that_trackers_gate(dataset, test_bundle):
    from blurtrack.engine.otb import find_sequences
    from blurtrack.engine.pipeline import Pipeline
    from blurtrack.models.evaluation.tuning import tune

    pipeline = Pipeline.from_bundle(test_bundle, backend="onnxruntime", threads=1)
    sequences = find_sequences(dataset)
    tracked = (20 - 1) + (16 - 1 - 1)  # frames after each init, the ones the gate sees (square-b lacks frame 7)
    rows = tune(pipeline, sequences, [{"blur_threshold": 0.0}, {"blur_threshold": 1e9}])
    by_threshold = {r["settings"]["blur_threshold"]: r for r in rows}
    # no blur score is below 0, every one is below 1e9
    assert by_threshold[0.0]["deblurred_frames"] == 0
    assert by_threshold[1e9]["deblurred_frames"] == tracked
    # the pipeline's shared gate (what the service would use) still has the bundle's threshold
    assert pipeline.networks.deblurrer.policy.blur_threshold == pipeline.bundle.manifest.deblur_policy.blur_threshold == 150.0


def test_tune_command_writes_the_ranking_and_applies_the_best_setting(shared, test_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(test_bundle, bundle)
    out = tmp_path / "tune.json"

    def tune_small(window: str, *extra):
        # two short synthetic DEV sequences, one penalty and lr; --apply writes into the copied bundle
        return blurtrack(
            "tune",
            "--bundle",
            bundle,
            "--split",
            "dev",
            "--backend",
            "onnxruntime",
            "--threads",
            1,
            "--sequences",
            2,
            "--frames",
            8,
            "--penalty-k",
            "0.1",
            "--window-influence",
            window,
            "--lr",
            "0.5",
            *extra,
            "--cache-dir",
            tmp_path / "cache",
            "--out",
            out,
            "--apply",
        )

    result = tune_small("0.3,1")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["split"] == "dev" and report["sequences"] == 2 and len(report["ranking"]) == 2
    assert report["host"] == host_signature()  # boxes differ between CPUs: a ranking says where it was made
    best = report["ranking"][0]["settings"]
    assert f"best: --tracker-json '{json.dumps(best)}'" in result.stdout
    tracker = json.loads((bundle / "manifest.json").read_text())["tracker"]
    assert {k: tracker[k] for k in best} == best

    gate = tune_small("0.3", "--blur-threshold", "0,1e9")
    assert gate.returncode == 0, gate.stderr
    ranking = json.loads(out.read_text())["ranking"]
    assert sorted(r["settings"]["blur_threshold"] for r in ranking) == [0.0, 1e9]
    best_threshold = ranking[0]["settings"]["blur_threshold"]
    written = json.loads((bundle / "manifest.json").read_text())
    assert written["deblur_policy"]["blur_threshold"] == best_threshold
    assert "blur_threshold" not in written["tracker"]

    update = tune_small("0.3", "--template-update", "0.5", "--template-update-interval", "2,5")
    assert update.returncode == 0, update.stderr
    assert sorted(r["settings"]["template_update_interval"] for r in json.loads(out.read_text())["ranking"]) == [2, 5]
    written = json.loads((bundle / "manifest.json").read_text())["tracker"]
    assert written["template_update"] == 0.5 and written["template_update_interval"] in (2, 5)
    assert isinstance(written["template_update_interval"], int)  # a count of frames, whatever the grid held
    bad = tune_small("0.3", "--template-update-interval", "2.5")
    assert bad.returncode == 2 and "whole numbers of frames" in bad.stderr

    rescue = tune_small("0.3", "--blur-threshold", "0", "--rescue-score", "0,1")
    assert rescue.returncode == 0, rescue.stderr
    ranking = json.loads(out.read_text())["ranking"]
    assert sorted(r["settings"]["rescue_score"] for r in ranking) == [0.0, 1.0]
    # a rescue score of 1 looks again at every frame the shut gate passed, 0 at none
    by_rescue = {r["settings"]["rescue_score"]: r for r in ranking}
    assert by_rescue[0.0]["deblurred_frames"] == 0 and by_rescue[1.0]["deblurred_frames"] > 0
    written = json.loads((bundle / "manifest.json").read_text())
    assert written["deblur_policy"]["rescue_score"] == ranking[0]["settings"]["rescue_score"]

    strength = tune_small("0.3", "--blur-threshold", "1e9", "--deblur-strength", "0.5,1")
    assert strength.returncode == 0, strength.stderr
    ranking = json.loads(out.read_text())["ranking"]
    assert sorted(r["settings"]["strength"] for r in ranking) == [0.5, 1.0]
    written = json.loads((bundle / "manifest.json").read_text())
    assert written["deblur_policy"]["strength"] == ranking[0]["settings"]["strength"]

    # a bundle whose policy is off: --deblur auto ranks its gate all the same, and --apply turns it on
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["deblur_policy"]["mode"] = "off"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    gated = tune_small("0.3", "--deblur", "auto", "--blur-threshold", "0,1e9")
    assert gated.returncode == 0, gated.stderr
    by_threshold = {r["settings"]["blur_threshold"]: r for r in json.loads(out.read_text())["ranking"]}
    assert by_threshold[0.0]["deblurred_frames"] == 0 and by_threshold[1e9]["deblurred_frames"] > 0
    assert json.loads((bundle / "manifest.json").read_text())["deblur_policy"]["mode"] == "auto"

    # the tracker settings tuned only on request: each value ranked, the best written into the manifest
    for flag, key, values in (("--box-vote-iou", "box_vote_iou", [0.0, 0.6]), ("--aspect-lr", "aspect_lr", [0.0, 1.0])):
        tuned = tune_small("0.3", flag, ",".join(map(str, values)))
        assert tuned.returncode == 0, tuned.stderr
        ranking = json.loads(out.read_text())["ranking"]
        assert sorted(r["settings"][key] for r in ranking) == values
        written = json.loads((bundle / "manifest.json").read_text())
        assert written["tracker"][key] == ranking[0]["settings"][key]

    # --starts 2 on 40-frame sequences: a run from frame 1 (39 scored frames) and one from frame 21 (19)
    restarted = blurtrack(
        "tune", "--bundle", bundle, "--split", "dev", "--backend", "onnxruntime", "--threads", 1, "--sequences", 2,
        "--frames", 40, "--starts", 2, "--penalty-k", "0.1", "--window-influence", "0.3", "--lr", "0.5",
        "--cache-dir", tmp_path / "cache", "--out", out,
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    report = json.loads(out.read_text())
    assert report["starts"] == 2 and report["sequences"] == 4
    assert report["ranking"][0]["scored_frames"] == 2 * (39 + 19)

    for args, message in [
        (("--starts", "0"), "1 or more"),
        (("--deblur", "off", "--blur-threshold", "100"), "--deblur off never uses"),
        (("--deblur", "off", "--rescue-score", "0.9"), "--deblur off never uses"),
        (("--blur-threshold", "-5"), "blur scores >= 0"),
        (("--deblur-strength", "0,1"), "above 0 and at most 1"),
        (("--box-vote-iou", "1.5"), "between 0 and 1"),
        (("--aspect-lr", "-0.5"), "between 0 and 1"),
        (("--window-influence", "0.2,2"), "between 0 and 1"),
        (("--split", "test"), "invalid choice"),
    ]:
        refused = blurtrack("tune", "--bundle", bundle, *args)
        assert refused.returncode == 2 and message in refused.stderr, args
