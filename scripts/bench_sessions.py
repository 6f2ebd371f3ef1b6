"""What a tracking session costs the engine: resident memory per added session, and engine ms per
frame with N sessions taking turns, for each way of running the search network, in one run.

    python scripts/bench_sessions.py [--bundle blurtrack-effnet-eca] [--sessions 1 4 16] [--rounds 3]
    python scripts/bench_sessions.py --baseline ../main      # also the code of another checkout

Variants:
  mslite parts        MindSpore Lite, the features shared, a small head per session (the default)
  mslite ort-head     the same features, and one ONNX Runtime head shared by all sessions (it takes
                      the kernels as plain inputs: nothing per session but the kernels)
  mslite whole-each   MindSpore Lite, a whole search network per session (the layout before parts)
  onnxruntime shared  ONNX Runtime, one whole search network shared
  <backend> baseline  --baseline: the other checkout's code with its own defaults, on the same
                      model files (BLURTRACK_MODELS_DIR points both at this checkout's bundles)

Every session tracks the same real clip (default ../shared/data/real/Crossing). MB/session =
(RSS after N sessions have started and tracked a frame - RSS before) / N, each variant in a fresh
process. Engine ms/frame = the median of TrackResult.timings["total"] (crop, blur gate, networks,
post) over all rounds: one process per checkout and round holds all its variants and steps them
frame by frame (each variant's N sessions in turn, as a server takes them), so a slow phase of the
host hits every variant alike; rounds alternate between the checkouts.
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


def make_pipeline(variant: str, backend: str, bundle: str, threads: int):
    """The bundle's pipeline with its search network in the variant's layout."""
    from blurtrack.engine.pipeline import Pipeline

    pipeline = Pipeline.from_bundle(bundle, backend=backend, threads=threads)
    if variant == "whole-each":
        from blurtrack.engine.runtime.search import PerTargetSearch

        search_file = pipeline.bundle.path(pipeline.bundle.manifest.search.ms)
        load = pipeline.backend.load
        pipeline.networks.search = PerTargetSearch(
            lambda kernels: load(search_file, weight_inputs=kernels), pipeline.bundle.manifest.search_image_input
        )
    if variant == "ort-head":  # the alternative to a head per session
        import onnx

        from blurtrack.engine.runtime.mslite.graph import split_search
        from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend

        manifest = pipeline.bundle.manifest
        split = split_search(onnx.load(str(pipeline.bundle.path(manifest.search.onnx))), manifest.search_image_input)
        head = Path(tempfile.mkdtemp()) / "head.onnx"
        onnx.save(split.head, str(head))
        shared = OnnxRuntimeBackend(threads=1).load(head)
        pipeline.networks.search.open_head = lambda kernels: shared
    return pipeline


def start_sessions(pipeline, sessions: int, seq, frames) -> list:
    """N sessions on the pipeline, each started and one frame in."""
    trackers = [pipeline.new_tracker() for _ in range(sessions)]
    for tracker in trackers:
        tracker.init(frames[0], tuple(seq.init_box))
        tracker.track(frames[1])
    return trackers


def memory_child(variant: str, backend: str, sessions: int, bundle: str, clip: str, threads: int) -> dict:
    from blurtrack.engine.otb import load_sequence

    seq = load_sequence(clip)
    frames = [seq.read_frame(i) for i in range(5)]
    pipeline = make_pipeline(variant, backend, bundle, threads)
    (warm,) = start_sessions(pipeline, 1, seq, frames)
    for frame in frames[2:]:
        warm.track(frame)  # a runtime's first calls allocate for good: keep them out
    before = rss_mb()
    trackers = start_sessions(pipeline, sessions, seq, frames)
    grown = rss_mb() - before
    return {"mb_per_session": grown / len(trackers)}


def time_child(variants: list, sessions: int, bundle: str, clip: str, threads: int, frames_each: int) -> dict:
    from blurtrack.engine.otb import load_sequence

    seq = load_sequence(clip)
    frames = [seq.read_frame(i) for i in range(min(len(seq), frames_each + 2))]
    runs = {
        f"{backend} {variant}": start_sessions(make_pipeline(variant, backend, bundle, threads), sessions, seq, frames)
        for variant, backend in variants
    }
    times: dict[str, dict[str, list[float]]] = {name: {"engine": [], "network": []} for name in runs}
    for frame in frames[2:]:
        for name, trackers in runs.items():
            for tracker in trackers:
                timings = tracker.track(frame).timings
                times[name]["engine"].append(timings["total"])
                times[name]["network"].append(timings["track"])
    return times


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


def run_child(kind: str, spec: list, pythonpath: Path | None) -> dict:
    env = dict(os.environ, BLURTRACK_MODELS_DIR=str(REPO / "models" / "weights"))
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    result = subprocess.run([sys.executable, __file__, kind, json.dumps(spec)], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{kind} {spec} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench(sessions: int, trees: dict[Path | None, list[tuple[str, str]]], args) -> None:
    memory = {
        f"{backend} {variant}": run_child(
            "--memory", [variant, backend, sessions, args.bundle, str(args.clip), args.threads], tree
        )
        for tree, variants in trees.items()
        for variant, backend in variants
    }
    times: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for tree, variants in trees.items():
            spec = [variants, sessions, args.bundle, str(args.clip), args.threads, args.frames]
            for name, got in run_child("--time", spec, tree).items():
                for key, values in got.items():
                    times.setdefault(name, {}).setdefault(key, []).extend(values)
    first = float(np.median(next(iter(times.values()))["engine"]))
    for name, got in times.items():
        engine, network = float(np.median(got["engine"])), float(np.median(got["network"]))
        print(
            f"{name:<26} {sessions:>8} {memory[name]['mb_per_session']:>10.2f} {engine:>15.2f} {network:>10.2f} {engine / first:>14.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="blurtrack-effnet-eca")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="an OTB-layout sequence folder")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3, help="timing processes per checkout, alternated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40, help="frames each session tracks per round (the clip's first ones)")
    parser.add_argument("--baseline", type=Path, help="another checkout of this repository to measure alongside")
    parser.add_argument("--memory", help=argparse.SUPPRESS)
    parser.add_argument("--time", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory or args.time:
        result = memory_child(*json.loads(args.memory)) if args.memory else time_child(*json.loads(args.time))
        print(json.dumps(result))
        return 0
    trees: dict[Path | None, list[tuple[str, str]]] = {
        None: [("parts", "mslite"), ("ort-head", "mslite"), ("whole-each", "mslite"), ("shared", "onnxruntime")]
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            trees[package_root(args.baseline.resolve(), Path(tmp))] = [("baseline", "mslite"), ("baseline", "onnxruntime")]
        print(
            f"bundle {args.bundle}, clip {args.clip.name} ({args.frames} frames a session a round), "
            f"{args.threads} threads, {args.rounds} rounds"
        )
        print(
            f"{'variant':<26} {'sessions':>8} {'MB/session':>10} {'engine ms/frame':>15} {'network ms':>10} {'engine / first':>14}"
        )
        for sessions in args.sessions:
            bench(sessions, trees, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
