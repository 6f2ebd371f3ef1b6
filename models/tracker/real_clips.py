"""Training pairs from real video: template and search from two frames of one real-train clip.

Clips are packed once (`pack_clip`, `save_pack`) into one compact file that can travel to a GPU machine: for
each kept frame, a square region around the ground-truth box (REGION_SCALE times the tracker's
search side) resampled to REGION_PX, stored as JPEG, with where it came from in the frame. The
sampler then cuts template and search crops from those regions exactly as `crop_pair` does from
whole frames, with the usual SiamRPN augmentations (shift, scale, colour, grey, motion blur) and,
half of the time, the search centred where the target was one to three frames earlier (as the
tracker centres it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blurtrack.engine.geometry import context_size, crop_square
from blurtrack.engine.otb import load_sequence
from blurtrack.models.tracker.data import EXEMPLAR, INSTANCE, Pair, PairConfig, crop_pair

# Region side / search side: the search side jitters by up to 18 % and its centre moves up to
# 64 of 255 crop pixels, so a search crop reaches 0.5 * 1.18 + 0.25 = 0.84 search sides out,
# inside the region's 1.75 / 2.
REGION_SCALE = 1.75
REGION_PX = 384
JPEG_QUALITY = 90


@dataclass
class PackedClip:
    name: str
    frames: np.ndarray  # (n,) frame index of each stored region
    regions: list[bytes]  # JPEG of each stored region
    origins: np.ndarray  # (n, 3) frame x, y of the region's centre and region pixels per frame pixel
    boxes: np.ndarray  # (n_all, 4) ground truth of every frame, cx, cy, w, h in frame pixels (NaN: absent)


def _valid(box: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(box)) and box[2] > 1 and box[3] > 1)


def pack_clip(seq_dir: Path, every: int = 2) -> PackedClip:
    """Every `every`-th frame with a valid box of one OTB-layout clip, as regions around the target."""
    seq = load_sequence(seq_dir)
    gt = seq.groundtruth.astype(np.float64)
    boxes = np.stack(
        [gt[:, 0] - 1.0 + gt[:, 2] / 2, gt[:, 1] - 1.0 + gt[:, 3] / 2, gt[:, 2], gt[:, 3]], axis=1
    )  # 1-based -> 0-based
    frames, regions, origins = [], [], []
    for i in range(0, len(seq), every):
        if seq.frames[i] is None or not _valid(boxes[i]):
            continue
        image = seq.read_frame(i)
        cx, cy, w, h = boxes[i]
        side = context_size(w, h, 0.5) * INSTANCE / EXEMPLAR * REGION_SCALE
        region = crop_square(image, (cx, cy), side, REGION_PX, image.reshape(-1, 3).mean(0))
        ok, jpeg = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"cannot encode a region of {seq.frames[i]}")
        frames.append(i)
        regions.append(jpeg.tobytes())
        origins.append((cx, cy, REGION_PX / side))
    return PackedClip(seq.name, np.asarray(frames), regions, np.asarray(origins, dtype=np.float64), boxes)


def save_pack(clips: list[PackedClip], path: Path) -> None:
    arrays: dict[str, np.ndarray] = {"names": np.array([c.name for c in clips])}
    for k, c in enumerate(clips):
        arrays[f"{k}_frames"] = c.frames
        arrays[f"{k}_origins"] = c.origins
        arrays[f"{k}_boxes"] = c.boxes
        arrays[f"{k}_lengths"] = np.array([len(r) for r in c.regions])
        arrays[f"{k}_jpeg"] = np.frombuffer(b"".join(c.regions), dtype=np.uint8)
    np.savez(path, **arrays)


def load_pack(path: Path) -> list[PackedClip]:
    clips = []
    with np.load(path) as data:
        for k, name in enumerate(data["names"]):
            blob = data[f"{k}_jpeg"].tobytes()
            ends = np.cumsum(data[f"{k}_lengths"])
            starts = np.concatenate([[0], ends[:-1]])
            clips.append(
                PackedClip(
                    str(name),
                    data[f"{k}_frames"],
                    [blob[a:b] for a, b in zip(starts, ends)],
                    data[f"{k}_origins"],
                    data[f"{k}_boxes"],
                )
            )
    return clips


class RealClipPairSampler:
    """Pairs from packed real clips: template from stored frame i, search from a stored frame at most
    `max_gap` frames away (either direction); negatives take the search from another clip."""

    def __init__(self, clips: list[PackedClip], cfg: PairConfig | None = None, max_gap: int = 100):
        self.clips = [c for c in clips if len(c.frames) >= 2]
        if len(self.clips) < 2:
            raise ValueError("real-clip pairs need at least two packed clips with two frames each")
        self.cfg = cfg or PairConfig()
        self.max_gap = max_gap
        self._decoded: dict[tuple[int, int], np.ndarray] = {}

    def region(self, clip: int, index: int) -> np.ndarray:
        key = (clip, index)
        if key not in self._decoded:
            data = np.frombuffer(self.clips[clip].regions[index], dtype=np.uint8)
            self._decoded[key] = cv2.imdecode(data, cv2.IMREAD_COLOR)
        return self._decoded[key]

    def _in_region(self, clip: PackedClip, index: int, point: np.ndarray) -> np.ndarray:
        """Frame point -> pixels of stored region `index` (centre at (REGION_PX - 1) / 2)."""
        cx, cy, scale = clip.origins[index]
        return (point - np.array([cx, cy])) * scale + (REGION_PX - 1) / 2.0

    def _box(self, clip: PackedClip, index: int) -> tuple[float, float, float, float]:
        frame_box = clip.boxes[clip.frames[index]]
        centre = self._in_region(clip, index, frame_box[:2])
        scale = clip.origins[index, 2]
        return float(centre[0]), float(centre[1]), float(frame_box[2] * scale), float(frame_box[3] * scale)

    def sample(self, rng: np.random.Generator) -> Pair:
        k = int(rng.integers(len(self.clips)))
        clip = self.clips[k]
        i = int(rng.integers(len(clip.frames)))
        near = np.flatnonzero(np.abs(clip.frames - clip.frames[i]) <= self.max_gap)
        j = int(rng.choice(near[near != i])) if len(near) > 1 else i
        box_t = self._box(clip, i)
        if rng.random() < self.cfg.neg_prob:
            other = int(rng.choice([n for n in range(len(self.clips)) if n != k]))
            frame = self.region(other, int(rng.integers(len(self.clips[other].frames))))
            return crop_pair(
                self.region(k, i), box_t, frame, self._box(clip, j), rng, self.cfg, negative=True, negative_frame=frame
            )
        # where a tracker would centre the search: the target's position 1-3 frames earlier
        back = clip.boxes[max(0, int(clip.frames[j]) - int(rng.integers(1, 4)))]
        hint = None
        if _valid(back):
            point = self._in_region(clip, j, back[:2])
            hint = (float(point[0]), float(point[1]))
        return crop_pair(self.region(k, i), box_t, self.region(k, j), self._box(clip, j), rng, self.cfg, centre_hint=hint)
