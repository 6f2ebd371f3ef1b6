"""How a tracker's box shape differs from the ground truth's, per sequence.

    python scripts/box_shape.py DATASET_DIR BOXES_DIR [BOXES_DIR ...]

DATASET_DIR is OTB layout (<seq>/groundtruth_rect.txt); each BOXES_DIR holds <seq>.txt box files
as `blurtrack eval` and `blurtrack bench` write them. Prints, for every scored frame pooled per
sequence, the median ratio of the predicted width and height to the ground truth's and the median
log aspect-ratio error (log(w/h) predicted minus ground truth; < 0: the box is too tall).
A diagnostic; nothing is tuned on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from blurtrack.engine.otb import find_sequences, read_groundtruth


def shape_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    scored = np.arange(len(gt)) > 0  # the first frame is the initialisation
    scored &= (gt[:, 2] > 0) & (gt[:, 3] > 0) & np.isfinite(pred).all(axis=1)
    g, p = gt[scored], pred[scored]
    return {
        "frames": int(scored.sum()),
        "w_ratio": float(np.median(p[:, 2] / g[:, 2])),
        "h_ratio": float(np.median(p[:, 3] / g[:, 3])),
        "log_aspect_error": float(np.median(np.log(p[:, 2] / p[:, 3]) - np.log(g[:, 2] / g[:, 3]))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="median box-shape error of tracker outputs against the ground truth")
    parser.add_argument("dataset", type=Path, help="OTB-layout folder with the ground truth")
    parser.add_argument("boxes", type=Path, nargs="+", help="folders of <seq>.txt box files")
    args = parser.parse_args(argv)
    sequences = find_sequences(args.dataset)
    for folder in args.boxes:
        for seq in sequences:
            path = folder / f"{seq.name}.txt"
            if not path.is_file():
                print(f"{folder} {seq.name}: no {path.name}")
                continue
            e = shape_errors(seq.groundtruth, read_groundtruth(path))
            print(
                f"{folder} {seq.name}: {e['frames']} frames, median w ratio {e['w_ratio']:.3f}, "
                f"h ratio {e['h_ratio']:.3f}, log aspect error {e['log_aspect_error']:+.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
