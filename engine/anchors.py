"""RPN anchors and box decoding (the SiamRPN / pysot conventions).

Anchors live in search-crop pixels relative to the crop centre, as (cx, cy, w, h), ordered
anchor-major: index = a * S * S + row * S + col, where a runs over ratios x scales and S is the
score-map size. Network outputs follow the same order:
  cls [1, 2k, S, S]: channels 0..k-1 are background logits, k..2k-1 foreground logits;
  loc [1, 4k, S, S]: channels are blocks of k for dx, dy, dw, dh, where
  dx = (gx - ax) / aw, dy = (gy - ay) / ah, dw = log(gw / aw), dh = log(gh / ah).
"""

from __future__ import annotations

import math

import numpy as np

from blurtrack.engine.manifest import AnchorConfig


def base_anchor_sizes(stride: int, ratios: list[float], scales: list[float]) -> np.ndarray:
    """(k, 2) widths and heights of the anchors at one position, before tiling."""
    area = stride * stride
    sizes = []
    for ratio in ratios:
        w = int(math.sqrt(area / ratio))
        h = int(w * ratio)
        for scale in scales:
            sizes.append((w * scale, h * scale))
    return np.array(sizes, dtype=np.float32)


def generate_anchors(cfg: AnchorConfig, score_size: int | None = None) -> np.ndarray:
    """(k * S * S, 4) anchors (cx, cy, w, h) in crop pixels relative to the crop centre."""
    size = score_size or cfg.score_size
    sizes = base_anchor_sizes(cfg.stride, cfg.ratios, cfg.scales)
    origin = -(size // 2) * cfg.stride
    offsets = origin + cfg.stride * np.arange(size, dtype=np.float32)
    ys, xs = np.meshgrid(offsets, offsets, indexing="ij")
    k = len(sizes)
    anchors = np.zeros((k, size, size, 4), dtype=np.float32)
    anchors[..., 0] = xs
    anchors[..., 1] = ys
    anchors[..., 2] = sizes[:, 0, None, None]
    anchors[..., 3] = sizes[:, 1, None, None]
    return anchors.reshape(-1, 4)


def encode_boxes(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Regression targets (dx, dy, dw, dh) of boxes (cx, cy, w, h) against anchors, both (N, 4)."""
    deltas = np.empty_like(anchors)
    deltas[:, 0] = (boxes[:, 0] - anchors[:, 0]) / anchors[:, 2]
    deltas[:, 1] = (boxes[:, 1] - anchors[:, 1]) / anchors[:, 3]
    deltas[:, 2] = np.log(boxes[:, 2] / anchors[:, 2])
    deltas[:, 3] = np.log(boxes[:, 3] / anchors[:, 3])
    return deltas


def decode_boxes(deltas: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Inverse of encode_boxes: (N, 4) deltas -> (N, 4) boxes (cx, cy, w, h)."""
    boxes = np.empty_like(anchors)
    boxes[:, 0] = deltas[:, 0] * anchors[:, 2] + anchors[:, 0]
    boxes[:, 1] = deltas[:, 1] * anchors[:, 3] + anchors[:, 1]
    boxes[:, 2] = np.exp(np.clip(deltas[:, 2], -10.0, 10.0)) * anchors[:, 2]
    boxes[:, 3] = np.exp(np.clip(deltas[:, 3], -10.0, 10.0)) * anchors[:, 3]
    return boxes


def box_iou_cxcywh(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each (cx, cy, w, h) row of `boxes` with one (cx, cy, w, h) box."""
    ax1, ay1 = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2
    ax2, ay2 = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    bx1, by1, bx2, by2 = box[0] - box[2] / 2, box[1] - box[3] / 2, box[0] + box[2] / 2, box[1] + box[3] / 2
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    return inter / (boxes[:, 2] * boxes[:, 3] + box[2] * box[3] - inter)


def vote_box(boxes: np.ndarray, weights: np.ndarray, best: int, min_iou: float) -> np.ndarray:
    """Box voting (Gidaris & Komodakis, 2015): the weighted mean of the boxes (cx, cy, w, h) that
    overlap boxes[best] by IoU >= min_iou. Neighbouring anchors regress the same target, so their
    mean is a steadier box than the single best one. Weights must be >= 0."""
    ref = boxes[best]
    voters = box_iou_cxcywh(boxes, ref) >= min_iou
    voters[best] = True
    w = weights[voters]
    total = float(w.sum())
    if total <= 0.0:
        return ref.copy()
    return (boxes[voters] * w[:, None]).sum(axis=0) / total


def flatten_loc(loc: np.ndarray) -> np.ndarray:
    """[1, 4k, S, S] network output -> (k * S * S, 4) deltas in anchor order."""
    return loc.reshape(4, -1).T


def foreground_scores(cls: np.ndarray) -> np.ndarray:
    """[1, 2k, S, S] logits -> (k * S * S,) softmax foreground probability in anchor order."""
    logits = cls.reshape(2, -1)
    # softmax over {bg, fg} == sigmoid(fg - bg), written stably
    return 1.0 / (1.0 + np.exp(np.clip(logits[0] - logits[1], -50.0, 50.0)))
