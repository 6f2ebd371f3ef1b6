"""`blurtrack track` on a short generated video: one box per frame and a playable video."""

import csv
import subprocess
import sys

import cv2

from engine.render import render_moving_target


def test_track_writes_boxes_and_playable_videos(test_bundle, tmp_path):
    seq = render_moving_target(24, step=(5, 2), seed=11)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for frame in seq.frames:
        writer.write(frame)
    writer.release()
    x, y, w, h = seq.boxes[0]
    boxes, out = tmp_path / "boxes.csv", tmp_path / "annotated.mp4"
    subprocess.run(
        [sys.executable, "-m", "blurtrack", "track", str(video), "--box", f"{x},{y},{w},{h}", "--bundle", str(test_bundle),
         "--backend", "onnxruntime", "--boxes", str(boxes), "--out", str(out), "--show-deblur"],
        check=True, capture_output=True, text=True,
    )
    rows = list(csv.DictReader(boxes.open()))
    assert len(rows) == len(seq.frames)
    assert [float(rows[0][k]) for k in "xywh"] == [x, y, w, h]
    assert all(r["state"] == "tracking" for r in rows)
    # the last box is near the truth: the tracker moved with the target
    last = [float(rows[-1][k]) for k in "xy"]
    assert abs(last[0] - seq.boxes[-1][0]) < 12 and abs(last[1] - seq.boxes[-1][1]) < 12
    for path, size in ((out, (320, 240)), (out.with_suffix(".deblur.mp4"), (510, 280))):
        capture = cv2.VideoCapture(str(path))
        frames = 0
        while capture.read()[0]:
            frames += 1
        assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == size
        assert frames == len(seq.frames) - (1 if path != out else 0)


def test_track_rejects_missing_video(test_bundle, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "blurtrack", "track", str(tmp_path / "nope.mp4"), "--box", "1,1,5,5", "--bundle", str(test_bundle), "--backend", "onnxruntime"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "not a camera index, an image folder or a video file" in result.stderr
