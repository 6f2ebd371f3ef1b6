"""Frame sources a robot streams from: a video file, a camera index, or a folder of images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class FrameSource:
    frames: Iterator[np.ndarray]  # BGR uint8
    fps: float
    live: bool  # a camera: frames come at its own pace and cannot be replayed
    total: int | None = None  # frames the source holds, when it can tell (not a camera)


def open_source(spec: str, default_fps: float = 30.0, max_frames: int | None = None) -> FrameSource:
    """`spec` is a camera index ("0"), a folder of images (sorted by name) or a video file."""
    if spec.isdigit():
        source = _camera(int(spec), default_fps)
    else:
        path = Path(spec)
        if path.is_dir():
            source = _image_folder(path, default_fps)
        elif path.is_file():
            source = _video(path, default_fps)
        else:
            raise FileNotFoundError(f"{spec!r} is not a camera index, an image folder or a video file")
    if max_frames is not None:
        source.frames = _take(source.frames, max_frames)
        source.total = max_frames if source.total is None else min(source.total, max_frames)
    return source


def _take(frames: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        if i >= n:
            return
        yield frame


def _capture_frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def _camera(index: int, default_fps: float) -> FrameSource:
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise OSError(f"cannot open camera {index}: check the index (0 is the first camera) and permissions")
    fps = capture.get(cv2.CAP_PROP_FPS) or default_fps
    return FrameSource(_capture_frames(capture), fps, live=True)


def _video(path: Path, default_fps: float) -> FrameSource:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"OpenCV cannot open video {path}: give an .mp4/.avi file, an image folder or a camera index")
    fps = capture.get(cv2.CAP_PROP_FPS) or default_fps
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return FrameSource(_capture_frames(capture), fps, live=False, total=count if count > 0 else None)


def _image_folder(path: Path, default_fps: float) -> FrameSource:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no .jpg/.png/.bmp images in folder {path}")

    def read() -> Iterator[np.ndarray]:
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"could not read image {file}")
            yield image

    return FrameSource(read(), default_fps, live=False, total=len(files))
