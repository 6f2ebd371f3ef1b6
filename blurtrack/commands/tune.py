"""`blurtrack tune`: choose a bundle's tracker hyper-parameters (penalty_k, window_influence, lr;
with --box-vote-iou also box voting, with --aspect-lr the aspect ratio's pace) and, with
--blur-threshold, --rescue-score and --deblur-strength, its deblur policy by grid search on the
real-train `select` clips (models/evaluation/splits.py; or a synthetic split); prints the ranking,
writes it as JSON, and with --apply writes the best setting into the bundle's manifest.

The holdout clips, the synthetic test split and the smoke clips are what results are reported on,
so they are not offered here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blurtrack.commands.arguments import jpeg_quality, positive_int
from blurtrack.engine.runtime import BACKEND_NAMES

DEFAULT_GRID = {
    "penalty_k": [0.05, 0.15, 0.25],
    "window_influence": [0.02, 0.1, 0.2],
    "lr": [0.25, 0.38, 0.5],
}
# tracker settings tuned only when their flag is given (values between 0 and 1): what each means
OPTIONAL_TRACKER_SETTINGS = {
    "box_vote_iou": "box-voting IoUs to try: the box is the score-weighted mean of the anchor boxes overlapping the "
    "best one by at least this IoU, 0 keeps the best box alone",
    "aspect_lr": "aspect-ratio learning rates to try: the box's w / h follows the chosen box at this times the "
    "size's pace, 1 as w and h, 0 keeps the first box's",
    "template_update": "template-update weights to try: every --template-update-interval confident frames the kernels "
    "become this much the newest look at the target and the rest the first frame's, 0 never updates",
    "template_update_score": "template-update score gates to try: a frame updates the template only when its best "
    "score reaches this",
}


def _numbers(value: str, example: str) -> list[float]:
    try:
        numbers = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. {example}, got {value!r}") from None
    if not numbers:
        raise argparse.ArgumentTypeError(f"expected at least one number, e.g. {example}")
    return numbers


def _floats(value: str) -> list[float]:
    numbers = _numbers(value, "0.05,0.15")
    if any(not 0.0 <= n <= 1.0 for n in numbers):
        raise argparse.ArgumentTypeError(f"expected numbers between 0 and 1, got {value!r}")
    return numbers


def _intervals(value: str) -> list[float]:
    numbers = _numbers(value, "5,10,20")
    if any(n < 1 or n != int(n) for n in numbers):
        raise argparse.ArgumentTypeError(f"expected whole numbers of frames >= 1, got {value!r}")
    return numbers


def _thresholds(value: str) -> list[float]:
    numbers = _numbers(value, "75,150,300")
    if any(n < 0 for n in numbers):
        raise argparse.ArgumentTypeError(f"expected blur scores >= 0 (0 never deblurs), got {value!r}")
    return numbers


def _strengths(value: str) -> list[float]:
    numbers = _numbers(value, "0.5,1")
    if any(not 0.0 < n <= 1.0 for n in numbers):
        raise argparse.ArgumentTypeError(f"expected numbers above 0 and at most 1, got {value!r}")
    return numbers


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", help="bundle name under the models folder, or a bundle folder (default: BLURTRACK_BUNDLE)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, help="inference runtime (default: BLURTRACK_BACKEND or auto)")
    parser.add_argument("--threads", type=positive_int, help="intra-op threads per network (default: BLURTRACK_THREADS or 2)")
    parser.add_argument(
        "--deblur",
        choices=["bundle", "off", "auto"],
        default="bundle",
        help="deblur by the bundle's policy (default), never, or by the gate (auto: what --blur-threshold tunes, "
        "also for a bundle whose policy is off)",
    )
    _add_data_flags(parser)
    _add_tracker_flags(parser)
    _add_deblur_flags(parser)
    parser.add_argument("--out", type=Path, help="write the ranking here as JSON")
    parser.add_argument("--apply", action="store_true", help="write the best setting into the bundle's manifest.json")


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split",
        choices=["select", "dev", "train"],
        default="select",
        help="select: the real-train select clips (default); dev, train: a synthetic split",
    )
    parser.add_argument("--sequences", type=positive_int, default=20, help="synthetic sequences (default: 20)")
    parser.add_argument("--frames", type=positive_int, default=80, help="frames per sequence (default: 80)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic split seed (default: 0)")
    parser.add_argument(
        "--jpeg-quality",
        type=jpeg_quality,
        default=None,
        help="also track every clip re-encoded as JPEG at this quality and rank by both together, "
        "so the choice holds for what a camera's encoder sends (e.g. 80)",
    )
    parser.add_argument(
        "--starts",
        type=positive_int,
        default=1,
        help="track every clip from this many start frames spread over it and pool the runs "
        "(OTB's temporal robustness): one early loss then decides less of the score (default: 1, "
        "the first frame only)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where the synthetic split and re-encoded clips are cached (default: $BLURTRACK_CACHE_DIR or ~/.cache/blurtrack)",
    )


def _add_tracker_flags(parser: argparse.ArgumentParser) -> None:
    for name, values in DEFAULT_GRID.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(
            flag,
            type=_floats,
            default=values,
            dest=name,
            help=f"comma-separated values to try (default: {','.join(map(str, values))})",
        )
    for name, meaning in OPTIONAL_TRACKER_SETTINGS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=_floats,
            default=None,
            dest=name,
            help=f"comma-separated {meaning} (default: keep the bundle's)",
        )
    parser.add_argument(
        "--template-update-interval",
        type=_intervals,
        default=None,
        dest="template_update_interval",
        help="comma-separated frame counts to try between template updates (default: keep the bundle's)",
    )


def _add_deblur_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--blur-threshold",
        type=_thresholds,
        default=None,
        help="comma-separated deblur-gate thresholds to try: crops whose blur score (variance of the "
        "Laplacian) is below it are deblurred (default: keep the bundle's)",
    )
    parser.add_argument(
        "--rescue-score",
        type=_floats,
        default=None,
        help="comma-separated rescue scores to try: a frame the blur gate passed whose best tracker "
        "score is below it is tracked again on the deblurred crop, 0 never rescues "
        "(default: keep the bundle's)",
    )
    parser.add_argument(
        "--deblur-strength",
        type=_strengths,
        default=None,
        help="comma-separated deblur strengths to try: where the deblurrer runs, the search network "
        "sees strength x its output + (1 - strength) x the crop, 1 the output alone "
        "(default: keep the bundle's)",
    )


class _Refused(Exception):
    """A combination of flags this run cannot honour; the message says which and why."""


def run(args: argparse.Namespace) -> int:
    from blurtrack.engine.pipeline import Pipeline
    from blurtrack.engine.settings import get_engine_settings

    try:
        deblur_values = _deblur_values(args)
        settings = get_engine_settings()
        pipeline = Pipeline.from_bundle(
            args.bundle or settings.bundle, backend=args.backend or settings.backend, threads=args.threads or settings.threads
        )
        if deblur_values and not pipeline.has_deblur:
            raise _Refused(f"bundle {pipeline.bundle.name} has no deblur network, so no deblur policy to tune")
    except _Refused as exc:
        print(f"blurtrack tune: {exc}", file=sys.stderr)
        return 2
    sequences = _load_sequences(args)
    rows = _rank(args, pipeline, sequences, _grid(args, deblur_values))
    _print_ranking(args, pipeline, sequences, rows)
    if args.out:
        _write_report(args, pipeline, sequences, rows)
    if args.apply:
        _apply(pipeline, rows[0]["settings"], args.deblur)
    return 0


def _deblur_values(args: argparse.Namespace) -> dict[str, list[float]]:
    """The deblur-policy settings this run varies; refused with --deblur off, which never uses them."""
    deblur_options = {
        "--blur-threshold": ("blur_threshold", args.blur_threshold),
        "--rescue-score": ("rescue_score", args.rescue_score),
        "--deblur-strength": ("strength", args.deblur_strength),
    }
    flags = [flag for flag, (_, v) in deblur_options.items() if v is not None]
    if flags and args.deblur == "off":
        raise _Refused(f"{', '.join(flags)} tune the deblur policy, which --deblur off never uses; drop one of them")
    return {key: v for key, v in deblur_options.values() if v is not None}


def _load_sequences(args: argparse.Namespace) -> list:
    """The select clips or a synthetic split, plus their JPEG re-encodings with --jpeg-quality, each
    tracked from --starts start frames."""
    from blurtrack.engine.otb import find_sequences, load_sequence, reencode_sequence
    from blurtrack.models.evaluation import peers
    from blurtrack.models.evaluation.benchmark import DataSpec, prepare_data
    from blurtrack.models.evaluation.splits import split_dirs
    from blurtrack.models.evaluation.temporal import temporal_segments
    from blurtrack.models.paths import shared_dir

    cache_dir = args.cache_dir or peers.default_cache_dir()
    if args.split == "select":
        sequences = [load_sequence(d) for d in split_dirs(shared_dir() / "data" / "real-train", "select")]
    else:
        spec = DataSpec(
            name=args.split, kind="synthetic", split=args.split, sequences=args.sequences, frames=args.frames, seed=args.seed
        )
        sequences = find_sequences(prepare_data(spec, cache_dir, shared_dir()))
    if args.jpeg_quality is not None:
        reencoded = cache_dir / f"jpeg-q{args.jpeg_quality}"
        sequences = sequences + [reencode_sequence(s, reencoded, args.jpeg_quality) for s in sequences]
    return temporal_segments(sequences, args.starts)


def _grid(args: argparse.Namespace, deblur_values: dict[str, list[float]]) -> list[dict[str, float]]:
    from blurtrack.models.evaluation.tuning import settings_grid

    values = {name: getattr(args, name) for name in DEFAULT_GRID}
    for name in (*OPTIONAL_TRACKER_SETTINGS, "template_update_interval"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values.update(deblur_values)
    return settings_grid(values)


def _rank(args: argparse.Namespace, pipeline, sequences: list, grid: list[dict[str, float]]) -> list[dict]:
    from tqdm import tqdm

    from blurtrack.models.evaluation.tuning import tune

    deblur = None if args.deblur == "bundle" else args.deblur
    total = len(grid) * sum(len(s) for s in sequences)
    with tqdm(total=total, unit="frame", desc=f"tune {len(grid)} settings", file=sys.stderr, dynamic_ncols=True) as bar:
        return tune(pipeline, sequences, grid, deblur, bar.update)


def _print_ranking(args: argparse.Namespace, pipeline, sequences: list, rows: list[dict]) -> None:
    from blurtrack.models.evaluation.tuning import DEBLUR_SETTINGS, TRACKER_SETTINGS

    manifest = pipeline.bundle.manifest
    where = "the real-train select clips" if args.split == "select" else f"the synthetic {args.split} split"
    print(
        f"bundle {pipeline.bundle.name} on {where} ({len(sequences)} runs from {args.starts} start(s) per clip), "
        f"deblur {args.deblur}; "
        f"bundle now: "
        + ", ".join(f"{k} {getattr(manifest.tracker, k)}" for k in TRACKER_SETTINGS)
        + "".join(f", {k} {getattr(manifest.deblur_policy, k)}" for k in DEBLUR_SETTINGS)
    )
    print("objective = (precision@15 + success@0.6) / 2")
    for row in rows:
        setting = ", ".join(f"{k} {v:g}" for k, v in row["settings"].items())
        print(
            f"  {row['objective']:.4f}  P@15 {row['precision@15']:.4f}  S@0.6 {row['success@0.6']:.4f}  AUC {row['auc']:.4f}  "
            f"deblurred {row['deblurred_frames']}  {setting}"
        )
    best_tracker, best_deblur = _split_settings(rows[0]["settings"])
    print(f"best: --tracker-json '{json.dumps(best_tracker)}'" + (f", deblur policy {best_deblur}" if best_deblur else ""))


def _split_settings(settings: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """A setting's tracker part and its deblur-policy part."""
    from blurtrack.models.evaluation.tuning import DEBLUR_SETTINGS, TRACKER_SETTINGS

    return (
        {k: v for k, v in settings.items() if k in TRACKER_SETTINGS},
        {k: v for k, v in settings.items() if k in DEBLUR_SETTINGS},
    )


def _write_report(args: argparse.Namespace, pipeline, sequences: list, rows: list[dict]) -> None:
    from blurtrack.models.evaluation.host import host_signature

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # the host too: boxes, hence objectives, differ between CPUs (models/evaluation/host.py)
    report = {
        "bundle": pipeline.bundle.name,
        "bundle_dir": str(pipeline.bundle.root),
        "split": args.split,
        "jpeg_quality": args.jpeg_quality,
        "starts": args.starts,
        "sequences": len(sequences),
        "frames": args.frames,
        "seed": args.seed,
        "deblur": args.deblur,
        "host": host_signature(),
        "ranking": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")


def _apply(pipeline, best: dict[str, float], deblur: str) -> None:
    """Write the best setting into the bundle's manifest through the bundle's own save (a copy of
    the bundle: the loaded pipeline keeps the settings it was built with); ranked with the gate on
    (--deblur auto), the policy becomes auto, as it was measured."""
    from blurtrack.models.evaluation.tuning import with_settings

    manifest = pipeline.bundle.manifest
    tracker, policy = with_settings(manifest, best)
    if deblur == "auto":
        policy = policy.model_copy(update={"mode": "auto"})
    tuned_manifest = manifest.model_copy(update={"tracker": tracker, "deblur_policy": policy})
    tuned = pipeline.bundle.model_copy(update={"manifest": tuned_manifest})
    print(f"wrote {best} into {tuned.save()}")
