"""`blurtrack models quantize BUNDLE`: calibrate, build, measure and choose each network's precision.

1. Calibrate on crops of the train clips (`calibration.collect`): ONNX Runtime's static quantisation
   measures every activation's range (percentile calibration) and the ranges are written beside the
   network (`<net>.int8.calib.json`, committed: later builds need no data).
2. Build the INT8 files as `blurtrack models convert` does on every machine (`engine.runtime.int8`).
3. Measure on crops of the select clips, per runtime: ms per call fp32 against INT8 in one run, and
   the agreement of the picked box with the fp32 path (`measure`).
4. Choose: a network is an INT8 candidate where it runs on every frame (search, deblur; the
   template network runs once per target, so its speed never pays for its error), is MIN_SPEEDUP
   times as fast (median of paired calls) and the faster in 3 of 4 pairs, and its boxes agree (IoU
   and centre shift limits below).
5. Check the whole tracker, closed loop, against all-fp32 (under the bundle's deblur policy, and
   with the deblur gate on): on the select clips each candidate, added one at a time, stays only if
   P@15 and S@0.6 fall by at most MAX_DROP (the choice); what stays is scored once on the
   validation clips and goes back to fp32 past MAX_DROP there (the holdout vetoes, it never picks).
The choice and what it was made from go into the manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from blurtrack.engine.deblur import DeblurMode
from blurtrack.engine.errors import BlurtrackError
from blurtrack.engine.manifest import Bundle, Int8Spec, NetworkSpec, Precision
from blurtrack.engine.runtime import get_backend, mslite_available
from blurtrack.engine.runtime.base import Backend
from blurtrack.engine.runtime.int8 import build_int8, quantize_kwargs, quiet_quantizer
from blurtrack.engine.runtime.mslite.convert import convert_bundle
from blurtrack.models.evaluation.splits import split_dirs
from blurtrack.models.quantization.calibration import CalibrationSet, collect
from blurtrack.models.quantization.measure import Agreement, Speed, agreement, paired_speed, tracking_scores

log = logging.getLogger(__name__)

#: layers kept fp32 by default: the first two MBConv blocks (the highest resolution), whose error
#: every later layer carries (keeping each block fp32 in turn, these two brought the search
#: network's outputs closest to fp32); names that match nothing (the deblur network) keep nothing.
DEFAULT_KEEP_FLOAT = ("/backbone/blocks.0/", "/backbone/blocks.1/")
PERCENTILE = 99.999
MIN_SPEEDUP = 1.1  # median of paired fp32 / INT8 call times
MIN_FASTER_SHARE = 0.75  # and INT8 the faster in 3 of 4 pairs: a host's noise alone does not pass
MIN_IOU = 0.95
MAX_SHIFT_P90_PX = 1.0
MAX_DROP = 0.01  # P@15 and S@0.6, pooled, INT8 against fp32 (issue 27's bar)
# Closed-loop scores track each clip from this many start frames and pool the runs: from the first
# frame alone, one early loss moves a clip's score past MAX_DROP under any change of input.
CLOSED_LOOP_STARTS = 4
PER_FRAME = ("search", "deblur")
SCORES = ("precision@15", "success@0.6")


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def float_nodes(onnx_path: Path, keep_float: tuple[str, ...]) -> list[str]:
    """Nodes to keep fp32: convolutions whose weights are computed from graph inputs (the Siamese
    correlation with the template's features: their range changes with every target, so no
    calibrated range fits them) with the nodes that compute those weights, and nodes whose names
    start with one of `keep_float`."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    producers = {out: node for node in graph.node for out in node.output}
    constants = {t.name for t in graph.initializer}

    def upstream(tensor: str) -> list[onnx.NodeProto]:
        node = producers.get(tensor)
        if node is None or node.op_type == "Constant":
            return []
        return [node] + [n for name in node.input for n in upstream(name)]

    def weight_is_input(node: onnx.NodeProto) -> bool:
        weight = producers.get(node.input[1])
        return node.input[1] not in constants and (weight is None or weight.op_type != "Constant")

    kept = [n for n in graph.node if n.name.startswith(keep_float)]
    for conv in (n for n in graph.node if n.op_type == "Conv" and weight_is_input(n)):
        kept += [conv, *upstream(conv.input[1])]
    if any(not node.name for node in kept):
        raise BlurtrackError(f"{onnx_path}: a node to keep fp32 has no name; give every node a name when exporting")
    return list(dict.fromkeys(node.name for node in kept))


def calibrate(bundle: Bundle, role: str, net: NetworkSpec, crops: CalibrationSet, keep_float: tuple[str, ...]) -> None:
    """Measures the activation ranges of one network and records its INT8 version in the manifest."""
    from onnxruntime.quantization import CalibrationMethod, quantize_static

    stem = Path(net.onnx).stem
    spec = Int8Spec(
        calibration=f"{stem}.int8.calib.json",
        onnx=f"{stem}.int8.onnx",
        ms=f"{stem}.int8.ms",
        float_nodes=float_nodes(bundle.path(net.onnx), keep_float),
    )
    ranges = bundle.path(spec.calibration)
    ranges.unlink(missing_ok=True)  # an existing file would be read instead of calibrating
    scratch = bundle.path(f".{stem}.calibrating.onnx")
    try:
        with quiet_quantizer():
            quantize_static(
                str(bundle.path(net.onnx)),
                str(scratch),
                _Reader(crops.feeds[role]),
                nodes_to_exclude=spec.float_nodes,
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": PERCENTILE},
                calibration_cache_path=str(ranges),
                **quantize_kwargs(),
            )
    finally:
        scratch.unlink(missing_ok=True)
    ranges.chmod(0o644)  # written private by a temporary file; it is committed and read by any user
    net.int8 = spec
    log.info("%s: ranges of %d crops in %s; %d nodes kept fp32", role, len(crops.feeds[role]), ranges.name, len(spec.float_nodes))


def measure_runtime(bundle: Bundle, backend: Backend, crops: CalibrationSet, repeats: int) -> dict[str, dict[str, Any]]:
    """Per network on one runtime: ms per call fp32 and INT8 (one run, interleaved) and agreement."""
    manifest = bundle.manifest

    def load(spec: NetworkSpec, precision: str):
        path, _ = bundle.network_file(spec, backend.model_format, backend.name, precision)
        kernels = [t.name for t in manifest.template.outputs] if spec is manifest.search else []
        return backend.load(path, weight_inputs=kernels)

    search_fp32 = load(manifest.search, "fp32")
    results = {}
    for role, net in manifest.networks().items():
        sessions = {"fp32": load(net, "fp32"), "int8": load(net, "int8")}
        timing_feeds = crops.feeds[role][:: max(1, len(crops) // 8)]
        speed = paired_speed(sessions["fp32"], sessions["int8"], timing_feeds, repeats)
        agree = agreement(role, crops, manifest, search_fp32, sessions["fp32"], sessions["int8"])
        results[role] = {"speed": speed, "agreement": agree}
    return results


def choose(role: str, speed: Speed, agree: Agreement) -> Precision:
    fast = speed.speedup >= MIN_SPEEDUP and speed.faster_share >= MIN_FASTER_SHARE
    return "int8" if role in PER_FRAME and fast and agree.passes(MIN_IOU, MAX_SHIFT_P90_PX) else "fp32"


INT8_KIND = {
    "onnxruntime": "static QDQ: uint8 activations, per-channel int8 weights",
    "mslite": "converter WEIGHT_QUANT: int8 weights, fp32 arithmetic (FULL_QUANT does not run on this CPU build)",
}


def record(net: NetworkSpec, runtime: str, role: str, result: dict[str, Any], crops: str) -> Precision:
    speed, agree = result["speed"], result["agreement"]
    precision = choose(role, speed, agree)
    setattr(net.precision, runtime, precision)
    net.precision.measured["crops"] = crops
    net.precision.measured[runtime] = {
        "int8": INT8_KIND[runtime],
        "fp32_ms": round(speed.fp32_ms, 2),
        "int8_ms": round(speed.int8_ms, 2),
        "speedup": round(speed.speedup, 2),
        "int8_faster_share": round(speed.faster_share, 2),
        "box_iou_mean": round(agree.iou_mean, 3),
        "centre_shift_px_p90": round(agree.centre_shift_px_p90, 2),
    }
    return precision


def closed_loop(bundle: Bundle, runtime: str, threads: int, precision: str, clips: list[Path]) -> dict[str, list[float]]:
    """[P@15, S@0.6] of the whole tracker on `clips` (each from CLOSED_LOOP_STARTS start frames) under
    the bundle's deblur policy and, where the bundle has a deblur network, with the gate on."""
    settings: dict[str, DeblurMode | None] = {"policy": None}
    if bundle.manifest.deblur is not None and bundle.manifest.deblur_policy.mode != "auto":
        settings["deblur auto"] = "auto"
    return {
        label: [
            round(v, 4) for v in tracking_scores(bundle, runtime, threads, precision, deblur, clips, CLOSED_LOOP_STARTS).values()
        ]
        for label, deblur in settings.items()
    }


def within_bar(fp32: dict[str, list[float]], int8: dict[str, list[float]]) -> bool:
    return all(a - b <= MAX_DROP for label in fp32 for a, b in zip(fp32[label], int8[label]))


def check_candidates(bundle: Bundle, runtime: str, threads: int, real_train: Path) -> dict[str, Any]:
    """Step 5 for one runtime. On the select clips the candidates are added one at a time (search
    first: it runs on every frame) and each stays only if the tracker with it still scores within
    MAX_DROP of all-fp32; what stays is then scored once on the validation clips, and goes back to
    fp32 if it falls past MAX_DROP there. Returns what was measured, for the manifest."""
    nets = bundle.manifest.networks()
    candidates = [role for role in PER_FRAME if role in nets and nets[role].precision.for_runtime(runtime) == "int8"]
    if not candidates:
        return {"verdict": "fp32: no network is an INT8 candidate"}
    for role in candidates:
        setattr(nets[role].precision, runtime, "fp32")
    select = split_dirs(real_train, "select")
    check: dict[str, Any] = {
        "starts": CLOSED_LOOP_STARTS,
        "select": {"fp32": closed_loop(bundle, runtime, threads, "fp32", select)},
    }
    for role in candidates:
        setattr(nets[role].precision, runtime, "int8")
        scores = closed_loop(bundle, runtime, threads, "auto", select)
        check["select"][f"+{role} int8"] = scores
        if not within_bar(check["select"]["fp32"], scores):
            setattr(nets[role].precision, runtime, "fp32")
    kept = [role for role in candidates if nets[role].precision.for_runtime(runtime) == "int8"]
    if not kept:
        check["verdict"] = f"fp32: every INT8 candidate moved a select score past {MAX_DROP}"
        return check
    holdout = split_dirs(real_train, "holdout")
    check["validation"] = {p: closed_loop(bundle, runtime, threads, p, holdout) for p in ("fp32", "auto")}
    if within_bar(check["validation"]["fp32"], check["validation"]["auto"]):
        check["verdict"] = f"int8: {', '.join(kept)}"
    else:
        check["verdict"] = f"fp32: INT8 {', '.join(kept)} moved a validation score past {MAX_DROP}"
        for role in kept:
            setattr(nets[role].precision, runtime, "fp32")
    return check


def quantize_bundle(
    bundle: Bundle,
    real_train: Path,
    *,
    per_clip: int = 12,
    select_per_clip: int = 40,
    keep_float: tuple[str, ...] = DEFAULT_KEEP_FLOAT,
    threads: int = 1,
    repeats: int = 20,
    recalibrate: bool = True,
) -> list[str]:
    """Calibrates (unless `recalibrate` is off and every network has its ranges), builds, measures
    and chooses; saves the manifest. Returns the printed table's rows."""
    nets = bundle.manifest.networks()
    if recalibrate or any(net.int8 is None or not bundle.path(net.int8.calibration).is_file() for net in nets.values()):
        train = collect(bundle, split_dirs(real_train, "train"), per_clip=per_clip)
        for role, net in nets.items():
            calibrate(bundle, role, net, train, keep_float)
    runtimes = ["onnxruntime"] + (["mslite"] if mslite_available() else [])
    if "mslite" in runtimes:  # what `blurtrack models convert` does: fp32 .ms files, then the INT8 files
        convert_bundle(bundle)
    build_int8(bundle, mslite="mslite" in runtimes)
    select = collect(bundle, split_dirs(real_train, "select"), per_clip=select_per_clip)
    crops = f"{len(select)} crops of the select clips ({', '.join(select.clips)}); ms per call, {threads} thread(s), one run"
    rows = []
    for runtime in runtimes:
        results = measure_runtime(bundle, get_backend(runtime, threads=threads), select, repeats)
        for role, net in bundle.manifest.networks().items():
            record(net, runtime, role, results[role], crops)
        bundle.manifest.precision_check[runtime] = check_candidates(bundle, runtime, threads, real_train)
        for role, net in bundle.manifest.networks().items():
            m = net.precision.measured[runtime]
            rows.append(
                f"{runtime:<12} {role:<9} {m['fp32_ms']:>8.2f} {m['int8_ms']:>8.2f} {m['speedup']:>6.2f}x {m['int8_faster_share']:>6.2f} "
                f"{m['box_iou_mean']:>8.3f} {m['centre_shift_px_p90']:>8.2f}  {net.precision.for_runtime(runtime)}"
            )
        rows.append(f"{runtime:<12} closed loop: {bundle.manifest.precision_check[runtime]['verdict']}")
    bundle.save()
    return rows
