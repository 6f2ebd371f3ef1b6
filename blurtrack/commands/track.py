"""`blurtrack track VIDEO --box x,y,w,h`: run the pipeline over a video file or image folder."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from tqdm import tqdm

from blurtrack.engine.manifest import PRECISION_CHOICES
from blurtrack.engine.runtime import BACKEND_NAMES
from blurtrack.engine.settings import get_engine_settings


def configure(parser: argparse.ArgumentParser) -> None:
    settings = get_engine_settings()
    parser.add_argument(
        "video", help="video file (.mp4, .avi, ...), folder of images (or a sequence folder with img/) or camera index"
    )
    parser.add_argument("--box", required=True, help="target in the first frame: x,y,w,h (pixels, top-left)")
    parser.add_argument(
        "--boxes",
        "--csv",
        type=Path,
        dest="boxes",
        help="CSV of per-frame results (default: <name>.boxes.csv beside the video or folder)",
    )
    parser.add_argument("--out", type=Path, help="write an annotated video (box, score, latency) here (.mp4)")
    parser.add_argument(
        "--show-deblur",
        action="store_true",
        help="with --out: also write <out>.deblur.mp4, search crop | network input after deblur",
    )
    parser.add_argument("--no-deblur", action="store_true", help="never run the deblur network")
    parser.add_argument("--bundle", default=settings.bundle, help="model bundle name or folder")
    parser.add_argument("--backend", default=settings.backend, choices=BACKEND_NAMES)
    parser.add_argument("--threads", type=int, default=settings.threads)
    parser.add_argument(
        "--precision", default=settings.precision, choices=PRECISION_CHOICES, help="network precision (auto: the bundle's choice)"
    )


def side_by_side(crop, network_view, deblurred: bool):
    """Search crop | what the tracker network saw, under a caption bar (even height for mp4)."""
    import cv2
    import numpy as np

    pair = np.hstack([crop, network_view])
    bar = np.zeros((25, pair.shape[1], 3), np.uint8)
    cv2.putText(bar, "search crop", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    right = "after deblur" if deblurred else "deblur skipped"
    cv2.putText(bar, right, (crop.shape[1] + 6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([bar, pair])


def default_boxes_path(source: str) -> Path:
    """<name>.boxes.csv beside the input: clip.mp4 -> clip.boxes.csv, Jumping/ or Jumping/img/ ->
    Jumping.boxes.csv beside the folder; a camera's in the working directory."""
    if source.isdigit():
        return Path(f"camera{source}.boxes.csv")
    path = Path(source).resolve()
    if path.is_dir():
        folder = path.parent if path.name == "img" else path
        return folder.parent / f"{folder.name}.boxes.csv"
    return path.with_name(path.stem + ".boxes.csv")


def run(args: argparse.Namespace) -> int:
    from blurtrack.clients.drawing import VideoWriter, draw_box
    from blurtrack.clients.sources import open_source
    from blurtrack.engine.pipeline import Pipeline

    if args.show_deblur and args.out is None:
        raise SystemExit("--show-deblur needs --out (the crops are written beside the annotated video)")
    try:
        source = open_source(str(args.video))
    except OSError as exc:
        print(f"blurtrack track: error: {exc}", file=sys.stderr)
        return 2
    pipeline = Pipeline.from_bundle(args.bundle, backend=args.backend, threads=args.threads, precision=args.precision)
    tracker = pipeline.new_tracker(
        deblur="off" if args.no_deblur else "on" if args.show_deblur else None, keep_crops=args.show_deblur
    )
    boxes_path = args.boxes or default_boxes_path(str(args.video))
    annotated = VideoWriter(args.out, source.fps) if args.out else None
    crops = VideoWriter(args.out.with_suffix(".deblur.mp4"), source.fps) if args.show_deblur else None

    with boxes_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "x", "y", "w", "h", "score", "state", "deblurred", "total_ms"])
        for index, frame in enumerate(tqdm(source.frames, total=source.total, unit="frame", desc="tracking")):
            result = tracker.init(frame, args.box) if index == 0 else tracker.track(frame)
            x, y, w, h = result.box
            writer.writerow(
                [
                    index + 1,
                    f"{x:.2f}",
                    f"{y:.2f}",
                    f"{w:.2f}",
                    f"{h:.2f}",
                    f"{result.score:.4f}",
                    result.state,
                    int(result.deblurred),
                    f"{result.timings['total']:.2f}",
                ]
            )
            if annotated is not None:
                label = f"#{index + 1} {result.state} score {result.score:.2f} {result.timings['total']:.1f} ms"
                annotated.write(draw_box(frame, result.box, result.state, label))
            if crops is not None and tracker.last_crops is not None:
                crops.write(side_by_side(*tracker.last_crops, deblurred=result.deblurred))
    for video in (annotated, crops):
        if video is not None:
            video.close()
    print(f"wrote {index + 1} boxes to {boxes_path}" + (f" and the annotated video {args.out}" if args.out else ""))
    return 0
