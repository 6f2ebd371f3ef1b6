"""The fixed split of `../shared/data/real-train` into whole clips, named once for the project.

- train: the only clips training pairs are cut from;
- select: every choice (checkpoint, calibration, tracker settings, deblur policy) is made here;
- holdout: never seen by training or any choice; scored once, at the end, and reported apart
  (`blurtrack bench`'s validation table).

Each set holds clips with motion blur (OTB attribute MB, or VOT's blurred ball1) and without.
"""

from __future__ import annotations

from pathlib import Path

REAL_TRAIN_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("Tiger1", "ball1", "Bird2", "MountainBike", "Jogging", "Freeman1", "bag", "Football1"),
    "select": ("MotorRolling", "Couple", "Diving"),
    "holdout": ("Biker", "DragonBaby", "Coke", "Human3"),
}

#: clips whose frames carry strong motion blur (OTB MB attribute; ball1: VOT, blurred legs)
BLURRED_CLIPS = frozenset({"Tiger1", "ball1", "Biker", "DragonBaby", "MotorRolling"})


def split_clips(split: str) -> tuple[str, ...]:
    try:
        return REAL_TRAIN_SPLIT[split]
    except KeyError:
        raise ValueError(f"unknown real-train split {split!r}: use one of {', '.join(REAL_TRAIN_SPLIT)}") from None


def split_dirs(real_train_dir: Path, split: str) -> list[Path]:
    """The sequence folders of one split, in the split's order."""
    return [Path(real_train_dir) / name for name in split_clips(split)]
