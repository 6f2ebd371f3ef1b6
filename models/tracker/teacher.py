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


def _any_size(path: Path) -> bytes:
    """The ONNX graph with free spatial sizes: the backbone runs on 127 and 255 crops (its batch
    stays 1: its squeeze-excite blocks reshape to one image)."""
    import onnx

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis >= 2:
                dim.dim_param = f"d{axis}"
    return model.SerializeToString()


class NanoTrackTeacher:
    """`responses(z, x)`: for a batch of template and search crops (NCHW uint8 BGR, as the training
    batches carry them), the teacher's foreground probability at each cell of our score map, its
    logits divided by `temperature` first (a saturated 0/1 map would say nothing about look-alikes)."""

    def __init__(self, folder: Path | None = None, temperature: float = 2.0, anchors: AnchorConfig | None = None):
        import onnxruntime as ort

        folder = Path(folder) if folder else default_teacher_dir()
        missing = [name for name in (BACKBONE_FILE, HEAD_FILE) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"the NanoTrack v2 teacher needs {', '.join(missing)} in {folder}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self.backbone = ort.InferenceSession(_any_size(folder / BACKBONE_FILE), options, providers=providers)
        self.head = ort.InferenceSession(_any_size(folder / HEAD_FILE), options, providers=providers)
        self.temperature = float(temperature)
        anchors = anchors or AnchorConfig()
        # teacher-map coordinates of our cells' centres: offset from the crop centre / 16 + cell 8
        offsets = (np.arange(anchors.score_size, dtype=np.float32) - anchors.score_size // 2) * anchors.stride
        cells = offsets / TEACHER_STRIDE + TEACHER_CENTRE_CELL
        self.map_x, self.map_y = np.meshgrid(cells, cells)

    def _features(self, crop: np.ndarray) -> np.ndarray:
        return self.backbone.run(None, {"input": crop[None].astype(np.float32)})[0]

    def raw_response(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """[N, 16, 16] foreground logit minus background logit, at the teacher's own grid."""
        maps = []
        for template, search in zip(z, x, strict=True):
            cls = self.head.run(None, {"input1": self._features(template), "input2": self._features(search)})[0][0]
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
