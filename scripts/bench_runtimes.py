"""Median and p95 ms per call of the same networks on ONNX Runtime and MindSpore Lite (same threads).

    python scripts/bench_runtimes.py [--bundle DIR] [--onnx FILE ...] [--threads 2] [--runs 100] [--busy N]
    python scripts/bench_runtimes.py --fusion-study [--bundle DIR] ...
    python scripts/bench_runtimes.py --precision-study --bundle NAME [--deblur on] [--threads 1] ...

`--fusion-study` times each network on MindSpore Lite converted with the converter's fusion passes
on and off (where fusion converts), calls interleaved so a slow phase of the host hits both.

`--precision-study` tracks the validation clips (the real-train holdout split) with the bundle's
networks at fp32, at its own choice (`auto`) and all INT8, on each runtime set up here, the three
pipelines taking each frame in turn; it prints the per-frame engine ms (search network, plus the
deblur network where it runs) and its ratio to fp32. Accuracy: `blurtrack eval --precision ...`.

`--busy N` keeps N other processes spinning on the CPU while it measures, as on a robot whose CPU
also runs other work: a runtime whose worker threads wait on each other suffers most there.

Default networks: the hand-made test bundle (built in a temp folder) and, when ../shared is there,
the NanoTrack v2 peer ONNX files (read in place). Each ONNX file is converted to .ms in a temp
folder (fusion on, or off where the converter needs it). Needs `blurtrack setup mslite`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from blurtrack.engine.deblur import DeblurMode
from blurtrack.engine.errors import BlurtrackError
from blurtrack.engine.otb import load_sequence
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime import mslite_available
from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend
from blurtrack.engine.runtime.mslite.convert import convert_model
from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO.parent / "shared" / "peers" / "nanotrack" / "v2"


def default_models(work: Path) -> list[Path]:
    from blurtrack.engine.manifest import load_bundle
    from blurtrack.models.testbundle import build_test_bundle

    bundle = load_bundle(build_test_bundle(work / "test-bundle"))
    models = [bundle.path(net.onnx) for net in bundle.manifest.networks().values()]
    return models + sorted(PEERS.glob("*.onnx"))


def random_feeds(onnx_path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    feeds = {}
    for value in graph.input:
        if value.name not in initializers:
            shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
            feeds[value.name] = rng.uniform(0, 255, shape).astype(np.float32)
    return feeds


def time_ms(session, feeds: dict[str, np.ndarray], runs: int, warmup: int) -> tuple[float, float]:
    """(median, p95) wall ms per call."""
    for _ in range(warmup):
        session.run(feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(feeds)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def compare_runtimes(
    models: list[Path], work: Path, ort: OnnxRuntimeBackend, ms: MindSporeLiteBackend, runs: int, warmup: int, rng
) -> None:
    print(f"{'network':<34} {'onnxruntime':>13} {'mslite':>13} {'ms/ort median':>13} {'max|diff|/max|ort|':>19}")
    for index, onnx_path in enumerate(models):
        ms_path = work / f"{index}-{onnx_path.stem}.ms"
        try:
            convert_model(onnx_path, ms_path, no_fusion=False)
            fusion = ""
        except BlurtrackError:  # the Siamese correlation crashes the fusion pass
            convert_model(onnx_path, ms_path, no_fusion=True)
            fusion = " (no fusion)"
        feeds = random_feeds(onnx_path, rng)
        ort_session, ms_session = ort.load(onnx_path), ms.load(ms_path)
        want, got = ort_session.run(feeds), ms_session.run(feeds)
        diff = max(float(np.abs(got[k] - want[k]).max() / max(np.abs(want[k]).max(), 1e-12)) for k in want)
        ort_med, ort_p95 = time_ms(ort_session, feeds, runs, warmup)
        ms_med, ms_p95 = time_ms(ms_session, feeds, runs, warmup)
        name = f"{onnx_path.parent.name}/{onnx_path.name}{fusion}"
        print(
            f"{name:<34} {ort_med:>6.2f} / {ort_p95:>4.0f} {ms_med:>6.2f} / {ms_p95:>4.0f} {ms_med / ort_med:>13.2f} {diff:>19.1e}"
        )


def fusion_study(models: list[Path], work: Path, ms: MindSporeLiteBackend, runs: int, warmup: int, rng) -> None:
    print(f"{'network':<34} {'fusion on':>13} {'fusion off':>13} {'off/on median':>13} {'max|diff|/max|off|':>19}")
    for index, onnx_path in enumerate(models):
        name = f"{onnx_path.parent.name}/{onnx_path.name}"
        off_path = convert_model(onnx_path, work / f"{index}-{onnx_path.stem}-off.ms", no_fusion=True)
        try:
            on_path = convert_model(onnx_path, work / f"{index}-{onnx_path.stem}-on.ms", no_fusion=False)
        except BlurtrackError:
            print(f"{name:<34} {'crashes':>13}")
            continue
        feeds = random_feeds(onnx_path, rng)
        sessions = {"on": ms.load(on_path), "off": ms.load(off_path)}
        outputs = {key: session.run(feeds) for key, session in sessions.items()}
        diff = max(
            float(np.abs(outputs["on"][k] - outputs["off"][k]).max() / max(np.abs(outputs["off"][k]).max(), 1e-12))
            for k in outputs["off"]
        )
        for _ in range(warmup):
            for session in sessions.values():
                session.run(feeds)
        times: dict[str, list[float]] = {key: [] for key in sessions}
        for _ in range(runs):
            for key, session in sessions.items():
                start = time.perf_counter()
                session.run(feeds)
                times[key].append((time.perf_counter() - start) * 1000)
        on_med, on_p95 = np.median(times["on"]), np.percentile(times["on"], 95)
        off_med, off_p95 = np.median(times["off"]), np.percentile(times["off"], 95)
        print(
            f"{name:<34} {on_med:>6.2f} / {on_p95:>4.0f} {off_med:>6.2f} / {off_p95:>4.0f} {off_med / on_med:>13.2f} {diff:>19.1e}"
        )


def precision_study(bundle: str, clips: list[Path], threads: int, deblur: DeblurMode | None) -> None:
    runtimes = ["onnxruntime"] + (["mslite"] if mslite_available() else [])
    print(f"{'runtime':<12} {'precision':<8} {'networks':<40} {'engine ms median / p95':>24} {'/ fp32':>7}")
    for runtime in runtimes:
        pipelines = {
            p: Pipeline.from_bundle(bundle, backend=runtime, threads=threads, precision=p) for p in ("fp32", "auto", "int8")
        }
        engine_ms: dict[str, list[float]] = {p: [] for p in pipelines}
        for clip in clips:
            seq = load_sequence(clip)
            trackers = {p: pipeline.new_tracker(deblur=deblur) for p, pipeline in pipelines.items()}
            for tracker in trackers.values():
                tracker.init(seq.read_frame(0), tuple(seq.init_box))
            for index in range(1, len(seq)):
                frame = seq.read_frame(index)
                for p, tracker in trackers.items():
                    timings = tracker.track(frame).timings
                    engine_ms[p].append(timings["track"] + timings["deblur"])
        base = float(np.median(engine_ms["fp32"]))
        for p, pipeline in pipelines.items():
            median, p95 = float(np.median(engine_ms[p])), float(np.percentile(engine_ms[p], 95))
            label = pipeline.describe()["precision"]
            print(f"{runtime:<12} {p:<8} {label:<40} {median:>14.2f} / {p95:>6.2f} {median / base:>7.2f}")


def spin(stop) -> None:
    while not stop.is_set():
        sum(range(100_000))


def start_busy(count: int) -> tuple[object, list[multiprocessing.Process]]:
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(count)]
    for proc in procs:
        proc.start()
    return stop, procs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="benchmark this bundle's networks instead of the defaults")
    parser.add_argument("--onnx", type=Path, nargs="*", default=[], help="extra ONNX files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--busy", type=int, default=0, help="other processes kept spinning on the CPU meanwhile")
    parser.add_argument("--fusion-study", action="store_true", help="MindSpore Lite with converter fusion on against off")
    parser.add_argument(
        "--precision-study", action="store_true", help="per-frame engine ms at fp32, auto and int8 (needs --bundle)"
    )
    parser.add_argument("--deblur", choices=("on", "off", "auto"), help="precision study: override the bundle's deblur policy")
    parser.add_argument("--clips", type=Path, nargs="*", help="precision study: clip folders (default: the validation clips)")
    args = parser.parse_args(argv)
    if args.precision_study:
        if args.bundle is None:
            parser.error("--precision-study needs --bundle")
        from blurtrack.models.evaluation.splits import split_dirs

        clips = args.clips or split_dirs(REPO.parent / "shared" / "data" / "real-train", "holdout")
        print(f"threads={args.threads} busy processes={args.busy}; clips {', '.join(c.name for c in clips)}")
        stop, busy = start_busy(args.busy)
        precision_study(str(args.bundle), clips, args.threads, args.deblur)
        stop.set()
        for proc in busy:
            proc.join()
        return 0

    ort, ms = OnnxRuntimeBackend(args.threads), MindSporeLiteBackend(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.bundle:
            from blurtrack.engine.manifest import load_bundle

            bundle = load_bundle(args.bundle)
            models = [bundle.path(net.onnx) for net in bundle.manifest.networks().values()]
        else:
            models = default_models(work)
        models += args.onnx
        print(f"threads={args.threads} runs={args.runs} busy processes={args.busy} (ms per call, median / p95)")
        stop, busy = start_busy(args.busy)
        if args.fusion_study:
            fusion_study(models, work, ms, args.runs, args.warmup, rng)
        else:
            compare_runtimes(models, work, ort, ms, args.runs, args.warmup, rng)
        stop.set()
        for proc in busy:
            proc.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
