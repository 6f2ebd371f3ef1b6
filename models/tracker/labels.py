"""pysot-style anchor targets: which anchors are positive / negative for one search crop, and the
regression targets, in the engine's anchor order (engine/anchors.py)."""

from __future__ import annotations

import numpy as np

from blurtrack.engine.anchors import box_iou_cxcywh, encode_boxes, generate_anchors
from blurtrack.engine.manifest import AnchorConfig


class AnchorTarget:
    """Labels 1 (IoU > pos_iou), 0 (IoU < neg_iou) or -1 (ignored), sampled to at most `pos_num`
    positives and `total_num` labelled anchors, as pysot's AnchorTarget."""

    def __init__(
        self,
        cfg: AnchorConfig | None = None,
        *,
        pos_iou: float = 0.6,
        neg_iou: float = 0.3,
        pos_num: int = 16,
        total_num: int = 64,
        neg_pair_num: int = 16,
    ):
        self.cfg = cfg or AnchorConfig()
        self.anchors = generate_anchors(self.cfg)
        self.pos_iou, self.neg_iou = pos_iou, neg_iou
        self.pos_num, self.total_num, self.neg_pair_num = pos_num, total_num, neg_pair_num

    def __call__(
        self, box: np.ndarray, rng: np.random.Generator, negative: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """box: (cx, cy, w, h) in search-crop pixels relative to the crop centre.

        Returns cls (A,) int64 in {-1, 0, 1}, loc (A, 4) float32 deltas, loc_weight (A,) float32.
        """
        n = len(self.anchors)
        cls = np.full(n, -1, dtype=np.int64)
        loc = np.zeros((n, 4), dtype=np.float32)
        loc_weight = np.zeros(n, dtype=np.float32)
        if negative:
            # a search crop without the target: the cells around where it would be are negatives
            size, stride, k = self.cfg.score_size, self.cfg.stride, self.cfg.anchor_num
            col = size // 2 + int(np.ceil(box[0] / stride - 0.5))
            row = size // 2 + int(np.ceil(box[1] / stride - 0.5))
            grid = np.full((k, size, size), -1, dtype=np.int64)
            grid[:, max(0, row - 3) : row + 4, max(0, col - 3) : col + 4] = 0
            candidates = np.flatnonzero(grid.reshape(-1) == 0)
            if len(candidates) == 0:
                candidates = np.arange(n)
            chosen = rng.choice(candidates, size=min(self.neg_pair_num, len(candidates)), replace=False)
            cls[chosen] = 0
            return cls, loc, loc_weight
        iou = box_iou_cxcywh(self.anchors, box)
        pos = np.flatnonzero(iou > self.pos_iou)
        neg = np.flatnonzero(iou < self.neg_iou)
        if len(pos) > self.pos_num:
            pos = rng.choice(pos, size=self.pos_num, replace=False)
        neg_count = self.total_num - len(pos)
        if len(neg) > neg_count:
            neg = rng.choice(neg, size=neg_count, replace=False)
        cls[neg] = 0
        cls[pos] = 1
        loc[:] = encode_boxes(np.repeat(box[None].astype(np.float32), n, axis=0), self.anchors)
        if len(pos):
            loc_weight[pos] = 1.0 / len(pos)
        return cls, loc, loc_weight
