"""Export a trained deblurrer to ONNX, check it against torch, and measure it.

    python -m blurtrack.models.deblur.export --checkpoint /tmp/blurtrack-train/deblur/best.pt \
        --out /tmp/blurtrack-train/deblur/export [--pairs 48] [--threads 2]

Writes OUT/deblur.onnx (opset 17, input "blurred" [1,3,255,255] -> output "sharp" [1,3,255,255],
BGR 0..255 float32) and OUT/export_report.json, and prints: the max abs difference between ONNX
Runtime and torch, the mean PSNR of the blurred input and of the deblurred output against the
sharp crop on held-out TEST-split pairs, and the median / p95 ms per call on ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from blurtrack.engine.errors import ModelNotFoundError
from blurtrack.models.deblur.data import fixed_pairs, psnr
from blurtrack.models.deblur.net import FPNDeblur, count_flops
from blurtrack.models.deblur.train import build_generator

INPUT_NAME, OUTPUT_NAME = "blurred", "sharp"


def load_checkpoint(path: str | Path) -> tuple[FPNDeblur, dict]:
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"checkpoint {p} not found; train first (python -m blurtrack.models.deblur.train ...)")
    state = torch.load(p, map_location="cpu", weights_only=False)
    cfg = state.get("config", {})
    model = build_generator(cfg, pretrained=False)
    model.load_state_dict(state["model"])
    return model.eval(), state


def export_onnx(model: FPNDeblur, path: str | Path, size: int = 255, opset: int = 17) -> Path:
    """Fixed-shape [1,3,size,size] export (BatchNorms fold into the convs in eval mode)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.full((1, 3, size, size), 128.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about static shapes are expected here
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    return out


def ort_session(path: str | Path, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see PERF_NOTES
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def to_nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def to_image(nchw: np.ndarray) -> np.ndarray:
    return np.clip(np.round(nchw[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m blurtrack.models.deblur.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="best.pt or last.pt from models.deblur.train")
    ap.add_argument("--out", required=True, help="folder for deblur.onnx and export_report.json")
    ap.add_argument("--pairs", type=int, default=48, help="held-out TEST-split pairs for the PSNR report")
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads for the timing")
    ap.add_argument("--runs", type=int, default=100, help="timed calls")
    ap.add_argument("--images-dir", help="photo folder (default: ../shared/data/images)")
    return ap.parse_args(argv)


def score_pairs(model: FPNDeblur, sess, pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """PSNR of the exported network on held-out pairs, and its largest difference from torch
    (on the first 8 pairs)."""
    max_diff = 0.0
    before, after = [], []
    for i, (blurred, sharp) in enumerate(pairs):
        x = to_nchw(blurred)
        y_ort = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if i < 8:
            with torch.no_grad():
                y_torch = model(torch.from_numpy(x)).numpy()
            max_diff = max(max_diff, float(np.abs(y_ort - y_torch).max()))
        before.append(psnr(blurred, sharp))
        after.append(psnr(to_image(y_ort), sharp))
    before_a, after_a = np.asarray(before), np.asarray(after)
    return {
        "max_abs_diff_ort_vs_torch": max_diff,
        "test_pairs": len(pairs),
        "psnr_blurred": round(float(before_a.mean()), 3),
        "psnr_deblurred": round(float(after_a.mean()), 3),
        "psnr_gain_db": round(float((after_a - before_a).mean()), 3),
        "psnr_gain_median_db": round(float(np.median(after_a - before_a)), 3),
        "pairs_improved": int((after_a > before_a).sum()),
    }


def time_calls(sess, x: np.ndarray, runs: int) -> dict:
    """Median and p95 milliseconds per call, after 10 warm-up calls."""
    for _ in range(10):
        sess.run([OUTPUT_NAME], {INPUT_NAME: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run([OUTPUT_NAME], {INPUT_NAME: x})
        times.append((time.perf_counter() - t) * 1000.0)
    return {"ms_median": round(float(np.median(times)), 2), "ms_p95": round(float(np.percentile(times, 95)), 2)}


def print_report(report: dict, onnx_path: Path) -> None:
    print(
        f"exported {onnx_path} ({report['onnx_bytes'] / 1e6:.2f} MB, {report['params'] / 1e6:.2f} M params, "
        f"{report['gflops_255']} GFLOPs at 255)"
    )
    print(f"max abs diff ONNX Runtime vs torch: {report['max_abs_diff_ort_vs_torch']:.5f} (0..255 scale)")
    pairs = report["test_pairs"]
    print(
        f"TEST pairs {pairs}: PSNR blurred {report['psnr_blurred']:.2f} dB -> deblurred "
        f"{report['psnr_deblurred']:.2f} dB (gain {report['psnr_gain_db']:+.2f} dB mean, "
        f"{report['psnr_gain_median_db']:+.2f} median; {report['pairs_improved']}/{pairs} improved)"
    )
    print(
        f"ONNX Runtime {report['ort_threads']} threads: {report['ms_median']:.2f} ms median, {report['ms_p95']:.2f} ms p95 per call"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    model, state = load_checkpoint(args.checkpoint)
    onnx_path = export_onnx(model, Path(args.out) / "deblur.onnx")
    sess = ort_session(onnx_path, args.threads)
    pairs = fixed_pairs("test", args.pairs, args.seed, 255, images_dir=args.images_dir)
    scores = score_pairs(model, sess, pairs)
    timing = time_calls(sess, to_nchw(pairs[0][0]), args.runs)
    report = {
        "checkpoint": str(args.checkpoint),
        "step": state.get("step"),
        "onnx": str(onnx_path),
        "onnx_bytes": onnx_path.stat().st_size,
        "params": sum(p.numel() for p in model.parameters()),
        "gflops_255": round(count_flops(model, (1, 3, 255, 255)), 3),
        **scores,
        "ort_threads": args.threads,
        **timing,
    }
    (Path(args.out) / "export_report.json").write_text(json.dumps(report, indent=1))
    print_report(report, onnx_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
