"""Boxes, context-padded crop sizes and the crops themselves."""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from blurtrack.engine.errors import InvalidBoxError


class Box(NamedTuple):
    """x, y, w, h in frame pixels, top-left corner."""

    x: float
    y: float
    w: float
    h: float

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    @classmethod
    def from_center(cls, cx: float, cy: float, w: float, h: float) -> Box:
        return cls(cx - w / 2.0, cy - h / 2.0, w, h)


def parse_box(value, frame_shape: tuple[int, ...] | None = None) -> Box:
    """Accept "x,y,w,h", a sequence of four numbers or a Box; check it against the frame.

    A box must have positive finite width and height, and overlap the frame when its shape is given.
    """
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", ",").split(",") if p]
    else:
        parts = list(value)
    if len(parts) != 4:
        raise InvalidBoxError(f"a box is four numbers x,y,w,h; got {value!r}")
    try:
        x, y, w, h = (float(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise InvalidBoxError(f"a box is four numbers x,y,w,h; got {value!r}") from exc
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise InvalidBoxError(f"box values must be finite; got {value!r}")
    if w <= 0 or h <= 0:
        raise InvalidBoxError(f"box width and height must be positive; got w={w:g}, h={h:g}")
    if frame_shape is not None:
        height, width = frame_shape[:2]
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise InvalidBoxError(
                f"box {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} frame; give x,y,w,h in frame pixels"
            )
    return Box(x, y, w, h)


def context_size(w: float, h: float, context_amount: float) -> float:
    """Side of the square exemplar region: s_z = sqrt((w + p)(h + p)), p = context_amount * (w + h)."""
    pad = context_amount * (w + h)
    return math.sqrt((w + pad) * (h + pad))


def crop_square(
    frame: np.ndarray,
    center: tuple[float, float],
    side: float,
    out_size: int,
    pad_value: np.ndarray | tuple[float, ...],
) -> np.ndarray:
    """Resample the square of `side` frame pixels centred on `center` to out_size x out_size.

    Out-of-frame area takes `pad_value` (the frame's channel mean). Pixel centres map exactly:
    the crop's centre pixel ((out_size - 1) / 2) lands on `center`.
    """
    # A box of a tiny fraction of a pixel (1e-300) gives a side of 0, a huge one an infinite side.
    if not (math.isfinite(side) and side > 0 and all(math.isfinite(c) for c in center)):
        raise InvalidBoxError(
            f"cannot crop a square of side {side:g} around ({center[0]:g}, {center[1]:g}): give a box of at least 1 pixel, inside the frame"
        )
    scale = out_size / side
    cx, cy = center
    c = (out_size - 1) / 2.0
    # x_out = scale * (x_in - cx) + c, with pixel centres at integer coordinates
    matrix = np.array([[scale, 0.0, c - scale * cx], [0.0, scale, c - scale * cy]], dtype=np.float64)
    return cv2.warpAffine(
        frame,
        matrix,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(v) for v in pad_value),
    )


def crop_to_frame(
    point_in_crop: tuple[float, float], center: tuple[float, float], side: float, out_size: int
) -> tuple[float, float]:
    """Map a point in crop pixels back to frame pixels (inverse of crop_square's mapping)."""
    scale = out_size / side
    c = (out_size - 1) / 2.0
    return (point_in_crop[0] - c) / scale + center[0], (point_in_crop[1] - c) / scale + center[1]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def damp_aspect_change(old_wh: np.ndarray, new_wh: np.ndarray, pace: float) -> np.ndarray:
    """`new_wh`'s area with an aspect ratio (w / h) moved only `pace` of the way, in log, from
    `old_wh`'s to `new_wh`'s: 1 gives `new_wh`, 0 keeps the old shape at the new area."""
    log_aspect = (1.0 - pace) * np.log(old_wh[0] / old_wh[1]) + pace * np.log(new_wh[0] / new_wh[1])
    side, stretch = np.sqrt(new_wh[0] * new_wh[1]), np.exp(0.5 * log_aspect)
    return np.array([side * stretch, side / stretch])
