"""`blurtrack eval DATASET_DIR --out RESULTS_DIR`: run our tracker on every sequence of an OTB-layout
folder, write a box file per sequence and summary.json, print a short table."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from blurtrack.commands.arguments import jpeg_quality, positive_int
from blurtrack.engine.deblur import DeblurMode
from blurtrack.engine.manifest import PRECISION_CHOICES
from blurtrack.engine.runtime import BACKEND_NAMES

if TYPE_CHECKING:
    from blurtrack.engine.settings import EngineSettings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", type=Path, metavar="DATASET_DIR", help="OTB layout: <seq>/img/*.jpg + <seq>/groundtruth_rect.txt"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="RESULTS_DIR", help="where <seq>.txt and summary.json go")
    parser.add_argument("--bundle", help="bundle name under the models folder, or a bundle folder (default: BLURTRACK_BUNDLE)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, help="inference runtime (default: BLURTRACK_BACKEND or auto)")
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        help="network precision (default: BLURTRACK_PRECISION or auto, the bundle's choice)",
    )
    parser.add_argument("--no-deblur", action="store_true", help="never run the deblur network (ablation)")
    parser.add_argument("--threads", type=positive_int, help="intra-op threads per network (default: BLURTRACK_THREADS or 2)")
    parser.add_argument(
        "--jpeg-quality",
        type=jpeg_quality,
        metavar="Q",
        help="track every sequence re-encoded as JPEG at quality Q (1-100) instead of its files: what a camera's "
        "encoder sends; closed-loop tracking can turn a small change of input into a lost target",
    )


def run(args: argparse.Namespace) -> int:
    from blurtrack.engine.otb import find_sequences, reencode_sequence
    from blurtrack.engine.settings import get_engine_settings

    settings = get_engine_settings()
    sequences = find_sequences(args.dataset)
    with tempfile.TemporaryDirectory(prefix="blurtrack-eval-jpeg-") as scratch:
        if args.jpeg_quality is not None:
            sequences = [reencode_sequence(s, Path(scratch), args.jpeg_quality) for s in sequences]
        return _evaluate(args, settings, sequences)


def _evaluate(args: argparse.Namespace, settings: EngineSettings, sequences: list) -> int:
    from tqdm import tqdm

    from blurtrack.engine.otb import write_boxes
    from blurtrack.engine.pipeline import Pipeline
    from blurtrack.models.evaluation.runner import evaluate, run_dataset
    from blurtrack.models.evaluation.tables import markdown_table

    bundle = args.bundle or settings.bundle
    backend = args.backend or settings.backend
    threads = args.threads or settings.threads
    pipeline = Pipeline.from_bundle(bundle, backend=backend, threads=threads, precision=args.precision or settings.precision)
    deblur: DeblurMode | None = "off" if args.no_deblur else None

    total = sum(len(s) for s in sequences)
    with tqdm(total=total, unit="frame", desc="eval", file=sys.stderr, dynamic_ncols=True) as bar:
        runs = run_dataset(lambda: pipeline.new_tracker(deblur=deblur), sequences, bar.update)

    args.out.mkdir(parents=True, exist_ok=True)
    for run_ in runs:
        write_boxes(args.out / f"{run_.name}.txt", run_.boxes)
    report = evaluate(runs, sequences)
    described = pipeline.describe()
    summary = {
        "dataset": str(args.dataset.resolve()),
        "bundle": described["bundle"],
        "bundle_dir": described.get("bundle_dir"),
        "backend": described["backend"],
        "device": described.get("device"),
        "threads": threads,
        "deblur": "off" if args.no_deblur else f"bundle policy ({described.get('deblur_policy')})",
        "jpeg_quality": args.jpeg_quality,
        "pipeline": described,
        "box_convention": "x,y,w,h as in the ground truth files (OTB: 1-based)",
        **report,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    header = ["sequence", "frames", "P@15", "P@20", "S@0.6", "AUC", "FPS"]

    def row(name: str, r: dict) -> list:
        fps = "–" if r["fps"] is None else f"{r['fps']:.1f}"
        return [name, r["frames"], r["precision@15"], r["precision@20"], r["success@0.6"], r["auc"], fps]

    rows = [row(name, r) for name, r in report["sequences"].items()]
    rows.append(row("all (pooled)", report["pooled"]))
    p = report["pooled"]
    print(markdown_table(header, rows))
    latency = ", ".join(f"{stage} {v['median']:.1f}/{v['p95']:.1f}" for stage, v in p["latency_ms"].items())
    print(
        f"\nbundle {summary['bundle']} on {summary['backend']} ({summary['device']}, {threads} threads), deblur {summary['deblur']}; "
        f"precision: {described['precision']}"
    )
    print(f"latency ms median/p95: {latency}")
    print(f"wrote {len(runs)} box files and {args.out / 'summary.json'}")
    return 0
