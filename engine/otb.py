"""Read tracking data sets in OTB layout: `<seq>/img/0001.jpg ...` + `<seq>/groundtruth_rect.txt`.

Ground truth keeps the file's own coordinate convention (OTB boxes are 1-based); nothing here
shifts boxes, so results written in the same convention compare directly with the file.
Frame i of a sequence is the i-th image in numeric order and line i of the ground truth; a gap in
the numbering (a missing image) keeps its slot so later frames stay aligned with their boxes.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blurtrack.engine.errors import DatasetError, InvalidFrameError
from blurtrack.engine.geometry import Box

log = logging.getLogger(__name__)

GROUNDTRUTH_NAME = "groundtruth_rect.txt"
IMAGE_DIR = "img"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
_SEPARATORS = re.compile(r"[,\s]+")


class MissingFrameError(InvalidFrameError):
    """A frame's image file is missing or cannot be decoded."""


@dataclass(frozen=True)
class Sequence:
    name: str
    root: Path
    #: one entry per frame; None where the image is missing (a gap in the numbering)
    frames: list[Path | None]
    #: (len(frames), 4) float64 x, y, w, h; NaN rows where the ground truth has no line
    groundtruth: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def gt_box(self, index: int) -> Box | None:
        """Ground truth of a frame, or None where it is absent (no line, w <= 0, h <= 0 or NaN)."""
        row = self.groundtruth[index]
        if not np.all(np.isfinite(row)) or row[2] <= 0 or row[3] <= 0:
            return None
        return Box(*(float(v) for v in row))

    @property
    def init_box(self) -> Box:
        box = self.gt_box(0)
        if box is None:
            raise DatasetError(
                f"sequence {self.name}: the first line of {self.root / GROUNDTRUTH_NAME} must be a box with w > 0 and h > 0 "
                "(it initialises the tracker)"
            )
        return box

    def starting_at(self, index: int) -> Sequence:
        """The sequence from frame `index` on, named `<name>@f<index + 1>`: a run of it initialises
        the tracker on that frame's ground truth (a temporal-robustness start)."""
        if not 0 <= index < len(self.frames):
            raise ValueError(f"sequence {self.name} has frames 0..{len(self.frames) - 1}, not {index}")
        return Sequence(
            name=f"{self.name}@f{index + 1}",
            root=self.root,
            frames=self.frames[index:],
            groundtruth=self.groundtruth[index:],
        )

    def read_frame(self, index: int) -> np.ndarray:
        """BGR uint8 image of frame `index`; MissingFrameError if its file is missing or unreadable."""
        path = self.frames[index]
        if path is None:
            raise MissingFrameError(f"sequence {self.name}: frame {index + 1} has no image file in {self.root / IMAGE_DIR}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise MissingFrameError(f"sequence {self.name}: cannot read image {path}")
        return image


def read_groundtruth(path: Path) -> np.ndarray:
    """Parse a ground-truth file: one `x,y,w,h` line per frame, separated by commas, tabs or spaces.

    Trailing blank lines are ignored; a blank line in the middle would shift every later box onto
    the wrong frame, so it is an error. `nan` values are allowed (absent ground truth).
    """
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read ground truth {path}: {exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        if len(fields) != 4:
            raise DatasetError(f"{path}:{number}: expected four numbers x,y,w,h, got {line.strip()!r}")
        try:
            rows.append([float(f) for f in fields])
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: expected four numbers x,y,w,h, got {line.strip()!r}") from exc
    if not rows:
        raise DatasetError(f"{path} holds no boxes: the first line must be the initial box x,y,w,h")
    return np.asarray(rows, dtype=np.float64)


def list_frames(image_dir: Path, name: str) -> list[Path | None]:
    """Images of a sequence in frame order. With numeric names (OTB: 0001.jpg) a gap in the numbers
    is a missing frame: its slot stays, holding None, and a warning names it."""
    images = [p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise DatasetError(f"sequence {name}: no images (.jpg, .png, .bmp) in {image_dir}")
    if not all(p.stem.isdigit() for p in images):
        by_name = sorted(images, key=lambda p: p.name)
        return list(by_name)
    by_number: dict[int, Path] = {}
    for p in images:
        number = int(p.stem)
        if number in by_number:
            raise DatasetError(f"sequence {name}: two images for frame number {number}: {by_number[number].name}, {p.name}")
        by_number[number] = p
    first, last = min(by_number), max(by_number)
    missing = [n for n in range(first, last + 1) if n not in by_number]
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        log.warning(
            "sequence %s: %d frame image(s) missing from %s (numbers %s); they are not tracked and, "
            "where they have ground truth, count as failures",
            name,
            len(missing),
            image_dir,
            shown,
        )
    return [by_number.get(n) for n in range(first, last + 1)]


def load_sequence(root: Path, name: str | None = None) -> Sequence:
    root = Path(root)
    name = name or root.name
    image_dir = root / IMAGE_DIR
    gt_path = root / GROUNDTRUTH_NAME
    if not image_dir.is_dir() or not gt_path.is_file():
        raise DatasetError(f"{root} is not an OTB sequence: expected {IMAGE_DIR}/ with the frames and {GROUNDTRUTH_NAME}")
    frames = list_frames(image_dir, name)
    boxes = read_groundtruth(gt_path)
    if len(boxes) > len(frames):
        log.warning(
            "sequence %s: %d ground-truth boxes but %d frames; the last %d frame(s) have no image and count as failures",
            name,
            len(boxes),
            len(frames),
            len(boxes) - len(frames),
        )
        frames = frames + [None] * (len(boxes) - len(frames))
    # More images than boxes is allowed: the extra frames are tracked but have no ground truth.
    groundtruth = np.full((len(frames), 4), np.nan)
    groundtruth[: len(boxes)] = boxes
    return Sequence(name=name, root=root, frames=frames, groundtruth=groundtruth)


def is_sequence_dir(path: Path) -> bool:
    return (path / IMAGE_DIR).is_dir() and (path / GROUNDTRUTH_NAME).is_file()


def _sequence_roots(dataset_dir: Path) -> set[Path]:
    """Sequence folders under `dataset_dir`, through symbolic links too (a data set is often a folder
    of links to sequences kept elsewhere); each real folder is visited once, so a link loop ends."""
    roots, seen = set(), set()
    for folder, subdirs, _files in os.walk(dataset_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subdirs.clear()
            continue
        seen.add(real)
        if is_sequence_dir(Path(folder)):
            roots.add(Path(folder))
            subdirs.clear()  # a sequence's own folders (img/) hold no further sequences
    return roots


def find_sequences(dataset_dir: Path) -> list[Sequence]:
    """Every OTB sequence under `dataset_dir` (itself one, or sequence folders at any depth),
    sorted by name; a nested sequence is named by its path relative to `dataset_dir`."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"data set folder {dataset_dir} does not exist")
    if is_sequence_dir(dataset_dir):
        return [load_sequence(dataset_dir)]
    roots = sorted(_sequence_roots(dataset_dir))
    if not roots:
        raise DatasetError(
            f"no OTB sequences under {dataset_dir}: expected <sequence>/{IMAGE_DIR}/0001.jpg ... "
            f"and <sequence>/{GROUNDTRUTH_NAME} (one x,y,w,h line per frame)"
        )
    return [load_sequence(root, root.relative_to(dataset_dir).as_posix()) for root in roots]


def write_boxes(path: Path, boxes: list[tuple[float, float, float, float] | None]) -> None:
    """One `x,y,w,h` line per frame; a frame with no prediction (missing image) is `nan,nan,nan,nan`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for box in boxes:
        if box is None:
            lines.append("nan,nan,nan,nan")
        else:
            lines.append(",".join(f"{v:.2f}" for v in box))
    path.write_text("\n".join(lines) + "\n")


def reencode_sequence(seq: Sequence, folder: Path, quality: int) -> Sequence:
    """A copy of `seq` in OTB layout under folder/<name>, every frame re-encoded as JPEG at
    `quality` (what a camera's encoder does to the same video); ground truth unchanged, and a frame
    without an image stays without one."""
    root = Path(folder) / seq.name
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(seq.frames):
        if path is None:
            continue
        cv2.imwrite(str(root / IMAGE_DIR / f"{i + 1:04d}.jpg"), seq.read_frame(i), [cv2.IMWRITE_JPEG_QUALITY, quality])
    (root / GROUNDTRUTH_NAME).write_text((seq.root / GROUNDTRUTH_NAME).read_text())
    return load_sequence(root, f"{seq.name}@q{quality}")
