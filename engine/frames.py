"""Frames at the engine's edge: decode bytes, and bring any image to BGR uint8 HxWx3."""

from __future__ import annotations

import cv2
import numpy as np

from blurtrack.engine.errors import InvalidFrameError


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """Accept grey (HxW or HxWx1), BGR and BGRA uint8 images; return BGR uint8 HxWx3."""
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.size == 0:
        raise InvalidFrameError(f"the frame is empty (shape {frame.shape}); send an image with pixels")
    if frame.dtype != np.uint8:
        raise InvalidFrameError(f"frames must be uint8 (8-bit) images, got {frame.dtype}; convert before sending")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise InvalidFrameError(f"expected a grey, BGR or BGRA image (HxW, HxWx3, HxWx4), got shape {frame.shape}")


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG (anything OpenCV reads) bytes to BGR uint8."""
    if not data:
        raise InvalidFrameError("the frame is empty (0 bytes); send JPEG or PNG bytes")
    image: np.ndarray | None = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidFrameError(f"could not decode the frame ({len(data)} bytes): send a valid JPEG or PNG image")
    if image.dtype == np.uint16:  # 16-bit PNG: keep the high byte
        image = (image >> 8).astype(np.uint8)
    return as_bgr(image)
