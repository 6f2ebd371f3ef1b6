"""scripts/load_bench.py end to end: it starts a real `blurtrack serve`, streams clips through real
sessions and writes its report. Speeds are whatever this machine gives; only their presence and the
report's bookkeeping are checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2

from blurtrack.models.render import render_moving_target

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "load_bench.py"


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def write_otb_clip(folder: Path, seed: int, n_frames: int) -> str:
    """A rendered clip in OTB layout: img/0001.jpg ... and groundtruth_rect.txt (1-based, as OTB)."""
    seq = render_moving_target(n_frames, size=(320, 240), target=(40, 40), step=(4.0, 2.0), seed=seed)
    (folder / "img").mkdir(parents=True)
    for i, frame in enumerate(seq.frames):
        cv2.imwrite(str(folder / "img" / f"{i + 1:04d}.jpg"), frame)
    (folder / "groundtruth_rect.txt").write_text("\n".join(",".join(f"{v:g}" for v in box) for box in seq.boxes) + "\n")
    return folder.name


def test_real_clips_with_nanotrack_in_the_same_run(shared, tmp_path):
    out = tmp_path / "bench.json"
    result = run_bench(
        "--test-bundle", "--backend", "onnxruntime", "--sessions", "1", "--seconds", "2", "--warmup-seconds", "0.5",
        "--reference-frames", "10", "--nanotrack-runs", "1", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    first_clip = sorted(p.name for p in (shared / "data" / "real-train").iterdir() if (p / "img").is_dir())[0]
    assert report["clips"][0]["name"] == first_clip
    assert report["nanotrack"]["frames"] == 10 and report["nanotrack"]["median_fps"] > 0
    (config,) = report["configs"]
    assert config["backend"]["backend"] == "onnxruntime"
    (row,) = config["rows"]
    assert row["sessions"] == 1 and row["results"] > 0
    assert row["results"] == row["frames_sent"] and row["dropped"] == 0  # lockstep: every frame answered
    assert row["per_session"][0]["clip"] == first_clip
    assert row["memory"]["idle_rss_mib"] > 50 and row["memory"]["streaming_peak_rss_mib"] >= row["memory"]["idle_rss_mib"]
    verdict = config["verdict"]
    # judged on this machine's scale: 0.43x NanoTrack in all, a 16th of that per session, and the
    # stated 100 ms scaled by (240 frames/s / that aggregate)
    aggregate = 0.43 * report["nanotrack"]["median_fps"]
    assert verdict["scaled"]["aggregate_fps"] == aggregate
    assert [c["passed"] for c in verdict["criteria"]] == [
        row["session_fps_min"] >= aggregate / 16,
        row["rtt_p95_ms"] <= 100 * 240 / aggregate,
        row["fps"] / report["nanotrack"]["median_fps"] >= 0.43,
    ]
    assert [c["passed"] for c in verdict["absolute"]] == [row["session_fps_min"] >= 15, row["rtt_p95_ms"] <= 100]
    assert not verdict["at_goal_sessions"] and not verdict["met"]
    assert "goal NOT TESTED: no 16-session row" in result.stdout
    assert "x NanoTrack" in result.stdout and "MiB per session" in result.stdout


def test_realtime_sweep_loops_short_clips_round_robin(test_bundle, tmp_path):
    data = tmp_path / "clips"
    names = [write_otb_clip(data / name, seed, 3) for seed, name in enumerate(("alpha", "beta"))]
    out = tmp_path / "bench.json"
    result = run_bench(
        "--bundle", str(test_bundle), "--backend", "onnxruntime", "--data", str(data), "--sessions", "3",
        "--seconds", "2", "--warmup-seconds", "0.5", "--mode", "realtime", "--fps", "20", "--no-nanotrack",
        "--sweep", "--sweep-grid", "1x1,2x1", "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(c["workers"], c["threads"]) for c in report["configs"]] == [(1, 1), (2, 1)]
    for config in report["configs"]:
        (row,) = config["rows"]
        assert [s["clip"] for s in row["per_session"]] == [names[0], names[1], names[0]]
        # a 3-frame clip streamed for 2 s at 20 frames/s comes round again, re-initialised on its first box
        assert row["reinits"] >= 3 and row["errors"] == 0
        assert row["dropped"] == sum(s["dropped"] for s in row["per_session"])
        verdict = config["verdict"]
        assert verdict["scaled"] is None and not verdict["met"]  # nothing to scale by without NanoTrack
        ratio = verdict["criteria"][2]
        assert ratio["value"] is None and not ratio["passed"]
    assert "| workers | threads | 3 sessions |" in result.stdout
    assert "dropped at 3 sessions:" in result.stdout


def test_bad_arguments_say_what_to_do(tmp_path):
    result = run_bench("--sessions", "0,4")
    assert result.returncode == 2 and "session counts must be >= 1" in result.stderr
    result = run_bench("--sweep-grid", "2by1")
    assert result.returncode == 2 and "WORKERSxTHREADS" in result.stderr
    result = run_bench("--test-bundle", "--data", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "no clips at" in result.stderr
