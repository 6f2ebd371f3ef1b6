"""GoPro-style motion-blur synthesiser: blurred tracking sequences and blurred/sharp crop pairs.

The physical model is the one the GoPro deblurring data set uses: a camera records sharp
sub-frames at 240 Hz; each output frame averages K = 7..13 consecutive sub-frames in *linear*
light (gamma 2.2 decoded, averaged, re-encoded). Ground truth is the target's box at the middle
sub-frame of the exposure, so the box sits in the middle of the smear.

Sequences: a textured target (a patch cut from one photo; rectangle, ellipse, polygon or blob
alpha mask) moves over a background (another photo) that the camera pans, zooms and shakes.
Output frames are 30 fps, i.e. one every 8 sub-frames, so an exposure of K > 8 sub-frames
overlaps the next frame's, as in GoPro's own averaging.

Everything is deterministic for a given seed and list of images. numpy + OpenCV only: the
benchmark uses this module and must not need torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Sequence as SequenceT
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import cv2
import numpy as np
from filelock import FileLock

from blurtrack.engine.errors import BlurtrackError, ModelNotFoundError
from blurtrack.models.paths import shared_dir

GAMMA = 2.2
SUBFRAME_HZ = 240
OUTPUT_FPS = 30
SUBFRAMES_PER_FRAME = SUBFRAME_HZ // OUTPUT_FPS  # 8
K_RANGE = (7, 13)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SPLIT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}
SPLIT_SALT = "blurtrack-split-v1"
SYNTH_VERSION = 1

# uint8 -> linear light, as a lookup table (decoding with np.power per pixel is ~10x slower).
_TO_LINEAR = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Locating and splitting the photos
# ---------------------------------------------------------------------------------------------


def default_images_dir() -> Path:
    return shared_dir() / "data" / "images"


def list_images(images_dir: str | Path | None = None) -> list[Path]:
    """All photos in `images_dir` (default: the shared photo folder), sorted by file name."""
    folder = Path(images_dir) if images_dir is not None else default_images_dir()
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"photo folder {folder} not found; set BLURTRACK_SHARED_DIR to the shared folder "
            "(it holds data/images) or pass the photo folder explicitly"
        )
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ModelNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def split_of(name: str) -> str:
    """Train/dev/test by a fixed hash of the file name: stable when photos are added or removed."""
    digest = hashlib.sha1(f"{SPLIT_SALT}:{name}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["dev"]:
        return "dev"
    return "test"


def split_images(images_dir: str | Path | None = None) -> dict[str, list[Path]]:
    """Disjoint train/dev/test lists of photos (about 80/10/10), each sorted by file name."""
    out: dict[str, list[Path]] = {"train": [], "dev": [], "test": []}
    for path in list_images(images_dir):
        out[split_of(path.name)].append(path)
    return out


def load_image(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BlurtrackError(f"could not read image {path}; check that it is a valid JPEG/PNG file")
    return image


# ---------------------------------------------------------------------------------------------
# Linear light and small helpers
# ---------------------------------------------------------------------------------------------


def to_linear(image_u8: np.ndarray) -> np.ndarray:
    return _TO_LINEAR[image_u8]


def to_srgb_u8(linear: np.ndarray, noise_sigma: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    encoded = np.power(np.clip(linear, 0.0, 1.0), 1.0 / GAMMA) * 255.0
    if noise_sigma > 0 and rng is not None:
        encoded = encoded + rng.normal(0.0, noise_sigma, encoded.shape).astype(np.float32)
    return np.clip(encoded + 0.5, 0, 255).astype(np.uint8)


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect x into [lo, hi] (a triangle wave): keeps trajectories continuous at the walls."""
    span = max(hi - lo, 1e-6)
    y = np.mod(x - lo, 2.0 * span)
    return lo + np.where(y > span, 2.0 * span - y, y)


def _shape_mask(rng: np.random.Generator, h: int, w: int, shape: str) -> np.ndarray:
    """Float alpha in [0, 1] of size h x w; anti-aliased edge."""
    ss = 4  # supersample for anti-aliasing
    big = np.zeros((h * ss, w * ss), np.uint8)
    if shape == "rect":
        big[:] = 255
    elif shape == "ellipse":
        cv2.ellipse(big, (((w * ss - 1) / 2.0, (h * ss - 1) / 2.0), (float(w * ss), float(h * ss)), 0.0), 255, -1)
    elif shape == "polygon":
        n = int(rng.integers(5, 11))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.65, 1.0, n)
        pts = np.stack([(1 + rad * np.cos(ang)) * w * ss / 2.0, (1 + rad * np.sin(ang)) * h * ss / 2.0], 1)
        cv2.fillPoly(big, [np.round(pts).astype(np.int32)], 255)
    else:  # blob: thresholded low-frequency noise inside an ellipse envelope
        noise = cv2.resize(rng.uniform(0, 1, (4, 4)).astype(np.float32), (w * ss, h * ss), interpolation=cv2.INTER_CUBIC)
        yy, xx = np.mgrid[0 : h * ss, 0 : w * ss].astype(np.float32)
        r2 = ((xx - w * ss / 2) / (w * ss / 2)) ** 2 + ((yy - h * ss / 2) / (h * ss / 2)) ** 2
        big[(1.2 - r2 + 0.5 * (noise - 0.5)) > 0.45] = 255
        n_lbl, labels, stats, _ = cv2.connectedComponentsWithStats(big)
        if n_lbl > 2:  # keep the largest component so the box describes one object
            keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            big = np.where(labels == keep, 255, 0).astype(np.uint8)
        if big.max() == 0:
            big[:] = 255
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _cut_patch(rng: np.random.Generator, image: np.ndarray, w: int, h: int) -> np.ndarray:
    """A w x h patch cut from a random place (random source scale) of `image`."""
    ih, iw = image.shape[:2]
    src_scale = rng.uniform(0.8, 1.6)  # >1: downsample a larger area (finer texture)
    sw, sh = max(4, int(round(w * src_scale))), max(4, int(round(h * src_scale)))
    if sw > iw or sh > ih:
        f = min(iw / sw, ih / sh)
        sw, sh = max(4, int(sw * f)), max(4, int(sh * f))
    x0 = int(rng.integers(0, iw - sw + 1))
    y0 = int(rng.integers(0, ih - sh + 1))
    return cv2.resize(image[y0 : y0 + sh, x0 : x0 + sw], (w, h), interpolation=cv2.INTER_AREA)


def _smooth_velocity(rng: np.random.Generator, n_grid: int, dt: float, level: float, seg_range=(24, 96)) -> np.ndarray:
    """(n_grid, 2) velocities in px per sub-frame: random control points, linearly interpolated.

    Speed at each control point = level * lognormal; direction a random walk (turns, curves).
    """
    t_end = (n_grid - 1) * dt
    seg = rng.uniform(*seg_range)
    n_ctrl = int(math.ceil(t_end / seg)) + 2
    t_ctrl = np.arange(n_ctrl) * seg
    angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.9, n_ctrl))
    speed = level * rng.lognormal(0.0, 0.35, n_ctrl)
    t = np.arange(n_grid) * dt
    vx = np.interp(t, t_ctrl, speed * np.cos(angle))
    vy = np.interp(t, t_ctrl, speed * np.sin(angle))
    return np.stack([vx, vy], 1)


def _integrate(v: np.ndarray, dt: float) -> np.ndarray:
    out = np.zeros_like(v)
    out[1:] = np.cumsum(0.5 * (v[1:] + v[:-1]) * dt, axis=0)
    return out


def _shake(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Hand-held camera shake: two sinusoids per axis, periods 10..48 sub-frames (5..24 Hz)."""
    out = np.zeros((len(t), 2))
    if amplitude <= 0:
        return out
    for axis in range(2):
        for _ in range(2):
            period = rng.uniform(10, 48)
            out[:, axis] += amplitude / 2 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return out


def _warp_roi(dst: np.ndarray, premul_rgba: np.ndarray, matrix: np.ndarray) -> None:
    """Composite a premultiplied BGRA float patch onto `dst` (linear BGR float) in place.

    `matrix` maps patch pixel centres to frame pixel centres; only the covered ROI is warped.
    """
    ph, pw = premul_rgba.shape[:2]
    corners = np.array([[-0.5, -0.5, 1], [pw - 0.5, -0.5, 1], [-0.5, ph - 0.5, 1], [pw - 0.5, ph - 0.5, 1]]).T
    pts = matrix @ corners
    H, W = dst.shape[:2]
    x0 = max(int(math.floor(pts[0].min())) - 1, 0)
    y0 = max(int(math.floor(pts[1].min())) - 1, 0)
    x1 = min(int(math.ceil(pts[0].max())) + 2, W)
    y1 = min(int(math.ceil(pts[1].max())) + 2, H)
    if x1 <= x0 or y1 <= y0:
        return
    m = matrix.copy()
    m[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(
        premul_rgba, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    roi = dst[y0:y1, x0:x1]
    roi *= 1.0 - warped[:, :, 3:4]
    roi += warped[:, :, :3]


def _premultiplied(image_u8: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    lin = to_linear(image_u8)
    return np.concatenate([lin * alpha[:, :, None], alpha[:, :, None]], axis=2).astype(np.float32)


def _mask_hull(alpha: np.ndarray) -> np.ndarray:
    """Corners of the pixels on the convex hull of alpha > 0.5, in patch centre coordinates (N, 2)."""
    pts = cv2.findNonZero((alpha > 0.5).astype(np.uint8))
    if pts is None:
        h, w = alpha.shape
        pts = np.array([[[0, 0]], [[w - 1, h - 1]]], np.int32)
    hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)
    offsets = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    return (hull[:, None, :] + offsets[None]).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------------


@dataclass
class SynthSequence:
    """Rendered blurred frames (BGR uint8) and ground-truth boxes (N, 4) x, y, w, h, 0-based.

    Box convention: a target covering pixel columns a..b has x = a, w = b - a + 1.
    """

    frames: list[np.ndarray]
    boxes: np.ndarray
    sharp_frames: list[np.ndarray] | None = None
    meta: dict = field(default_factory=dict)


def render_sequence(
    images: SequenceT[str | Path | np.ndarray],
    seed: int,
    n_frames: int = 80,
    size: tuple[int, int] = (640, 360),
    k_range: tuple[int, int] = K_RANGE,
    return_sharp: bool = False,
    flat_target_color: tuple[int, int, int] | None = None,
    speed_scale: float = 1.0,
) -> SynthSequence:
    """Render one blurred sequence from a pool of photos (paths or BGR arrays).

    The background and the target's texture come from two different photos of the pool,
    chosen by `seed`. `k_range` is the inclusive range of sub-frames per exposure (use (1, 1)
    for sharp frames). `flat_target_color` paints the target one colour (for tests).

    Every random choice comes from one generator seeded by `seed`, drawn in the order of the
    steps below (the photos, the exposures, the motion, the target, its path, the background,
    the noise, then each frame's noise), so a seed renders the same sequence every time.
    """
    if len(images) < 1:
        raise BlurtrackError("render_sequence needs at least one image")
    if n_frames < 1:
        raise BlurtrackError(f"n_frames must be at least 1; got {n_frames}")
    rng = np.random.default_rng(seed)
    background, target_src = _pick_photos(images, rng)
    exposure = _Exposure.draw(rng, n_frames, k_range)
    motion = _Motion.draw(rng, exposure.t, speed_scale)
    target = _Target.draw(rng, target_src, size, flat_target_color)
    scene = _Scene.build(rng, size, exposure, motion, target, background)
    noise_sigma = float(rng.uniform(0.0, 2.0))
    frames, sharp, boxes, smear = _render_frames(scene, exposure, noise_sigma, rng, return_sharp)
    meta = {
        "seed": int(seed),
        "k": exposure.ks.tolist(),
        "smear_px": smear.round(2).tolist(),
        "shape": target.shape,
        "target_level": motion.target_level,
        "camera_level": motion.camera_level,
        "shake_amp": motion.shake_amp,
        "size": list(size),
    }
    return SynthSequence(frames=frames, boxes=boxes, sharp_frames=sharp if return_sharp else None, meta=meta)


def _pick_photos(images: SequenceT[str | Path | np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The background photo and, when the pool has two or more, a different one for the target."""

    def get(i: int) -> np.ndarray:
        item = images[i]
        return item if isinstance(item, np.ndarray) else load_image(item)

    bg_idx = int(rng.integers(len(images)))
    tg_idx = int(rng.integers(len(images) - 1)) if len(images) > 1 else 0
    if len(images) > 1 and tg_idx >= bg_idx:
        tg_idx += 1
    return get(bg_idx), get(tg_idx)


@dataclass(frozen=True)
class _Exposure:
    """Sub-frames per frame (`ks`), where each frame's exposure starts, and the time grid
    (step `dt` sub-frames) that every trajectory is sampled on."""

    ks: np.ndarray
    starts: np.ndarray
    dt: float
    t: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n_frames: int, k_range: tuple[int, int]) -> _Exposure:
        k_lo, k_hi = k_range
        k_base = int(rng.integers(k_lo, k_hi + 1))
        ks = np.clip(k_base + rng.integers(-1, 2, n_frames), k_lo, k_hi).astype(int)
        starts = np.arange(n_frames) * SUBFRAMES_PER_FRAME
        t_total = float(starts[-1] + k_hi)
        dt = 0.5  # grid step in sub-frames: every sub-frame and every even-K exposure middle is on it
        n_grid = int(round(t_total / dt)) + 1
        return cls(ks, starts, dt, np.arange(n_grid) * dt)

    def grid_index(self, subframe_time: float) -> int:
        return int(round(subframe_time / self.dt))


@dataclass(frozen=True)
class _Motion:
    """How fast the target and the camera move, the camera's shake, and the zoom, target scale
    and rotation along the time grid."""

    target_level: float
    camera_level: float
    shake_amp: float
    zoom: np.ndarray
    tscale: np.ndarray
    omega: float  # rad per sub-frame
    theta: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, t: np.ndarray, speed_scale: float) -> _Motion:
        target_level = float(rng.choice([0.3, 1.2, 2.5, 4.0, 5.5], p=[0.12, 0.23, 0.3, 0.23, 0.12])) * speed_scale
        camera_level = float(rng.choice([0.0, 0.4, 1.2, 2.5], p=[0.3, 0.3, 0.25, 0.15])) * speed_scale
        shake_amp = float(rng.choice([0.0, rng.uniform(0.5, 2.0), rng.uniform(2.0, 5.0)], p=[0.4, 0.35, 0.25])) * speed_scale
        zoom_rate = float(rng.normal(0, 0.0008)) if rng.random() < 0.5 else 0.0
        zoom = np.clip(np.exp(zoom_rate * t + 0.04 * rng.random() * np.sin(2 * np.pi * t / rng.uniform(150, 400))), 0.8, 1.25)
        scale_rate = float(rng.normal(0, 0.0006)) if rng.random() < 0.5 else 0.0
        tscale = np.clip(np.exp(scale_rate * t), 0.75, 1.33)
        omega = float(rng.normal(0, 0.004)) if rng.random() < 0.35 else 0.0
        theta = np.clip(omega * t, -0.5, 0.5)
        return cls(target_level, camera_level, shake_amp, zoom, tscale, omega, theta)


@dataclass(frozen=True)
class _Target:
    """The target: its size on screen, its shape, and its premultiplied patch with the hull of
    its mask (for the ground-truth box)."""

    tw: int
    th: int
    shape: str
    premul: np.ndarray
    hull: np.ndarray
    base_scale: float  # screen pixels per patch pixel at scale 1
    uc: np.ndarray  # the patch's centre

    @classmethod
    def draw(
        cls, rng: np.random.Generator, source: np.ndarray, size: tuple[int, int], flat_color: tuple[int, int, int] | None
    ) -> _Target:
        W, H = size
        side = rng.uniform(28, 110)
        aspect = math.exp(rng.uniform(math.log(0.4), math.log(2.5)))
        tw = int(round(np.clip(side * math.sqrt(aspect), 12, 0.4 * W)))
        th = int(round(np.clip(side / math.sqrt(aspect), 12, 0.45 * H)))
        shape = str(rng.choice(["rect", "ellipse", "polygon", "blob"], p=[0.4, 0.25, 0.2, 0.15]))
        patch_res = rng.uniform(1.0, 1.5)  # patch pixels per screen pixel at scale 1
        pw, ph = int(round(tw * patch_res)), int(round(th * patch_res))
        patch = _cut_patch(rng, source, pw, ph)
        if flat_color is not None:
            patch = np.empty_like(patch)
            patch[:] = flat_color
        alpha = _shape_mask(rng, ph, pw, shape)
        uc = np.array([(pw - 1) / 2.0, (ph - 1) / 2.0])
        return cls(tw, th, shape, _premultiplied(patch, alpha), _mask_hull(alpha), 1.0 / patch_res, uc)


@dataclass(frozen=True)
class _Scene:
    """Everything a sub-frame is rendered from: the target's screen path `q`, the camera's pan
    `cam` and shake, and the background in linear light."""

    size: tuple[int, int]
    motion: _Motion
    target: _Target
    q: np.ndarray
    cam: np.ndarray
    shake: np.ndarray
    bg_lin: np.ndarray
    bg_centre: np.ndarray

    @classmethod
    def build(
        cls,
        rng: np.random.Generator,
        size: tuple[int, int],
        exposure: _Exposure,
        motion: _Motion,
        target: _Target,
        background: np.ndarray,
    ) -> _Scene:
        q, cam, shake = _trajectories(rng, size, exposure, motion, target)
        bg_lin, bg_centre = _cover_background(rng, background, size)
        return cls(size, motion, target, q, cam, shake, bg_lin, bg_centre)

    @property
    def centre(self) -> np.ndarray:
        W, H = self.size
        return np.array([(W - 1) / 2.0, (H - 1) / 2.0])

    def target_matrix(self, gi: int) -> np.ndarray:
        m, tg = self.motion, self.target
        s = tg.base_scale * m.zoom[gi] * m.tscale[gi]
        c, sn = math.cos(m.theta[gi]), math.sin(m.theta[gi])
        a = s * np.array([[c, -sn], [sn, c]])
        return np.hstack([a, (self.q[gi] - a @ tg.uc)[:, None]])

    def background_matrix(self, gi: int) -> np.ndarray:
        z = self.motion.zoom[gi]
        look = self.bg_centre + self.cam[gi] - self.shake[gi] / z  # the background point at the frame centre
        centre = self.centre
        return np.array([[z, 0.0, centre[0] - z * look[0]], [0.0, z, centre[1] - z * look[1]]])

    def render_subframe(self, gi: int) -> np.ndarray:
        frame = cv2.warpAffine(
            self.bg_lin, self.background_matrix(gi), self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )
        _warp_roi(frame, self.target.premul, self.target_matrix(gi))
        return frame

    def target_box(self, gi: int) -> tuple[float, float, float, float]:
        """The box around the target's hull at grid time `gi`, clipped to the frame (pixel edges)."""
        W, H = self.size
        m = self.target_matrix(gi)
        pts = self.target.hull @ m[:, :2].T + m[:, 2]
        x0, y0 = pts.min(0) + 0.5  # pixel-centre coordinates -> pixel-edge coordinates
        x1, y1 = pts.max(0) + 0.5
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(W)), min(y1, float(H))
        return (x0, y0, x1 - x0, y1 - y0)


def _trajectories(
    rng: np.random.Generator, size: tuple[int, int], exposure: _Exposure, motion: _Motion, target: _Target
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The target's screen path (kept inside the frame by folding), the camera's pan and its shake."""
    W, H = size
    n_grid, dt, t = len(exposure.t), exposure.dt, exposure.t
    v = _smooth_velocity(rng, n_grid, dt, motion.target_level)
    pos = _integrate(v, dt) + np.array([rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * H])
    cam = _integrate(_smooth_velocity(rng, n_grid, dt, motion.camera_level), dt)
    shake = _shake(rng, t, motion.shake_amp)
    centre = np.array([(W - 1) / 2.0, (H - 1) / 2.0])
    max_s = float((motion.zoom * motion.tscale).max())
    rotates = motion.omega != 0.0
    half_diag = 0.5 * math.hypot(target.tw, target.th) * max_s
    margin_x = (half_diag if rotates else 0.5 * target.tw * max_s) + 2
    margin_y = (half_diag if rotates else 0.5 * target.th * max_s) + 2
    q = centre + motion.zoom[:, None] * (pos - centre) + shake
    q[:, 0] = _fold(q[:, 0], margin_x, W - 1 - margin_x)
    q[:, 1] = _fold(q[:, 1], margin_y, H - 1 - margin_y)
    return q, cam, shake


def _cover_background(rng: np.random.Generator, background: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The background photo scaled to cover the frame with margin (the camera pans, zooms and
    shakes over it), flipped half the time, in linear light; and its centre."""
    W, H = size
    bh, bw = background.shape[:2]
    cover = max(W / bw, H / bh) * rng.uniform(1.05, 1.4)
    bg = cv2.resize(background, (int(round(bw * cover)), int(round(bh * cover))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    return to_linear(np.ascontiguousarray(bg)), np.array([(bg.shape[1] - 1) / 2.0, (bg.shape[0] - 1) / 2.0])


def _render_frames(
    scene: _Scene, exposure: _Exposure, noise_sigma: float, rng: np.random.Generator, return_sharp: bool
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Each frame the mean of its exposure's sub-frames (linear light, then sRGB with noise); its
    box where the target is at the exposure's middle; how far the target smeared."""
    W, H = scene.size
    n_frames = len(exposure.ks)
    frames: list[np.ndarray] = []
    sharp: list[np.ndarray] = []
    boxes = np.zeros((n_frames, 4), np.float64)
    smear = np.zeros(n_frames)
    for i in range(n_frames):
        k = int(exposure.ks[i])
        grid_idx = [exposure.grid_index(exposure.starts[i] + j) for j in range(k)]
        acc = np.zeros((H, W, 3), np.float32)
        for gi in grid_idx:
            acc += scene.render_subframe(gi)
        frames.append(to_srgb_u8(acc / k, noise_sigma, rng))
        mid = exposure.grid_index(exposure.starts[i] + (k - 1) / 2.0)
        boxes[i] = scene.target_box(mid)
        smear[i] = float(np.linalg.norm(scene.q[grid_idx[-1]] - scene.q[grid_idx[0]]))
        if return_sharp:
            sharp.append(to_srgb_u8(scene.render_subframe(mid)))
    return frames, sharp, boxes, smear


def write_otb(seq: SynthSequence, out_dir: str | Path, name: str, jpeg_quality: int = 92) -> Path:
    """Write `<out_dir>/<name>/img/0001.jpg...` and `groundtruth_rect.txt` (1-based x, y like OTB)."""
    seq_dir = Path(out_dir) / name
    img_dir = seq_dir / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(seq.frames, start=1):
        if not cv2.imwrite(str(img_dir / f"{i:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
            raise BlurtrackError(f"could not write {img_dir / f'{i:04d}.jpg'}; check the folder is writable")
    lines = [f"{x + 1:.2f},{y + 1:.2f},{w:.2f},{h:.2f}" for x, y, w, h in seq.boxes]
    (seq_dir / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    if seq.meta:
        (seq_dir / "synth.json").write_text(json.dumps(seq.meta))
    return seq_dir


def sequence_seed(seed: int, split: str, index: int) -> int:
    split_code = {"train": 1, "dev": 2, "test": 3}.get(split, 9)
    return int(np.random.SeedSequence([seed, split_code, index]).generate_state(1)[0])


def make_split(
    split: str,
    out_dir: str | Path,
    n_sequences: int,
    seed: int = 0,
    n_frames: int = 80,
    size: tuple[int, int] = (640, 360),
    images_dir: str | Path | None = None,
) -> Path:
    """Generate (or reuse) an OTB-layout data set of `n_sequences` from one split's photos.

    Sequences are named `synth_<split>_<index:03d>`; each one's seed depends only on (seed, split,
    index), so asking for more sequences later keeps the first ones. `synth_manifest.json` records
    the parameters: complete sequences rendered with the same parameters are reused, stale or
    surplus `synth_<split>_NNN` folders are removed.
    """
    if split not in SPLIT_FRACTIONS:
        raise BlurtrackError(f"unknown split {split!r}; use one of {', '.join(SPLIT_FRACTIONS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pool = split_images(images_dir)[split]
    # Everything that decides a sequence's pixels; the count only decides how many exist.
    params = {
        "version": SYNTH_VERSION,
        "split": split,
        "seed": seed,
        "n_frames": n_frames,
        "size": list(size),
        "images": [p.name for p in pool],
    }
    # Runs side by side (training runs, benches) ask for the same split at once: one renders while the
    # others wait, then find it complete. Without the lock a reader could catch the manifest being
    # rewritten, take the split for stale and delete it under the others.
    with FileLock(out / ".synth.lock"):
        _render_missing(out, split, n_sequences, seed, n_frames, size, pool, params)
    return out


def _render_missing(
    out: Path, split: str, n_sequences: int, seed: int, n_frames: int, size: tuple[int, int], pool: list[Path], params: dict
) -> None:
    manifest = out / "synth_manifest.json"
    names = [f"synth_{split}_{i:03d}" for i in range(n_sequences)]
    try:
        reusable = manifest.is_file() and json.loads(manifest.read_text()).get("params") == params
    except (json.JSONDecodeError, AttributeError):
        reusable = False
    for old in out.glob(f"synth_{split}_[0-9][0-9][0-9]"):  # stale or surplus sequences of ours
        if old.is_dir() and (not reusable or old.name not in names):
            shutil.rmtree(old)
    if not reusable:
        manifest.unlink(missing_ok=True)
    for i, name in enumerate(names):
        # groundtruth_rect.txt is written after the images, so its presence marks a complete sequence
        if reusable and (out / name / "groundtruth_rect.txt").is_file():
            continue
        seq = render_sequence(pool, sequence_seed(seed, split, i), n_frames=n_frames, size=size)
        write_otb(seq, out, name)
    # written whole then renamed, so a reader never sees half a manifest
    partial = manifest.with_suffix(".json.partial")
    partial.write_text(json.dumps({"params": params, "n_sequences": n_sequences}, indent=1))
    partial.replace(manifest)


# ---------------------------------------------------------------------------------------------
# Blurred / sharp crop pairs for the deblurrer
# ---------------------------------------------------------------------------------------------


def _trajectory(rng: np.random.Generator, s: np.ndarray, length: float) -> np.ndarray:
    """Offsets (len(s), 2) in px at exposure times s in [0, 1] along a linear, curved or shaky
    path of about `length` px; zero at s = 0.5 (the middle, where the sharp image is taken)."""
    kind = rng.choice(["linear", "curved", "shaky"], p=[0.45, 0.3, 0.25])
    ang = rng.uniform(0, 2 * np.pi)
    d = np.array([math.cos(ang), math.sin(ang)])  # main direction
    n = np.array([-d[1], d[0]])  # its normal, for the bend
    bend = rng.uniform(-0.5, 0.5)
    # shaky: a random walk through 6 control points drifting along d, scaled to `length`
    ctrl_u = np.linspace(0, 1, 6)
    walk = np.cumsum(rng.normal(0, 1, (6, 2)) + 0.8 * d, 0)
    walk -= walk[0]
    shaky = walk / max(np.linalg.norm(walk[-1]) + 1e-6, np.abs(walk).max()) * length
    u = np.append(s, 0.5) - 0.5
    if kind == "linear":
        pts = np.outer(u, d) * length
    elif kind == "curved":
        pts = np.outer(u, d) * length + np.outer(4 * bend * u**2, n) * length
    else:
        pts = np.stack([np.interp(u + 0.5, ctrl_u, shaky[:, 0]), np.interp(u + 0.5, ctrl_u, shaky[:, 1])], 1)
    return pts[:-1] - pts[-1]


def _smear_length(rng: np.random.Generator, max_smear: float) -> float:
    """Mostly clear blur, sometimes almost none (the deblurrer must leave sharp crops alone)."""
    if rng.random() < 0.12:
        return float(rng.uniform(0.0, 2.0))
    return float(rng.uniform(3.0, max_smear) if rng.random() < 0.6 else rng.uniform(3.0, max_smear * 0.5))


def blur_pair(
    image: np.ndarray,
    rng: np.random.Generator,
    size: int = 255,
    k_range: tuple[int, int] = K_RANGE,
    max_smear: float = 48.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) size x size BGR uint8 crops of `image` under the sequence blur model.

    The camera moves the whole crop along a random trajectory over K sub-frames; half the time
    an object cut from elsewhere in the photo moves on its own trajectory in front. Sub-frames
    are averaged in linear light; the blurred crop gets mild noise and JPEG; the sharp crop is
    the middle sub-frame.
    """
    k = int(rng.integers(k_range[0], k_range[1] + 1))
    s = np.linspace(0.0, 1.0, k) if k > 1 else np.array([0.5])
    zoom = rng.uniform(0.6, 1.4)  # output px per source px
    need = (size + 2 * max_smear) / zoom + 4  # source pixels the crop and its smear cover
    image = _fit_for_crop(image, need)
    if rng.random() < 0.5:
        image = image[:, ::-1]  # the moving object below is cut from the flipped photo too
    src_lin, c_src = _source_window(rng, image, need)
    c_out = np.array([(size - 1) / 2.0, (size - 1) / 2.0])

    cam = _trajectory(rng, s, _smear_length(rng, max_smear))
    zoom_blur = rng.uniform(-0.04, 0.04) if rng.random() < 0.2 else 0.0
    zooms = zoom * (1.0 + zoom_blur * (s - 0.5) * 2)
    obj = _moving_object(rng, image, size, s, max_smear, c_out) if rng.random() < 0.5 else None

    def subframe(j: int | None) -> np.ndarray:
        z = zoom if j is None else zooms[j]
        d = np.zeros(2) if j is None else cam[j]
        # output x shows source point c_src + (x - d - c_out) / z
        m = np.array([[z, 0.0, c_out[0] + d[0] - z * c_src[0]], [0.0, z, c_out[1] + d[1] - z * c_src[1]]])
        frame = cv2.warpAffine(src_lin, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if obj is not None:
            premul, opos, otraj, ouc = obj
            e = np.zeros(2) if j is None else otraj[j]
            frame_m = np.array([[1.0, 0.0, opos[0] + e[0] - ouc[0]], [0.0, 1.0, opos[1] + e[1] - ouc[1]]])
            _warp_roi(frame, premul, frame_m)
        return frame

    acc = np.zeros((size, size, 3), np.float32)
    for j in range(k):
        acc += subframe(j)
    blurred = _as_camera_sends(to_srgb_u8(acc / k, float(rng.uniform(0.0, 2.5)), rng), rng)
    sharp = to_srgb_u8(subframe(None))
    return blurred, sharp


def _fit_for_crop(image: np.ndarray, need: float) -> np.ndarray:
    """`image`, enlarged when its short side cannot hold a window of `need` pixels and a margin."""
    ih, iw = image.shape[:2]
    if min(ih, iw) < need + 2:
        f = (need + 2) / min(ih, iw)
        image = cv2.resize(image, (int(math.ceil(iw * f)), int(math.ceil(ih * f))), interpolation=cv2.INTER_LINEAR)
    return image


def _source_window(rng: np.random.Generator, image: np.ndarray, need: float) -> tuple[np.ndarray, np.ndarray]:
    """A window of about `need` pixels around a random centre, in linear light, and that centre
    in the window's coordinates."""
    ih, iw = image.shape[:2]
    half = need / 2.0
    c_src = np.array([rng.uniform(half, iw - 1 - half), rng.uniform(half, ih - 1 - half)])
    x0, y0 = int(max(c_src[0] - half - 2, 0)), int(max(c_src[1] - half - 2, 0))
    x1, y1 = int(min(c_src[0] + half + 3, iw)), int(min(c_src[1] + half + 3, ih))
    return to_linear(np.ascontiguousarray(image[y0:y1, x0:x1])), c_src - (x0, y0)


def _moving_object(
    rng: np.random.Generator, image: np.ndarray, size: int, s: np.ndarray, max_smear: float, c_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An object cut from elsewhere in the photo, moving on its own in front: its premultiplied
    patch, where it sits, its trajectory over the sub-frames and its patch centre."""
    ow = int(rng.uniform(0.2, 0.5) * size)
    oh = int(np.clip(ow * math.exp(rng.uniform(-0.7, 0.7)), 12, 0.6 * size))
    opatch = _cut_patch(rng, image, ow, oh)
    oalpha = _shape_mask(rng, oh, ow, str(rng.choice(["rect", "ellipse", "polygon", "blob"])))
    opos = c_out + rng.uniform(-0.25, 0.25, 2) * size
    otraj = _trajectory(rng, s, _smear_length(rng, max_smear * 1.2))
    return _premultiplied(opatch, oalpha), opos, otraj, np.array([(ow - 1) / 2.0, (oh - 1) / 2.0])


def _as_camera_sends(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG at quality 70..95, six times in ten."""
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
        if ok:
            return cast(np.ndarray, cv2.imdecode(buf, cv2.IMREAD_COLOR))
    return frame
