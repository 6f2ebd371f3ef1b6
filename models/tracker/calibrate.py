"""Scale calibration of the regression branch on held-out DEV pairs.

A short training run leaves the box regression with a systematic size bias (it over-predicts
width / height by a few percent on held-out pairs). In tracking that bias compounds frame after
frame (the box keeps growing), so before export we measure the median log size ratio of the
decoded best box to the true box on DEV pairs and subtract it from the dw / dh outputs: an exact
edit of the final loc conv's bias, since dw, dh are plain linear outputs of that conv.
"""

from __future__ import annotations

import numpy as np
import torch

from blurtrack.engine.anchors import decode_boxes, flatten_loc, foreground_scores
from blurtrack.models.tracker.labels import AnchorTarget
from blurtrack.models.tracker.net import SiamRPN


@torch.no_grad()
def measure_scale_bias(net: SiamRPN, batches: list, anchors: np.ndarray) -> tuple[float, float, int]:
    """Median log(w_pred / w_true), log(h_pred / h_true) of the best-scoring anchor's box over the
    positive pairs of `batches` (as made by models.tracker.training.make_batch)."""
    net.eval()
    log_w, log_h = [], []
    for z, x, _lab, _tgt, _wgt, boxes in batches:
        cls, loc = net(z.float(), x.float())
        for i in range(len(boxes)):
            if boxes[i, 4] > 0:  # negative pair
                continue
            best = int(np.argmax(foreground_scores(cls[i : i + 1].numpy())))
            pred = decode_boxes(flatten_loc(loc[i : i + 1].numpy())[best : best + 1], anchors[best : best + 1])[0]
            log_w.append(np.log(pred[2] / boxes[i, 2]))
            log_h.append(np.log(pred[3] / boxes[i, 3]))
    return float(np.median(log_w)), float(np.median(log_h)), len(log_w)


@torch.no_grad()
def apply_scale_bias(net: SiamRPN, bias_w: float, bias_h: float) -> None:
    """Subtract the measured log-size bias from the dw / dh channels (blocks 2 and 3 of k)."""
    k = net.cfg.anchor_num
    final = net.loc.head[-1]  # Conv2d(channels, 4k, 1) with bias
    final.bias[2 * k : 3 * k] -= bias_w
    final.bias[3 * k : 4 * k] -= bias_h


def calibration_batches(
    images_dir, synth_dev_root, seed: int = 0, batches: int = 8, batch_size: int = 16, deblur_bundle=None
) -> list:
    """DEV still-image pairs and (when given) tracking-style DEV synthetic pairs, no colour noise;
    with `deblur_bundle`, after that bundle's deblur gate and network, as the tracker trained."""
    from pathlib import Path

    from blurtrack.models.synth import split_images
    from blurtrack.models.tracker.data import MixedSampler, PairConfig, PairSampler, SequencePairSampler, load_images
    from blurtrack.models.tracker.training import make_batch

    cfg = PairConfig(neg_prob=0.0, color_prob=0.0, grey_prob=0.0, template_shift=0.0, template_scale=0.0)
    sampler = PairSampler(load_images(split_images(Path(images_dir))["dev"]), cfg)
    if synth_dev_root is not None:
        track = SequencePairSampler(Path(synth_dev_root), PairConfig(**{**cfg.__dict__, "track_centre_prob": 1.0}), max_gap=60)
        sampler = MixedSampler([sampler, track], [0.5, 0.5])
    if deblur_bundle:
        from blurtrack.models.tracker.deblur_input import DeblurredInput

        sampler = DeblurredInput(sampler, deblur_bundle)
    target = AnchorTarget()
    return [make_batch(sampler, target, np.random.default_rng([seed, 2 * 10**9, i]), batch_size) for i in range(batches)]
