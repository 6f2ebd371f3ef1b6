"""`blurtrack track` on a short generated video: one box per frame and a playable video."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from blurtrack.models.render import render_moving_target

REPO = Path(__file__).resolve().parents[2]


def track(source, box: str, bundle, *flags: str, **run) -> subprocess.CompletedProcess:
    """`blurtrack track SOURCE --box BOX` on the test bundle with ONNX Runtime, output captured."""
    command = [sys.executable, "-m", "blurtrack", "track", str(source), "--box", box, "--bundle", str(bundle)]
    return subprocess.run([*command, "--backend", "onnxruntime", *flags], capture_output=True, text=True, **run)


def test_track_writes_boxes_and_playable_videos(test_bundle, tmp_path):
    seq = render_moving_target(24, step=(5, 2), seed=11)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for frame in seq.frames:
        writer.write(frame)
    writer.release()
    x, y, w, h = seq.boxes[0]
    boxes, out = tmp_path / "boxes.csv", tmp_path / "annotated.mp4"
    track(str(video), f"{x},{y},{w},{h}", test_bundle, "--boxes", str(boxes), "--out", str(out), "--show-deblur", check=True)
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
    result = track(str(tmp_path / "nope.mp4"), "1,1,5,5", test_bundle)
    assert result.returncode == 2
    assert "not a camera index, an image folder or a video file" in result.stderr


def _write_sequence(folder, n: int = 10):
    seq = render_moving_target(n, step=(3, 1), seed=12)
    (folder / "img").mkdir(parents=True)
    for i, frame in enumerate(seq.frames, start=1):
        cv2.imwrite(str(folder / "img" / f"{i:04d}.jpg"), frame)
    return seq


def test_track_takes_a_sequence_folder_and_writes_the_csv_beside_it(test_bundle, tmp_path):
    """An OTB sequence folder (images in img/) is taken as it is; the CSV lands beside the folder,
    not in the working directory, and the progress bar knows the total."""
    seq = _write_sequence(tmp_path / "data" / "Jumping")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    x, y, w, h = seq.boxes[0]
    result = track(
        str(tmp_path / "data" / "Jumping"),
        f"{x},{y},{w},{h}",
        test_bundle,
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    csv_path = tmp_path / "data" / "Jumping.boxes.csv"
    assert len(list(csv.DictReader(csv_path.open()))) == len(seq.frames)
    assert list(elsewhere.iterdir()) == []
    assert f"{len(seq.frames)}/{len(seq.frames)}" in result.stderr  # tqdm with a total
    assert str(csv_path) in result.stdout


def test_track_says_when_a_folder_has_no_images(test_bundle, tmp_path):
    (tmp_path / "empty").mkdir()
    result = track(str(tmp_path / "empty"), "1,1,5,5", test_bundle)
    assert result.returncode == 2
    assert "no images" in result.stderr and "img" in result.stderr


def test_the_label_is_drawn_once_in_one_box():
    """The label was drawn twice (a thick black copy under a thin one) and the copies did not line up."""
    from blurtrack.clients.drawing import LABEL_FONT, LABEL_SCALE, LABEL_X, LABEL_Y, draw_box

    frame = np.full((240, 320, 3), 120, np.uint8)
    label = "#12 tracking score 0.93 4.1 ms"
    out = draw_box(frame, (100, 120, 40, 40), "tracking", label)
    (text_w, text_h), baseline = cv2.getTextSize(label, LABEL_FONT, LABEL_SCALE, 1)
    changed = np.argwhere((out[:100] != frame[:100]).any(axis=2))  # the label band, above the box
    assert changed.size
    assert changed[:, 1].max() <= LABEL_X + text_w + 3 and changed[:, 1].min() >= LABEL_X - 3
    assert changed[:, 0].max() <= LABEL_Y + baseline + 1 and changed[:, 0].min() >= LABEL_Y - text_h - 3


def test_track_refuses_a_box_of_a_fraction_of_a_pixel(test_bundle, tmp_path):
    """A 1e-300 box crashed the crop with ZeroDivisionError (a 500 in the service)."""
    _write_sequence(tmp_path / "seq", n=2)
    result = track(str(tmp_path / "seq"), "10,10,1e-300,1e-300", test_bundle)
    assert result.returncode == 2, result.stderr
    assert "at least 1 pixel" in result.stderr and "Traceback" not in result.stderr
