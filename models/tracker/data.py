"""Training pairs (template 127 / search 255 crops + target box) from still images.

SiamRPN++ trains on still-image data sets by taking the template and the search region from the
same picture with different shift / scale / blur / colour. Our photos have no object boxes, so a
target is made one of two ways:
  * "region": a random box of the photo is the target (generic patch tracking);
  * "paste": a patch of another photo, with a soft random-shaped mask, pasted on the photo, and
    pasted again moved / rescaled / recoloured / motion-blurred for the search frame (an object
    that moves over the background, as in the synthetic GoPro-style sequences).
Crops use engine.geometry exactly as the engine does: the search crop of side
s_x = context_size(w, h, 0.5) * 255 / 127 and the template = the centre 127 of a 255 crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from blurtrack.engine.geometry import context_size, crop_square

EXEMPLAR, INSTANCE = 127, 255


def load_images(paths: list[Path]) -> list[np.ndarray]:
    images = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {p}")
        images.append(img)
    return images


# ---------------------------------------------------------------- augmentation helpers
def motion_blur_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised linear motion-blur kernel (a line of `length` px at `angle_deg`)."""
    size = max(3, int(math.ceil(length)) | 1)
    kernel = np.zeros((size, size), dtype=np.float32)
    c = (size - 1) / 2.0
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    steps = max(2, int(length * 2))
    for t in np.linspace(-length / 2.0, length / 2.0, steps):
        x, y = c + t * dx, c + t * dy
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for xx, yy, w in (
            (x0, y0, (1 - fx) * (1 - fy)),
            (x0 + 1, y0, fx * (1 - fy)),
            (x0, y0 + 1, (1 - fx) * fy),
            (x0 + 1, y0 + 1, fx * fy),
        ):
            if 0 <= xx < size and 0 <= yy < size:
                kernel[yy, xx] += w
    return kernel / kernel.sum()


# uint8 -> linear light, as a table: a lookup is ~10x cheaper than np.power on every pixel
_TO_LINEAR = np.power(np.arange(256, dtype=np.float32) / 255.0, 2.2).astype(np.float32)


def channel_mean(img: np.ndarray) -> np.ndarray:
    """Per-channel mean of a BGR image (cv2.mean: ~20x faster than numpy's strided reduction on uint8)."""
    return np.asarray(cv2.mean(img)[:3], dtype=np.float64)


def motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    """Blur in linear light (gamma 2.2), as the GoPro-style averaging of sharp sub-frames does."""
    if length < 1.5:
        return img
    lin = _TO_LINEAR[img]
    lin = cv2.filter2D(lin, -1, motion_blur_kernel(length, angle_deg), borderType=cv2.BORDER_REFLECT)
    out = cv2.pow(np.clip(lin, 0.0, 1.0), 1.0 / 2.2)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def color_jitter(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    gain = 1.0 + rng.uniform(-strength, strength, size=3)  # per-channel colour cast
    contrast = 1.0 + rng.uniform(-strength, strength)
    bias = rng.uniform(-20, 20) * strength / 0.2
    mean = float(np.mean(channel_mean(img) * gain))
    # (v * gain - mean) * contrast + mean + bias is affine per channel: one lookup table per channel
    values = np.arange(256, dtype=np.float64)[:, None]
    table = np.clip((values * gain[None, :] - mean) * contrast + mean + bias, 0, 255).astype(np.uint8)
    return cv2.LUT(img, table.reshape(256, 1, 3))


def to_grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def random_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Soft object mask in [0, 1]: an ellipse, a rounded rectangle or a random polygon."""
    mask = np.zeros((h, w), dtype=np.float32)
    kind = rng.integers(3)
    if kind == 0:
        cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)), 0, 0, 360, 1.0, -1)
    elif kind == 1:
        r = int(min(h, w) * rng.uniform(0.05, 0.3))
        cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1.0, -1)
        cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1.0, -1)
        for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
            cv2.circle(mask, (cx, cy), r, 1.0, -1)
    else:
        n = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.6, 1.0, n)
        pts = np.stack([w / 2 + radii * (w / 2 - 1) * np.cos(angles), h / 2 + radii * (h / 2 - 1) * np.sin(angles)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1.0)
    k = max(1, int(min(h, w) * 0.04)) * 2 + 1
    return cv2.GaussianBlur(mask, (k, k), 0)


def mask_bbox(mask: np.ndarray, x0: float, y0: float, thr: float = 0.5) -> tuple[float, float, float, float]:
    """(cx, cy, w, h) of the mask's support (> thr) placed with its top-left at (x0, y0)."""
    ys, xs = np.nonzero(mask > thr)
    if len(xs) == 0:
        h, w = mask.shape
        return x0 + w / 2.0, y0 + h / 2.0, float(w), float(h)
    x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return x0 + (x1 + x2) / 2.0, y0 + (y1 + y2) / 2.0, float(x2 - x1), float(y2 - y1)


def paste(background: np.ndarray, patch: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Alpha-blend patch into a copy of background with its top-left at (x0, y0) (clipped)."""
    out = background.copy()
    H, W = out.shape[:2]
    h, w = patch.shape[:2]
    bx1, by1, bx2, by2 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if bx1 >= bx2 or by1 >= by2:
        return out
    px1, py1 = bx1 - x0, by1 - y0
    a = mask[py1 : py1 + by2 - by1, px1 : px1 + bx2 - bx1, None]
    region = out[by1:by2, bx1:bx2].astype(np.float32)
    src = patch[py1 : py1 + by2 - by1, px1 : px1 + bx2 - bx1].astype(np.float32)
    out[by1:by2, bx1:bx2] = np.clip(region * (1 - a) + src * a + 0.5, 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------- pairs
@dataclass
class PairConfig:
    paste_prob: float = 0.85
    neg_prob: float = 0.2
    absent_neg_prob: float = 0.5  # of negatives in paste scenes: same search frame, target removed
    distractor_prob: float = 0.4  # paste scenes: a look-alike (same source photo) elsewhere in the search frame
    template_shift: float = 4.0  # crop pixels
    template_scale: float = 0.05
    search_shift: float = 64.0  # crop pixels
    # As in tracking: centre the search crop where the target was before it moved (template frame
    # / previous frame) so the template's context sits at the centre and the target is off it.
    track_centre_prob: float = 0.5
    track_centre_max: float = 100.0  # crop pixels; farther moves fall back to the random shift
    search_scale: float = 0.18
    target_min: float = 0.08  # target size as a fraction of the photo's shorter side
    target_max: float = 0.35
    object_scale_change: float = 0.15
    object_move: float = 1.5  # paste mode: move over the background between frames, in target sizes
    search_blur_prob: float = 0.5
    template_blur_prob: float = 0.2
    object_blur_prob: float = 0.3
    blur_max: float = 25.0  # crop pixels
    color_prob: float = 0.5
    color_strength: float = 0.2
    grey_prob: float = 0.08

    @classmethod
    def from_dict(cls, data: dict) -> PairConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Pair:
    template: np.ndarray  # 127x127x3 BGR uint8
    search: np.ndarray  # 255x255x3 BGR uint8
    box: np.ndarray  # (cx, cy, w, h) in search-crop pixels relative to the crop centre
    negative: bool


class PairSampler:
    def __init__(self, images: list[np.ndarray], cfg: PairConfig | None = None):
        if len(images) < 2:
            raise ValueError("pair sampling needs at least two images")
        self.images = images
        self.cfg = cfg or PairConfig()

    def _target_size(self, img: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
        short = min(img.shape[:2])
        base = short * math.exp(rng.uniform(math.log(self.cfg.target_min), math.log(self.cfg.target_max)))
        ratio = math.exp(rng.uniform(math.log(1 / 3), math.log(3)))
        w, h = base * math.sqrt(ratio), base / math.sqrt(ratio)
        limit = 0.9 * short
        f = min(1.0, limit / max(w, h))
        return max(8.0, w * f), max(8.0, h * f)

    def _scene_region(self, rng):
        """(template frame, box, search frame, box, search frame without the target or None)."""
        img = self.images[rng.integers(len(self.images))]
        H, W = img.shape[:2]
        w, h = self._target_size(img, rng)
        cx, cy = rng.uniform(w / 2, W - w / 2), rng.uniform(h / 2, H - h / 2)
        box = (cx, cy, w, h)
        return img, box, img, box, None

    @staticmethod
    def _cut(src: np.ndarray, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
        """A region of `src` at a random scale, resized to w x h (an object's texture)."""
        sh, sw = src.shape[:2]
        scale = rng.uniform(0.5, 1.5)
        rw, rh = min(sw, max(4, int(w * scale))), min(sh, max(4, int(h * scale)))
        x = int(rng.integers(0, sw - rw + 1))
        y = int(rng.integers(0, sh - rh + 1))
        return cv2.resize(src[y : y + rh, x : x + rw], (w, h), interpolation=cv2.INTER_LINEAR)

    def _scene_paste(self, rng):
        c = self.cfg
        bg = self.images[rng.integers(len(self.images))]
        src = self.images[rng.integers(len(self.images))]
        H, W = bg.shape[:2]
        w, h = self._target_size(bg, rng)
        w, h = int(round(w)), int(round(h))
        # object texture: a region of another photo at a random scale
        mask = random_mask(h, w, rng)
        obj = self._cut(src, w, h, rng)
        x0 = int(rng.uniform(-0.1 * w, W - 0.9 * w))
        y0 = int(rng.uniform(-0.1 * h, H - 0.9 * h))
        frame_t = paste(bg, obj, mask, x0, y0)
        box_t = mask_bbox(mask, x0, y0)
        # search frame: the object moved, rescaled, recoloured, maybe motion-blurred
        s = math.exp(rng.uniform(-c.object_scale_change, c.object_scale_change))
        a = math.exp(rng.uniform(-0.1, 0.1))
        w2, h2 = max(4, int(round(w * s * a))), max(4, int(round(h * s / a)))
        obj2 = cv2.resize(obj, (w2, h2), interpolation=cv2.INTER_LINEAR)
        mask2 = cv2.resize(mask, (w2, h2), interpolation=cv2.INTER_LINEAR)
        if rng.random() < c.color_prob:
            obj2 = color_jitter(obj2, rng, c.color_strength * 0.5)
        if rng.random() < c.object_blur_prob:
            length = rng.uniform(3, c.blur_max) * max(w2, h2) / 64.0
            angle = rng.uniform(0, 180)
            pad = int(length) + 2
            obj2 = motion_blur(cv2.copyMakeBorder(obj2, pad, pad, pad, pad, cv2.BORDER_REPLICATE), length, angle)
            mask2 = cv2.filter2D(
                cv2.copyMakeBorder(mask2, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0), -1, motion_blur_kernel(length, angle)
            )
            x_shift = pad
        else:
            x_shift = 0
        move = c.object_move * max(w, h)
        # keep the moved object's centre inside the frame
        cx1 = float(np.clip(x0 + w / 2 + rng.uniform(-move, move), 0.1 * W, 0.9 * W))
        cy1 = float(np.clip(y0 + h / 2 + rng.uniform(-move, move), 0.1 * H, 0.9 * H))
        x1 = int(cx1 - w2 / 2) - x_shift
        y1 = int(cy1 - h2 / 2) - x_shift
        scene = bg
        if rng.random() < c.distractor_prob:
            # a look-alike (texture from the same photo) away from the target: a hard negative
            angle = rng.uniform(0, 2 * math.pi)
            dist = rng.uniform(1.2, 2.5) * max(w2, h2)
            dx, dy = cx1 + dist * math.cos(angle), cy1 + dist * math.sin(angle)
            scene = paste(bg, self._cut(src, w2, h2, rng), random_mask(h2, w2, rng), int(dx - w2 / 2), int(dy - h2 / 2))
        frame_s = paste(scene, obj2, mask2, x1, y1)
        box_s = mask_bbox(cv2.resize(mask, (w2, h2)), x1 + x_shift, y1 + x_shift)
        return frame_t, box_t, frame_s, box_s, scene

    def sample(self, rng: np.random.Generator) -> Pair:
        c = self.cfg
        if rng.random() < c.paste_prob:
            frame_t, box_t, frame_s, box_s, without_target = self._scene_paste(rng)
        else:
            frame_t, box_t, frame_s, box_s, without_target = self._scene_region(rng)
        negative = rng.random() < c.neg_prob
        if negative and without_target is not None and rng.random() < c.absent_neg_prob:
            # the same scene with the target gone: the template's context alone must not score
            return crop_pair(
                frame_t,
                box_t,
                frame_s,
                box_s,
                rng,
                c,
                negative=True,
                negative_frame=without_target,
                negative_centre=(box_s[0], box_s[1]),
            )
        other = self.images[rng.integers(len(self.images))] if negative else None
        hint = (box_t[0], box_t[1]) if without_target is not None else None  # paste scenes: the object moved
        return crop_pair(frame_t, box_t, frame_s, box_s, rng, c, negative=negative, negative_frame=other, centre_hint=hint)


def crop_pair(
    frame_t: np.ndarray,
    box_t,
    frame_s: np.ndarray,
    box_s,
    rng: np.random.Generator,
    c: PairConfig,
    *,
    negative: bool = False,
    negative_frame: np.ndarray | None = None,
    negative_centre: tuple[float, float] | None = None,
    centre_hint: tuple[float, float] | None = None,
) -> Pair:
    """Template and search crops of one (template frame, search frame) pair, boxes (cx, cy, w, h)
    in frame pixels; with `negative`, the search crop comes from `negative_frame` instead (centred
    on `negative_centre`, or anywhere). `centre_hint`: where a tracker would centre the search crop
    (the target's earlier position), used with probability track_centre_prob."""

    template = _template_crop(frame_t, box_t, rng, c)
    # search: around the target with random shift and scale
    s_x = context_size(box_s[2], box_s[3], 0.5) * INSTANCE / EXEMPLAR
    s_x *= 1.0 + rng.uniform(-c.search_scale, c.search_scale)
    scale = INSTANCE / s_x
    if negative:
        assert negative_frame is not None  # a negative pair is cut from another frame, which the caller gives
        frame_s = negative_frame
        H, W = frame_s.shape[:2]
        centre_s = negative_centre if negative_centre is not None else (rng.uniform(0, W), rng.uniform(0, H))
        shift = (0.0, 0.0)
    else:
        shift = _search_shift(box_s, scale, rng, c, centre_hint)
        centre_s = (box_s[0] - shift[0] / scale, box_s[1] - shift[1] / scale)
    mean_s = channel_mean(frame_s)
    search = crop_square(frame_s, centre_s, s_x, INSTANCE, mean_s)
    box = np.array([shift[0], shift[1], box_s[2] * scale, box_s[3] * scale], dtype=np.float32)
    template, search = _augment(template, search, rng, c)
    return Pair(template=template, search=search, box=box, negative=negative)


def _template_crop(frame: np.ndarray, box, rng: np.random.Generator, c: PairConfig) -> np.ndarray:
    """The centre 127 of a 255 crop at the exemplar scale, as the engine initialises, with the
    config's random scale and shift."""
    s_z = context_size(box[2], box[3], 0.5) * math.exp(rng.uniform(-c.template_scale, c.template_scale))
    s_x = s_z * INSTANCE / EXEMPLAR
    px = s_x / INSTANCE  # frame pixels per crop pixel
    centre = (
        box[0] + rng.uniform(-c.template_shift, c.template_shift) * px,
        box[1] + rng.uniform(-c.template_shift, c.template_shift) * px,
    )
    big = crop_square(frame, centre, s_x, INSTANCE, channel_mean(frame))
    off = (INSTANCE - EXEMPLAR) // 2
    return np.ascontiguousarray(big[off : off + EXEMPLAR, off : off + EXEMPLAR])


def _search_shift(
    box_s, scale: float, rng: np.random.Generator, c: PairConfig, centre_hint: tuple[float, float] | None
) -> tuple[float, float]:
    """Where the target sits in the search crop (crop pixels from its centre): a random shift, or,
    with a hint and probability track_centre_prob, where a tracker centred on the hint sees it."""
    shift = (rng.uniform(-c.search_shift, c.search_shift), rng.uniform(-c.search_shift, c.search_shift))
    if centre_hint is not None and rng.random() < c.track_centre_prob:
        moved = (
            (box_s[0] - centre_hint[0]) * scale + rng.uniform(-8, 8),
            (box_s[1] - centre_hint[1]) * scale + rng.uniform(-8, 8),
        )
        if max(abs(moved[0]), abs(moved[1])) <= c.track_centre_max:
            shift = moved
    return shift


def _augment(template: np.ndarray, search: np.ndarray, rng: np.random.Generator, c: PairConfig) -> tuple[np.ndarray, np.ndarray]:
    """Motion blur, colour jitter and grey, each by the config's probability."""
    if rng.random() < c.search_blur_prob:
        search = motion_blur(search, rng.uniform(2, c.blur_max), rng.uniform(0, 180))
    if rng.random() < c.template_blur_prob:
        template = motion_blur(template, rng.uniform(2, c.blur_max * 0.6), rng.uniform(0, 180))
    if rng.random() < c.color_prob:
        search = color_jitter(search, rng, c.color_strength)
    if rng.random() < c.color_prob:
        template = color_jitter(template, rng, c.color_strength)
    if rng.random() < c.grey_prob:
        search, template = to_grey(search), to_grey(template)
    return template, search


# ---------------------------------------------------------------- synthetic blurred sequences
class SequencePairSampler:
    """Pairs from GoPro-style synthetic sequences in OTB layout (models.synth.make_split on
    the TRAIN photos): template from frame i, search from a later frame j <= i + max_gap.

    Frames are already motion-blurred, so no extra blur is added; colour / grey as for stills."""

    def __init__(self, root: Path, cfg: PairConfig | None = None, max_gap: int = 40):
        self.cfg = cfg or PairConfig()
        self.max_gap = max_gap
        self.sequences: list[tuple[list[Path], np.ndarray]] = []
        for gt in sorted(Path(root).glob("*/groundtruth_rect.txt")):
            boxes = np.loadtxt(gt, delimiter=",", ndmin=2).astype(np.float64)
            boxes[:, :2] -= 1.0  # OTB files are 1-based
            frames = sorted((gt.parent / "img").glob("*.jpg"))
            if len(frames) == len(boxes) and len(frames) > 1:
                self.sequences.append((frames, boxes))
        if not self.sequences:
            raise FileNotFoundError(f"no OTB-layout sequences under {root}")
        self.crop_cfg = PairConfig(**{**self.cfg.__dict__, "search_blur_prob": 0.0, "template_blur_prob": 0.0})

    def sample(self, rng: np.random.Generator) -> Pair:
        frames, boxes = self.sequences[rng.integers(len(self.sequences))]
        i = int(rng.integers(len(frames) - 1))
        j = min(len(frames) - 1, i + int(rng.integers(1, self.max_gap + 1)))
        frame_t = cast(np.ndarray, cv2.imread(str(frames[i]), cv2.IMREAD_COLOR))
        frame_s = cast(np.ndarray, cv2.imread(str(frames[j]), cv2.IMREAD_COLOR))
        bt, bs = boxes[i], boxes[j]
        box_t = (bt[0] + bt[2] / 2, bt[1] + bt[3] / 2, bt[2], bt[3])
        box_s = (bs[0] + bs[2] / 2, bs[1] + bs[3] / 2, bs[2], bs[3])
        bp = boxes[max(0, j - int(rng.integers(1, 4)))]  # where a tracker would look: 1-3 frames back
        hint = (bp[0] + bp[2] / 2, bp[1] + bp[3] / 2)
        return crop_pair(frame_t, box_t, frame_s, box_s, rng, self.crop_cfg, negative=False, centre_hint=hint)


class MixedSampler:
    """Draws from `samplers` with the given probabilities."""

    def __init__(self, samplers: list, probs: list[float]):
        self.samplers = samplers
        self.probs = np.asarray(probs, dtype=np.float64) / np.sum(probs)

    def sample(self, rng: np.random.Generator) -> Pair:
        return self.samplers[int(rng.choice(len(self.samplers), p=self.probs))].sample(rng)
