"""`blurtrack bench`: our tracker, its ablations and the peer trackers (OpenCV CSRT, KCF, NanoTrack
v2, VitTrack) on the validation clips (the real-train holdout split), the smoke clips and the
synthetic test sequences in one run; writes a markdown table, JSON and PNG plots. Rows, bundles and data sets come from models/evaluation/bench.toml (or --config)."""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shlex
import sys
import time
from pathlib import Path

from blurtrack.commands.arguments import positive_int
from blurtrack.engine.runtime import BACKEND_NAMES


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=_names,
        help="comma-separated data sets from the config (default: all: validation,validation-blurred,smoke,synthetic)",
    )
    parser.add_argument("--trackers", type=_names, help="comma-separated tracker rows from the config (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder (default: ./bench-results)")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write the report here (e.g. BENCHMARKS.md), plots linked relative to it",
    )
    parser.add_argument("--config", type=Path, help="bench config TOML (default: models/evaluation/bench.toml)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, help="runtime for our bundles (default: BLURTRACK_BACKEND or auto)")
    parser.add_argument(
        "--threads", type=positive_int, help="threads per tracker, ours and the peers (default: BLURTRACK_THREADS or 2)"
    )
    parser.add_argument(
        "--synthetic-sequences", type=positive_int, metavar="N", help="override the synthetic split's sequence count"
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="synthetic data and the peers venv (default: $BLURTRACK_CACHE_DIR or ~/.cache/blurtrack)"
    )
    parser.add_argument(
        "--setup-peers", action="store_true", help="only create the peers venv with opencv-contrib (CSRT, KCF), then exit"
    )
    parser.add_argument(
        "--no-peer-setup", action="store_true", help="do not create the peers venv on demand; its rows say how to"
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("blurtrack", "numpy", "opencv-python-headless", "onnxruntime", "matplotlib"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def run(args: argparse.Namespace) -> int:
    from blurtrack.engine.settings import get_engine_settings
    from blurtrack.models.evaluation import benchmark, peers
    from blurtrack.models.paths import shared_dir

    cache_dir = args.cache_dir or peers.default_cache_dir()
    if args.setup_peers:
        python = peers.setup_peers_venv(cache_dir, quiet=False)
        print(f"peer trackers venv ready: {python} ({peers.CONTRIB_REQUIREMENT})")
        return 0

    settings = get_engine_settings()
    backend = args.backend or settings.backend
    threads = args.threads or settings.threads
    config = benchmark.load_config(args.config)
    data_names = benchmark.select(args.data, list(config.data), "data set")
    tracker_names = benchmark.select(args.trackers, [t.name for t in config.trackers], "tracker")
    shared = shared_dir()
    started = time.perf_counter()
    started_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")

    datasets, data_info = _load_data(args, config, data_names, cache_dir, shared)
    specs = [t for t in config.trackers if t.name in tracker_names]
    contenders = benchmark.build_contenders(specs, backend, threads, cache_dir, shared, setup_peers=not args.no_peer_setup)
    reference = config.reference if config.reference in tracker_names else tracker_names[0]
    result = _run_contenders(contenders, datasets, reference)
    meta = {
        "command": "blurtrack " + shlex.join(sys.argv[1:]) if Path(sys.argv[0]).name == "blurtrack" else "blurtrack bench",
        "started": started_at,
        **_host(),
        "threads": threads,
        "backend": backend,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "versions": _versions(),
    }
    _report(args, result, meta, data_info, data_names)
    return 0


def _load_data(args: argparse.Namespace, config, data_names: list[str], cache_dir: Path, shared: Path) -> tuple[dict, dict]:
    """The chosen data sets' sequences (the synthetic split rendered once, then cached) and their sizes."""
    import dataclasses

    from blurtrack.models.evaluation import benchmark

    data_specs = [config.data[n] for n in data_names]
    if args.synthetic_sequences:
        data_specs = [
            dataclasses.replace(d, sequences=args.synthetic_sequences) if d.kind == "synthetic" else d for d in data_specs
        ]
    print(
        f"preparing data: {', '.join(data_names)} (the synthetic split is rendered once, then cached in {cache_dir})",
        file=sys.stderr,
    )
    return benchmark.load_datasets(data_specs, cache_dir, shared)


def _run_contenders(contenders: list, datasets: dict, reference: str) -> dict:
    """Every contender that can run over every sequence; refused when none can."""
    from tqdm import tqdm

    from blurtrack.engine.errors import BlurtrackError
    from blurtrack.models.evaluation import benchmark

    available = [c for c in contenders if c.available]
    if not available:
        reasons = "; ".join(f"{c.spec.name}: {c.reason}" for c in contenders)
        raise BlurtrackError(f"no tracker can run: {reasons}")
    total = sum(len(s) for seqs in datasets.values() for s in seqs) * len(available)
    with tqdm(total=total, unit="frame", desc="bench", file=sys.stderr, dynamic_ncols=True) as bar:
        return benchmark.run_bench(contenders, datasets, reference, bar)


def _host() -> dict[str, str]:
    from blurtrack.models.evaluation.host import host_signature

    return {k: v for k, v in host_signature().items() if k in ("machine", "simd")}


def _report(args: argparse.Namespace, result: dict, meta: dict, data_info: dict, data_names: list[str]) -> None:
    """Write the markdown, JSON and plots, and print each data set's table and why rows are missing."""
    from blurtrack.models.evaluation.bench_report import accuracy_table, write_outputs

    written = write_outputs(result, meta, data_info, args.out, args.markdown)
    for data_name in data_names:
        info = data_info[data_name]
        print(f"\n{data_name}: {info['sequences']} sequences, {info['frames']} frames")
        print(accuracy_table(result["trackers"], data_name, result["reference"]))
    for row in result["trackers"]:
        if row["reason"]:
            print(f"- {row['name']}: {row['reason']}")
    print(f"\nwall time {meta['wall_seconds']:.0f} s; wrote " + ", ".join(str(p) for p in written.values()))
