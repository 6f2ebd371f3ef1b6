"""`python -m blurtrack.models.tracker.pack --out DIR`: everything a tracker training run reads, in one small
folder that can travel to a machine without `../shared` (a lent GPU machine takes 64 MiB).

DIR/real_train.npz  the real-train clips of the `train` split as regions around the target
                    (models.tracker.real_clips), every `--every`-th frame;
DIR/photos/         the train and dev photos, downsized, under their own names (the photo split
                    hashes the file name, so it is unchanged);
DIR/backbone-<config>.npz  the ImageNet-initialised trunk of each EfficientNet config, so the run
                    needs no weights package;
DIR/teacher/        NanoTrack v2's two ONNX files, for a distillation run (models.tracker.teacher).

Train on it with `--set real.pack=DIR/real_train.npz --set images=DIR/photos
--set net.backbone_init=DIR/backbone-tracker.npz`, and distil with `--set
'distill={"lambda": 1.0, "teacher_dir": "DIR/teacher"}'` (scripts/gpu_train.sh does).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from blurtrack.models.evaluation.splits import split_dirs
from blurtrack.models.paths import shared_dir
from blurtrack.models.synth import default_images_dir, split_images
from blurtrack.models.tracker.real_clips import pack_clip, save_pack
from blurtrack.models.tracker.teacher import BACKBONE_FILE, HEAD_FILE, default_teacher_dir

PHOTO_MAX_SIDE = 320
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def pack_photos(images_dir: Path, out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    split = split_images(images_dir)
    count = 0
    for path in split["train"] + split["dev"]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read photo {path}")
        scale = PHOTO_MAX_SIDE / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out_dir / f"{path.stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        count += 1
    return count


def pack_backbone(net_cfg: dict, path: Path) -> None:
    from blurtrack.models.tracker.net import build_tracker

    net = build_tracker({**net_cfg, "pretrained": True})
    arrays = {k: v.numpy() for k, v in net.backbone.state_dict().items()}
    np.savez_compressed(path, **arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blurtrack.models.tracker.pack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (keep it out of git)")
    parser.add_argument("--every", type=int, default=2, help="keep every N-th frame of each clip (default 2)")
    parser.add_argument("--real-train", type=Path, default=None, help="default ../shared/data/real-train")
    parser.add_argument(
        "--configs",
        nargs="+",
        type=Path,
        default=[CONFIGS / "tracker.json", CONFIGS / "tracker_noeca.json"],
        help="training configs whose ImageNet trunk to pack",
    )
    args = parser.parse_args(argv)
    real_train = args.real_train or shared_dir() / "data" / "real-train"
    args.out.mkdir(parents=True, exist_ok=True)
    clips = [pack_clip(d, every=args.every) for d in split_dirs(real_train, "train")]
    save_pack(clips, args.out / "real_train.npz")
    print(f"{sum(len(c.frames) for c in clips)} regions of {len(clips)} clips -> {args.out / 'real_train.npz'}")
    print(f"{pack_photos(default_images_dir(), args.out / 'photos')} photos -> {args.out / 'photos'}")
    for config in args.configs:
        path = args.out / f"backbone-{config.stem}.npz"
        pack_backbone(json.loads(config.read_text())["net"], path)
        print(f"ImageNet trunk of {config.name} -> {path}")
    teacher = args.out / "teacher"
    teacher.mkdir(exist_ok=True)
    for name in (BACKBONE_FILE, HEAD_FILE):
        shutil.copyfile(default_teacher_dir() / name, teacher / name)
    print(f"NanoTrack v2 teacher -> {teacher}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
