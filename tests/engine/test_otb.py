"""The OTB-layout reader: delimiters, blank lines, missing and extra frames, nested folders."""

import logging

import cv2
import numpy as np
import pytest

from blurtrack.engine.otb import (
    DatasetError,
    MissingFrameError,
    find_sequences,
    load_sequence,
    read_groundtruth,
    reencode_sequence,
    write_boxes,
)

BOXES = np.array([[1, 2, 30, 40], [3.5, 4, 30, 41], [5, 6, 29, 40]])


def make_sequence(root, n_images, gt_text, skip=(), suffix=".jpg"):
    img = root / "img"
    img.mkdir(parents=True)
    for i in range(1, n_images + 1):
        if i in skip:
            continue
        frame = np.full((48, 64, 3), 10 * i, dtype=np.uint8)
        cv2.imwrite(str(img / f"{i:04d}{suffix}"), frame)
    (root / "groundtruth_rect.txt").write_text(gt_text)
    return root


@pytest.mark.parametrize(
    "text",
    [
        "1,2,30,40\n3.5,4,30,41\n5,6,29,40\n",  # comma (OTB)
        "1\t2\t30\t40\n3.5\t4\t30\t41\n5\t6\t29\t40\n",  # tab (OTB, e.g. Crossing)
        "1 2 30 40\n3.5  4 30 41\n 5 6 29 40\n",  # spaces, doubled and leading
        "1, 2, 30, 40\r\n3.5,4\t30 41\r\n5,6,29,40",  # mixed, CRLF, no final newline
        "1,2,30,40\n3.5,4,30,41\n5,6,29,40\n\n  \n\t\n",  # trailing blank lines
    ],
)
def test_groundtruth_delimiters_and_trailing_blank_lines(tmp_path, text):
    path = tmp_path / "groundtruth_rect.txt"
    path.write_text(text)
    np.testing.assert_allclose(read_groundtruth(path), BOXES)


def test_blank_line_inside_groundtruth_is_an_error(tmp_path):
    path = tmp_path / "groundtruth_rect.txt"
    path.write_text("1,2,30,40\n\n5,6,29,40\n")
    with pytest.raises(DatasetError, match=":2: expected four numbers"):
        read_groundtruth(path)


@pytest.mark.parametrize("line", ["1,2,30", "1,2,30,40,5", "a,b,c,d"])
def test_malformed_groundtruth_line_names_the_line(tmp_path, line):
    path = tmp_path / "groundtruth_rect.txt"
    path.write_text(f"1,2,30,40\n{line}\n")
    with pytest.raises(DatasetError, match=r"groundtruth_rect.txt:2"):
        read_groundtruth(path)


def test_empty_groundtruth_is_an_error(tmp_path):
    path = tmp_path / "groundtruth_rect.txt"
    path.write_text("\n\n")
    with pytest.raises(DatasetError, match="no boxes"):
        read_groundtruth(path)


def test_sequence_frames_and_boxes_line_up(tmp_path):
    seq = load_sequence(make_sequence(tmp_path / "Car", 3, "1,2,30,40\n3,4,30,40\n5,6,30,40\n", suffix=".png"))
    assert seq.name == "Car" and len(seq) == 3
    assert seq.init_box == (1, 2, 30, 40)  # kept 1-based, as the file says
    assert seq.read_frame(2)[0, 0, 0] == 30  # the third image is frame 2


def test_more_images_than_boxes_leaves_extra_frames_without_ground_truth(tmp_path):
    seq = load_sequence(make_sequence(tmp_path / "s", 5, "1,2,30,40\n3,4,30,40\n"))
    assert len(seq) == 5
    assert seq.gt_box(1) == (3, 4, 30, 40)
    assert seq.gt_box(2) is None and seq.gt_box(4) is None
    assert np.isnan(seq.groundtruth[4]).all()


def test_zero_size_boxes_are_absent_ground_truth(tmp_path):
    seq = load_sequence(make_sequence(tmp_path / "s", 3, "1,2,30,40\n0,0,0,0\nnan,nan,nan,nan\n"))
    assert seq.gt_box(1) is None and seq.gt_box(2) is None


def test_missing_frame_keeps_its_slot_and_warns(tmp_path, caplog):
    root = make_sequence(tmp_path / "gap", 5, "1,2,30,40\n" * 5, skip={3})
    with caplog.at_level(logging.WARNING):
        seq = load_sequence(root)
    assert "1 frame image(s) missing" in caplog.text and "numbers 3" in caplog.text
    assert len(seq) == 5
    assert seq.frames[2] is None
    assert seq.read_frame(3)[0, 0, 0] == 40  # 0004.jpg is still frame index 3
    with pytest.raises(MissingFrameError, match="frame 3 has no image"):
        seq.read_frame(2)


def test_fewer_images_than_boxes_pads_with_missing_frames(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        seq = load_sequence(make_sequence(tmp_path / "short", 2, "1,2,30,40\n" * 4))
    assert len(seq) == 4 and seq.frames[2:] == [None, None]
    assert "4 ground-truth boxes but 2 frames" in caplog.text


def test_unreadable_image_raises_missing_frame_error(tmp_path):
    root = make_sequence(tmp_path / "bad", 2, "1,2,30,40\n1,2,30,40\n")
    (root / "img" / "0002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MissingFrameError, match="cannot read image"):
        load_sequence(root).read_frame(1)


def test_absent_first_box_is_an_error(tmp_path):
    seq = load_sequence(make_sequence(tmp_path / "b", 2, "0,0,0,0\n1,2,30,40\n"))
    with pytest.raises(DatasetError, match="first line"):
        seq.init_box  # noqa: B018 - reading the property is what raises


def test_find_sequences_top_level_nested_and_single(tmp_path):
    make_sequence(tmp_path / "data" / "Bolt", 2, "1,2,30,40\n" * 2)
    make_sequence(tmp_path / "data" / "more" / "Car4", 2, "1,2,30,40\n" * 2)
    (tmp_path / "data" / "notes").mkdir()
    names = [s.name for s in find_sequences(tmp_path / "data")]
    assert names == ["Bolt", "more/Car4"]
    assert [s.name for s in find_sequences(tmp_path / "data" / "Bolt")] == ["Bolt"]


def test_find_sequences_follows_linked_sequence_folders_and_ends_a_link_loop(tmp_path):
    make_sequence(tmp_path / "store" / "Bolt", 2, "1,2,30,40\n" * 2)
    make_sequence(tmp_path / "store" / "Car4", 2, "1,2,30,40\n" * 2)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "Bolt").symlink_to(tmp_path / "store" / "Bolt", target_is_directory=True)
    (linked / "Car4").symlink_to(tmp_path / "store" / "Car4", target_is_directory=True)
    (linked / "loop").symlink_to(linked, target_is_directory=True)
    assert [s.name for s in find_sequences(linked)] == ["Bolt", "Car4"]


def test_a_reencoded_copy_keeps_frames_and_boxes(tmp_path):
    seq = load_sequence(make_sequence(tmp_path / "Bolt", 3, "1,2,30,40\n3.5,4,30,41\n5,6,29,40\n"))
    copy = reencode_sequence(seq, tmp_path / "q80", 80)
    assert copy.name == "Bolt@q80" and len(copy) == 3
    assert np.array_equal(copy.groundtruth, seq.groundtruth)
    assert np.abs(copy.read_frame(1).astype(int) - seq.read_frame(1)).max() <= 8


def test_find_sequences_explains_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match="groundtruth_rect.txt"):
        find_sequences(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        find_sequences(tmp_path / "nope")


def test_write_boxes_round_trips_through_the_reader(tmp_path):
    path = tmp_path / "out" / "seq.txt"
    write_boxes(path, [(1, 2, 30, 40), None, (3.25, 4.5, 30, 40)])
    values = read_groundtruth(path)
    np.testing.assert_allclose(values[[0, 2]], [[1, 2, 30, 40], [3.25, 4.5, 30, 40]])
    assert np.isnan(values[1]).all()


def test_real_sequences_load(shared):
    sequences = {s.name: s for s in find_sequences(shared / "data" / "real")}
    assert set(sequences) >= {"Crossing", "Jumping"}
    crossing = sequences["Crossing"]
    assert len(crossing) == 120 and crossing.init_box == (205, 151, 17, 50)  # tab-separated file
    assert sequences["Jumping"].init_box == (147, 110, 34, 33)  # comma-separated file
