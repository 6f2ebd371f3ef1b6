"""Frame sources a robot streams from: a video file, a camera index, or a folder of images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
T = TypeVar("T")


# Files the server takes as they are: sending their own bytes keeps the camera's quality and
# costs no encoding.
PASSTHROUGH_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class FrameSource:
    frames: Iterator[np.ndarray | bytes]  # BGR uint8; with encoded=True, a JPEG/PNG file's own bytes
    fps: float
    live: bool  # a camera: frames come at its own pace and cannot be replayed
    total: int | None = None  # frames the source holds, when it can tell (not a camera)


def open_source(spec: str, default_fps: float = 30.0, max_frames: int | None = None, encoded: bool = False) -> FrameSource:
    """`spec` is a camera index ("0"), a folder of images (sorted by name) or a video file.
    With `encoded`, a folder's JPEG and PNG files come as their own bytes (not decoded)."""
    if spec.isdigit():
        source = _camera(int(spec), default_fps)
    else:
        path = Path(spec)
        if path.is_dir():
            source = _image_folder(path, default_fps, encoded)
        elif path.is_file():
            source = _video(path, default_fps)
        else:
            raise FileNotFoundError(f"{spec!r} is not a camera index, an image folder or a video file")
    if max_frames is not None:
        source.frames = _take(source.frames, max_frames)
        source.total = max_frames if source.total is None else min(source.total, max_frames)
    return source


def _take(frames: Iterator[T], n: int) -> Iterator[T]:
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


def image_files(path: Path) -> list[Path]:
    """The images of a folder, sorted by name; an OTB sequence folder's are in its img/."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files and (path / "img").is_dir():
        files = sorted(p for p in (path / "img").iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(
            f"no images (.jpg, .jpeg, .png, .bmp) in folder {path} nor in {path / 'img'}: "
            "give a folder of images, a sequence folder with img/, a video file or a camera index"
        )
    return files


def _image_folder(path: Path, default_fps: float, encoded: bool = False) -> FrameSource:
    files = image_files(path)

    def read() -> Iterator[np.ndarray | bytes]:
        for file in files:
            if encoded and file.suffix.lower() in PASSTHROUGH_SUFFIXES:
                yield file.read_bytes()
                continue
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"could not read image {file}")
            yield image

    return FrameSource(read(), default_fps, live=False, total=len(files))
