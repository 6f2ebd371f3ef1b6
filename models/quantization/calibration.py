"""Calibration inputs cut from real clips the way the tracker cuts them.

Per clip, a few frames spread over it: the template crop of frame i (the exemplar region around
its ground-truth box, 127 px), and the search crop of frame i + gap centred on frame i's box (the
tracker's last estimate, so the target sits off-centre by the motion in between, 255 px). The
search network's template-feature inputs are what the fp32 template network makes of the template
crop of the same clip; the deblur network sees the search crops. Inputs are the networks' own
(BGR 0..255 float NCHW through the bundle's preprocess).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blurtrack.engine.geometry import Box, context_size, crop_square
from blurtrack.engine.manifest import Bundle
from blurtrack.engine.otb import Sequence, load_sequence
from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend

Feeds = dict[str, np.ndarray]


@dataclass
class CalibrationSet:
    """Feeds per network role (template, search, deblur), one dict of named inputs per sample."""

    feeds: dict[str, list[Feeds]] = field(default_factory=dict)
    clips: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.feeds.get("search", []))


def _frame_pairs(seq: Sequence, per_clip: int, gap: int) -> list[tuple[int, int]]:
    """(template frame, search frame) pairs spread evenly over a clip, both with ground truth."""
    usable = [i for i in range(len(seq) - gap) if seq.gt_box(i) is not None and seq.gt_box(i + gap) is not None]
    if not usable:
        return []
    picks = np.linspace(0, len(usable) - 1, min(per_clip, len(usable))).round().astype(int)
    return [(usable[k], usable[k] + gap) for k in picks]


def _crops(bundle: Bundle, seq: Sequence, first: int, second: int) -> tuple[np.ndarray, np.ndarray]:
    """Template crop of frame `first` and search crop of frame `second` centred on `first`'s box."""
    cfg = bundle.manifest.tracker
    box = seq.gt_box(first)
    assert box is not None  # _frame_pairs keeps frames with ground truth only
    image = seq.read_frame(first)
    mean = image.mean(axis=(0, 1))
    s_z = context_size(box.w, box.h, cfg.context_amount)
    template = crop_square(image, Box(*box).center, s_z, cfg.exemplar_size, mean)
    s_x = s_z * cfg.instance_size / cfg.exemplar_size
    search = crop_square(seq.read_frame(second), Box(*box).center, s_x, cfg.instance_size, mean)
    return template, search


def collect(bundle: Bundle, clip_dirs: list[Path], per_clip: int = 16, gap: int = 2) -> CalibrationSet:
    """Calibration feeds for every network of `bundle` from `per_clip` frame pairs of each clip."""
    manifest = bundle.manifest
    template_net = OnnxRuntimeBackend(threads=1).load(bundle.path(manifest.template.onnx))
    result = CalibrationSet(feeds={role: [] for role in manifest.networks()})
    for clip_dir in clip_dirs:
        seq = load_sequence(clip_dir)
        result.clips.append(seq.name)
        for first, second in _frame_pairs(seq, per_clip, gap):
            template_crop, search_crop = _crops(bundle, seq, first, second)
            template = manifest.preprocess.to_input(template_crop)
            search = manifest.preprocess.to_input(search_crop)
            features = template_net.run({manifest.template_image_input: template})
            result.feeds["template"].append({manifest.template_image_input: template})
            search_feed = {manifest.search_image_input: search}
            search_feed.update({spec.name: features[spec.name] for spec in manifest.search.inputs if spec.name in features})
            result.feeds["search"].append(search_feed)
            if "deblur" in result.feeds:
                result.feeds["deblur"].append({manifest.deblur_image_input: search})
    return result
