"""What a tracking session costs the engine: resident memory per added session, and engine ms per
frame with N sessions taking turns, for each way of running the search network, in one run.

    python scripts/bench_sessions.py [--bundle blurtrack-effnet-eca] [--sessions 1 4 16] [--rounds 3]
    python scripts/bench_sessions.py --baseline ../main      # also the code of another checkout

Variants (each measured in a fresh child process, rounds interleaved so a slow phase of the host
hits all of them alike):
  mslite parts        MindSpore Lite, features and head shared, a correlation per session (default)
  mslite whole-each   MindSpore Lite, a whole search network per session (the layout before parts)
  onnxruntime         ONNX Runtime, one whole search network shared
  baseline <backend>  --baseline: the other checkout's code with its own defaults, on the same
                      model files (BLURTRACK_MODELS_DIR points both at this checkout's bundles)

Every session tracks the same real clip (default ../shared/data/real/Crossing), frames interleaved
across sessions as a server takes them. MB/session = (RSS after N inits - RSS before) / N.
Engine ms/frame = the median of TrackResult.timings["total"] (crop, deblur gate, networks, post).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "real" / "Crossing"
ROOMS = ("engine", "service", "models", "clients")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(variant: str, backend: str, sessions: int, bundle: str, clip: str, threads: int) -> dict:
    """Runs in the child: N sessions on one pipeline, their memory and their engine time."""
    from blurtrack.engine.otb import load_sequence
    from blurtrack.engine.pipeline import Pipeline

    seq = load_sequence(clip)
    frames = [seq.read_frame(i) for i in range(len(seq))]
    pipeline = Pipeline.from_bundle(bundle, backend=backend, threads=threads)
    if variant == "whole-each":
        from blurtrack.engine.runtime.search import PerTargetSearch

        search_file = pipeline.bundle.path(pipeline.bundle.manifest.search.ms)
        load = pipeline.backend.load
        pipeline.networks.search = PerTargetSearch(
            lambda kernels: load(search_file, weight_inputs=kernels), pipeline.bundle.manifest.search_image_input
        )
    warm = pipeline.new_tracker()  # the first calls of a runtime allocate; keep them out of both numbers
    warm.init(frames[0], tuple(seq.init_box))
    for frame in frames[1:4]:
        warm.track(frame)
    before = rss_mb()
    trackers = [pipeline.new_tracker() for _ in range(sessions)]
    for tracker in trackers:
        tracker.init(frames[0], tuple(seq.init_box))
        tracker.track(frames[1])  # a session's buffers exist once it has tracked a frame
    per_session = (rss_mb() - before) / sessions
    total, network = [], []
    for frame in frames[2:]:
        for tracker in trackers:
            timings = tracker.track(frame).timings
            total.append(timings["total"])
            network.append(timings["track"])
    return {"mb_per_session": per_session, "engine_ms": float(np.median(total)), "network_ms": float(np.median(network))}


def package_root(checkout: Path, work: Path) -> Path:
    """A folder where `import blurtrack` finds `checkout`'s code (setup.py maps its top-level
    folders onto blurtrack.*): blurtrack/ with links to the checkout's files and rooms."""
    package = work / "blurtrack"
    package.mkdir()
    for entry in (checkout / "blurtrack").iterdir():
        (package / entry.name).symlink_to(entry)
    for room in ROOMS:
        (package / room).symlink_to(checkout / room)
    return work


def run_child(variant: str, backend: str, sessions: int, args, pythonpath: Path | None) -> dict:
    env = dict(os.environ, BLURTRACK_MODELS_DIR=str(REPO / "models" / "weights"))
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    spec = json.dumps([variant, backend, sessions, args.bundle, str(args.clip), args.threads])
    result = subprocess.run([sys.executable, __file__, "--child", spec], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{variant} {backend} x{sessions} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="blurtrack-effnet-eca")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="an OTB-layout sequence folder")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3, help="measurements per variant; the median is shown")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout of this repository to measure alongside")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return 0
    variants = [("parts", "mslite", None), ("whole-each", "mslite", None), ("shared", "onnxruntime", None)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            root = package_root(args.baseline.resolve(), Path(tmp))
            variants += [("baseline", "mslite", root), ("baseline", "onnxruntime", root)]
        print(f"bundle {args.bundle}, clip {args.clip.name}, {args.threads} threads; median of {args.rounds} rounds")
        print(
            f"{'variant':<24} {'sessions':>8} {'MB/session':>10} {'engine ms/frame':>15} {'network ms':>10} {'engine / first':>14}"
        )
        for sessions in args.sessions:
            runs: dict[tuple[str, str], list[dict]] = {(v, b): [] for v, b, _ in variants}
            for _ in range(args.rounds):
                for variant, backend, path in variants:
                    runs[(variant, backend)].append(run_child(variant, backend, sessions, args, path))
            rows = {key: {m: float(np.median([r[m] for r in results])) for m in results[0]} for key, results in runs.items()}
            first = next(iter(rows.values()))["engine_ms"]
            for (variant, backend), row in rows.items():
                print(
                    f"{backend + ' ' + variant:<24} {sessions:>8} {row['mb_per_session']:>10.2f} "
                    f"{row['engine_ms']:>15.2f} {row['network_ms']:>10.2f} {row['engine_ms'] / first:>14.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
