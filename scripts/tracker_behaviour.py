"""How well behaved a bundle's tracker is on real clips: do MindSpore Lite and ONNX Runtime follow
the same path, and how peaked are its scores?

    python scripts/tracker_behaviour.py --bundle blurtrack-effnet-eca CLIP_DIR [CLIP_DIR ...]

Per clip: the mean distance between the two runtimes' box centres, and, on ONNX Runtime, the median
best anchor score and the median number of anchors scoring within 1 % of it (a saturated map has
many, and then a 1e-5 difference between runtimes can pick another peak).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from blurtrack.engine.anchors import foreground_scores
from blurtrack.engine.otb import load_sequence
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime.search import SearchNetwork
from blurtrack.models.evaluation.metrics import center_errors
from blurtrack.models.evaluation.runner import run_sequence


def score_peaks(pipeline: Pipeline, seq, deblur: str | None) -> tuple[float, float]:
    """Median best score and median count of anchors within 1 % of it, over the clip's frames."""
    tracker = pipeline.new_tracker(deblur=deblur)
    best, near = [], []
    search = tracker.nets.search
    cls_name = pipeline.bundle.manifest.cls_output

    class Watched(SearchNetwork):
        def for_target(self, kernels):
            bound = search.for_target(kernels)

            def run(image):
                out = bound(image)
                scores = foreground_scores(out[cls_name])
                best.append(float(scores.max()))
                near.append(int((scores >= 0.99 * scores.max()).sum()))
                return out

            return run

    tracker.nets = replace(tracker.nets, search=Watched(search.image_input))
    run_sequence(tracker, seq)
    return float(np.median(best)), float(np.median(near))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="blurtrack-effnet-eca")
    parser.add_argument("--deblur", choices=["on", "off", "auto"], default=None, help="default: the bundle's policy")
    parser.add_argument("clips", nargs="+", type=Path, help="OTB-layout sequence folders")
    args = parser.parse_args(argv)
    # Runtime agreement at one precision: fp32 on both (under `auto` a bundle may run INT8 on one).
    pipelines = {b: Pipeline.from_bundle(args.bundle, backend=b, threads=1, precision="fp32") for b in ("mslite", "onnxruntime")}
    for clip in args.clips:
        seq = load_sequence(clip)
        runs = [run_sequence(p.new_tracker(deblur=args.deblur), seq) for p in pipelines.values()]
        distance = center_errors(*(np.asarray(r.boxes, dtype=np.float64) for r in runs))
        best, near = score_peaks(pipelines["onnxruntime"], seq, args.deblur)
        print(
            f"{seq.name}: runtimes {np.mean(distance):.2f} px apart (mean); best score {best:.4f}, {near:.0f} anchors within 1 %"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
