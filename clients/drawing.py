"""Drawing tracking results on frames and writing them to an mp4 (used by the client CLI and by
`blurtrack track`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

LABEL_FONT, LABEL_SCALE, LABEL_X, LABEL_Y = cv2.FONT_HERSHEY_SIMPLEX, 0.6, 8, 22
STATE_COLOURS = {"tracking": (0, 220, 0), "lost": (0, 0, 255), "dropped": (0, 200, 255)}  # BGR


def draw_box(frame: np.ndarray, box, state: str, label: str | None = None) -> np.ndarray:
    """A copy of the frame with the box (green tracking, red lost, orange dropped) and a label."""
    out = frame.copy()
    x, y, w, h = (int(round(v)) for v in box)
    colour = STATE_COLOURS.get(state, (255, 255, 255))
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    # The label is drawn once, on a dark box (an outline drawn as a second, thicker text does not
    # line up: a thicker stroke has a different advance per glyph).
    (text_w, text_h), baseline = cv2.getTextSize(label or state, LABEL_FONT, LABEL_SCALE, 1)
    cv2.rectangle(out, (LABEL_X - 3, LABEL_Y - text_h - 3), (LABEL_X + text_w + 3, LABEL_Y + baseline + 1), (0, 0, 0), cv2.FILLED)
    cv2.putText(out, label or state, (LABEL_X, LABEL_Y), LABEL_FONT, LABEL_SCALE, colour, 1, cv2.LINE_AA)
    return out


class VideoWriter:
    """mp4 writer that opens on the first frame, when the size is known."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise OSError(f"OpenCV cannot write video {self.path}")
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
