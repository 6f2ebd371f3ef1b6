"""Temporal-robustness starts: where each run of a clip begins, and what a run from there holds."""

import cv2
import numpy as np
import pytest

from blurtrack.engine.otb import load_sequence
from blurtrack.models.evaluation.temporal import MIN_SEGMENT_FRAMES, start_frames, temporal_segments


def make_clip(root, n_frames, absent_boxes=(), missing_images=()):
    (root / "img").mkdir(parents=True)
    for i in range(1, n_frames + 1):
        if i not in missing_images:
            cv2.imwrite(str(root / "img" / f"{i:04d}.jpg"), np.full((24, 32, 3), i % 250, dtype=np.uint8))
    lines = ["0,0,0,0" if i in absent_boxes else f"{i},2,10,12" for i in range(1, n_frames + 1)]
    (root / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return load_sequence(root)


def test_starts_spread_evenly_from_the_first_frame(tmp_path):
    clip = make_clip(tmp_path / "c", 100)
    assert start_frames(clip, 1) == [0]
    assert start_frames(clip, 4) == [0, 25, 50, 75]


def test_a_start_moves_to_the_next_frame_with_an_image_and_a_box(tmp_path):
    # frame numbers are 1-based: index 25 is frame 26
    clip = make_clip(tmp_path / "c", 100, absent_boxes={26}, missing_images={27})
    assert start_frames(clip, 4) == [0, 27, 50, 75]


def test_starts_too_near_the_end_or_repeated_are_dropped(tmp_path):
    clip = make_clip(tmp_path / "c", MIN_SEGMENT_FRAMES + 10)
    assert start_frames(clip, 2) == [0]  # the second would leave 15 frames
    assert start_frames(make_clip(tmp_path / "d", 3 * MIN_SEGMENT_FRAMES), 3) == [0, MIN_SEGMENT_FRAMES, 2 * MIN_SEGMENT_FRAMES]
    with pytest.raises(ValueError, match="1 or more"):
        start_frames(clip, 0)


def test_a_run_from_a_start_keeps_frames_and_boxes_aligned(tmp_path):
    clip = make_clip(tmp_path / "c", 100)
    runs = temporal_segments([clip], 4)
    assert [r.name for r in runs] == ["c", "c@f26", "c@f51", "c@f76"]
    later = runs[2]
    assert len(later) == 50 and later.init_box == clip.gt_box(50)
    assert np.array_equal(later.read_frame(3), clip.read_frame(53))
    assert temporal_segments([clip], 1) == [clip]
