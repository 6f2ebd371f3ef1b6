"""Median and p95 ms per call of the same networks on ONNX Runtime and MindSpore Lite (same threads).

    python scripts/bench_runtimes.py [--bundle DIR] [--onnx FILE ...] [--threads 2] [--runs 100] [--busy N]

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

from engine.errors import BlurtrackError
from engine.runtime.mslite import MindSporeLiteBackend, convert_model
from engine.runtime.onnxruntime_backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO.parent / "shared" / "peers" / "nanotrack" / "v2"


def default_models(work: Path) -> list[Path]:
    from engine.manifest import load_bundle
    from engine.testbundle import build_test_bundle

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
    args = parser.parse_args(argv)

    ort, ms = OnnxRuntimeBackend(args.threads), MindSporeLiteBackend(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.bundle:
            from engine.manifest import load_bundle

            bundle = load_bundle(args.bundle)
            models = [bundle.path(net.onnx) for net in bundle.manifest.networks().values()]
        else:
            models = default_models(work)
        models += args.onnx
        print(f"threads={args.threads} runs={args.runs} busy processes={args.busy} (ms per call, median / p95)")
        print(f"{'network':<34} {'onnxruntime':>13} {'mslite':>13} {'ms/ort median':>13} {'max|diff|/max|ort|':>19}")
        stop, busy = start_busy(args.busy)
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
            ort_med, ort_p95 = time_ms(ort_session, feeds, args.runs, args.warmup)
            ms_med, ms_p95 = time_ms(ms_session, feeds, args.runs, args.warmup)
            name = f"{onnx_path.parent.name}/{onnx_path.name}{fusion}"
            print(f"{name:<34} {ort_med:>6.2f} / {ort_p95:>4.0f} {ms_med:>6.2f} / {ms_p95:>4.0f} {ms_med / ort_med:>13.2f} {diff:>19.1e}")
        stop.set()
        for proc in busy:
            proc.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
