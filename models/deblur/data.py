"""Training and held-out crop pairs for the deblurrer, from models.synth.blur_pair.

Train pairs come only from the TRAIN split photos, validation pairs from DEV, the export's
report from TEST (models.synth.split_images: disjoint by file name).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blurtrack.models import synth


def load_split_images(split: str, images_dir: str | Path | None = None) -> list[np.ndarray]:
    return [synth.load_image(p) for p in synth.split_images(images_dir)[split]]


def sample_batch(
    images: list[np.ndarray], rng: np.random.Generator, size: int, batch: int, max_smear: float, k_range: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) float32 NCHW BGR 0..255 arrays of `batch` pairs."""
    blurred, sharp = [], []
    for _ in range(batch):
        image = images[int(rng.integers(len(images)))]
        b, s = synth.blur_pair(image, rng, size=size, k_range=k_range, max_smear=max_smear)
        blurred.append(b)
        sharp.append(s)
    to_nchw = lambda xs: np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2), dtype=np.float32)  # noqa: E731
    return to_nchw(blurred), to_nchw(sharp)


def fixed_pairs(
    split: str, n: int, seed: int, size: int = 255, max_smear: float = 48.0, images_dir: str | Path | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` deterministic (blurred, sharp) uint8 HWC pairs from one split's photos."""
    paths = synth.split_images(images_dir)[split]
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        image = synth.load_image(paths[i % len(paths)])
        pairs.append(synth.blur_pair(image, rng, size=size, max_smear=max_smear))
    return pairs


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 0..255 images (uint8 or float)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse <= 1e-10 else 10.0 * np.log10(255.0**2 / mse)
