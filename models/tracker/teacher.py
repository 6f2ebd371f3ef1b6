"""NanoTrack v2 as a teacher: its foreground response to a training pair, on our score grid.

NanoTrack v2 (Apache-2.0; ONNX files read from ../shared/peers/nanotrack/v2, never copied) learned
from large tracking data sets what this project has 8 clips of. Its response over the search crop
says where it sees the target and how much each look-alike resembles it; distillation makes that a
soft target for every cell of our score map, where the anchor labels supervise 64 sampled anchors.

The crops are ours as they are: template 127, search 255, BGR 0..255 without normalisation, which
is how NanoTrack takes them (its peak lands within one 16 px cell of the true centre on real-clip
pairs: tests/models/test_teacher.py). Its 16x16 map has stride 16 with cell 8 on the crop centre.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from blurtrack.engine.manifest import AnchorConfig

BACKBONE_FILE = "nanotrack_backbone_sim.onnx"
HEAD_FILE = "nanotrack_head_sim.onnx"
TEACHER_STRIDE = 16
TEACHER_CENTRE_CELL = 8


def default_teacher_dir() -> Path:
    from blurtrack.models.paths import shared_dir

    return shared_dir() / "peers" / "nanotrack" / "v2"


class NanoTrackTeacher:
    """`responses(z, x)`: for a batch of template and search crops (NCHW uint8 BGR, as the training
    batches carry them), the teacher's foreground probability at each cell of our score map, its
    logits divided by `temperature` first (a saturated 0/1 map would say nothing about look-alikes)."""

    def __init__(self, folder: Path | None = None, temperature: float = 2.0, anchors: AnchorConfig | None = None):
        folder = Path(folder) if folder else default_teacher_dir()
        missing = [name for name in (BACKBONE_FILE, HEAD_FILE) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"the NanoTrack v2 teacher needs {', '.join(missing)} in {folder}")
        # OpenCV's dnn, as cv2.TrackerNano runs these files: it takes the 127 and the 255 crop
        # through the one backbone, and every machine that trains has OpenCV
        self.backbone = cv2.dnn.readNet(str(folder / BACKBONE_FILE))
        self.head = cv2.dnn.readNet(str(folder / HEAD_FILE))
        self.temperature = float(temperature)
        anchors = anchors or AnchorConfig()
        # teacher-map coordinates of our cells' centres: offset from the crop centre / 16 + cell 8
        offsets = (np.arange(anchors.score_size, dtype=np.float32) - anchors.score_size // 2) * anchors.stride
        cells = offsets / TEACHER_STRIDE + TEACHER_CENTRE_CELL
        self.map_x, self.map_y = np.meshgrid(cells, cells)

    def _features(self, crop: np.ndarray) -> np.ndarray:
        self.backbone.setInput(crop[None].astype(np.float32))
        return self.backbone.forward()

    def raw_response(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """[N, 16, 16] foreground logit minus background logit, at the teacher's own grid."""
        maps = []
        for template, search in zip(z, x, strict=True):
            # the graphs take one image at a time (their squeeze-excite blocks reshape to batch 1)
            self.head.setInput(self._features(template), "input1")
            self.head.setInput(self._features(search), "input2")
            cls = self.head.forward("output1")[0]
            maps.append(cls[1] - cls[0])
        return np.stack(maps)

    def responses(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """[N, S, S] float32 soft targets on our score grid."""
        diff = self.raw_response(z, x) / self.temperature
        prob = 1.0 / (1.0 + np.exp(-diff))
        return np.stack(
            [
                cv2.remap(p.astype(np.float32), self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                for p in prob
            ]
        )
