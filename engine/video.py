"""Frame sources (video files and image folders) and drawing of tracking results."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InvalidFrameError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
STATE_COLOURS = {"tracking": (0, 220, 0), "lost": (0, 0, 255)}  # BGR


@dataclass
class FrameSource:
    frames: Iterator[np.ndarray]
    fps: float
    count: int | None


def open_frames(source: str | Path, default_fps: float = 30.0) -> FrameSource:
    """Frames from a video file, or from the sorted images of a folder (OTB's `img/` works)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InvalidFrameError(f"no .jpg/.png images in folder {path}")

        def read_images() -> Iterator[np.ndarray]:
            for file in files:
                image = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if image is None:
                    raise InvalidFrameError(f"could not read image {file}")
                yield image

        return FrameSource(read_images(), default_fps, len(files))
    if not path.is_file():
        raise InvalidFrameError(f"no video file or image folder at {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InvalidFrameError(f"OpenCV cannot open video {path}: give an .mp4/.avi file or an image folder")
    fps = capture.get(cv2.CAP_PROP_FPS) or default_fps
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def read_video() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()

    return FrameSource(read_video(), fps, count)


def draw_result(frame: np.ndarray, box, state: str, label: str) -> np.ndarray:
    """A copy of the frame with the box (green tracking / red lost) and a label line."""
    out = frame.copy()
    x, y, w, h = (int(round(v)) for v in box)
    colour = STATE_COLOURS.get(state, (255, 255, 255))
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 1, cv2.LINE_AA)
    return out


class VideoWriter:
    """mp4 writer that opens on the first frame (size known then)."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise InvalidFrameError(f"OpenCV cannot write video {self.path}")
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
