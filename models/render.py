"""Simple rendered sequences with exact ground truth: a bright textured target moving over a dark
noisy background. For tests, demos and smoke checks (the blur synthesiser in models.synth makes the
realistic ones)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RenderedSequence:
    frames: list[np.ndarray]  # BGR uint8
    boxes: np.ndarray  # (N, 4) x, y, w, h, 0-based; w = h = 0 where the target is out of view


def render_moving_target(
    n_frames: int = 30,
    size: tuple[int, int] = (320, 240),
    target: tuple[int, int] = (40, 40),
    step: tuple[float, float] = (4.0, 2.0),
    start: tuple[float, float] | None = None,
    seed: int = 0,
    leave_after: int | None = None,
) -> RenderedSequence:
    """Frames of a textured target moving `step` pixels per frame (bouncing off the borders).

    With `leave_after`, the target disappears from frame `leave_after` on (its box becomes 0 size).
    """
    rng = np.random.default_rng(seed)
    width, height = size
    tw, th = target
    texture = rng.integers(120, 256, size=(th // 4 + 1, tw // 4 + 1, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((4, 4, 1), dtype=np.uint8))[:th, :tw]
    x, y = start if start is not None else ((width - tw) / 3.0, (height - th) / 3.0)
    vx, vy = step
    frames, boxes = [], []
    for i in range(n_frames):
        frame = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
        if leave_after is not None and i >= leave_after:
            boxes.append((0.0, 0.0, 0.0, 0.0))
        else:
            xi, yi = int(round(x)), int(round(y))
            frame[yi : yi + th, xi : xi + tw] = texture
            boxes.append((float(xi), float(yi), float(tw), float(th)))
        frames.append(frame)
        if not 0 <= x + vx <= width - tw:
            vx = -vx
        if not 0 <= y + vy <= height - th:
            vy = -vy
        x, y = x + vx, y + vy
    return RenderedSequence(frames, np.array(boxes, dtype=np.float64))
