"""The shipped tracker is well behaved on real video: both runtimes follow the same path, and the
camera's JPEG encoder does not change what it tracks (nor whether the deblur gate opens)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blurtrack.engine.deblur import blur_score
from blurtrack.engine.geometry import context_size, crop_square
from blurtrack.engine.otb import load_sequence
from blurtrack.engine.pipeline import Pipeline
from blurtrack.models.evaluation.metrics import center_errors
from blurtrack.models.evaluation.runner import evaluate, run_sequence

BUNDLE = "blurtrack-effnet-eca"


@pytest.fixture(scope="module")
def select_clip(shared):
    """A blurred clip of the real-train select split (engine/evaluation/splits.py)."""
    return load_sequence(shared / "data" / "real-train" / "MotorRolling")


def _reencoded(seq, folder, quality: int):
    """The clip with every frame re-encoded as JPEG at `quality`, in OTB layout under folder."""
    (folder / "img").mkdir(parents=True)
    for i in range(len(seq)):
        cv2.imwrite(str(folder / "img" / f"{i + 1:04d}.jpg"), seq.read_frame(i), [cv2.IMWRITE_JPEG_QUALITY, quality])
    (folder / "groundtruth_rect.txt").write_text((seq.root / "groundtruth_rect.txt").read_text())
    return load_sequence(folder, seq.name)


def test_the_blur_score_barely_moves_under_jpeg_compression(select_clip):
    changes = []
    for i in range(0, len(select_clip), 8):
        frame = select_clip.read_frame(i)
        box = select_clip.gt_box(i)
        if box is None:
            continue
        _, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        compressed = cv2.imdecode(data, cv2.IMREAD_COLOR)
        side = context_size(box.w, box.h, 0.5) * 255 / 127
        crops = [crop_square(f, box.center, side, 255, frame.mean((0, 1))) for f in (frame, compressed)]
        changes.append(abs(blur_score(crops[1]) / blur_score(crops[0]) - 1.0))
    assert max(changes) < 0.02, f"JPEG q80 moved the blur score by up to {max(changes):.1%}"


def test_mindspore_lite_and_onnx_runtime_follow_the_same_path(select_clip, mslite_runtime):
    runs = [
        run_sequence(Pipeline.from_bundle(BUNDLE, backend=backend, threads=1).new_tracker(), select_clip)
        for backend in ("mslite", "onnxruntime")
    ]
    a, b = (np.asarray(r.boxes, dtype=np.float64) for r in runs)
    distance = center_errors(a, b)
    assert np.mean(distance) < 2.0, f"runtimes drift apart: mean centre distance {np.mean(distance):.2f} px"


def test_tracking_jpeg_q80_frames_scores_as_the_original_files(select_clip, tmp_path):
    pipeline = Pipeline.from_bundle(BUNDLE, backend="onnxruntime", threads=1)
    clips = [select_clip, _reencoded(select_clip, tmp_path / select_clip.name, 80)]
    summaries = []
    for seq in clips:
        run = run_sequence(pipeline.new_tracker(), seq)
        summaries.append(evaluate([run], [seq])["pooled"])
    for metric in ("precision@15", "success@0.6"):
        assert abs(summaries[0][metric] - summaries[1][metric]) <= 0.02, (metric, summaries)
