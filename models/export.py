"""`python -m blurtrack.models.export --checkpoint CKPT --out BUNDLE_DIR [--deblur deblur.onnx]`.

Writes a tracker bundle: template.onnx + search.onnx (opset 17, fixed shapes), checks ONNX Runtime
against torch on random crops, and writes manifest.json through engine.manifest. The search net's
correlation kernels are graph inputs (the template net's outputs). The MindSpore Lite converter
keeps its fusion passes on for it: the reshapes around each correlation keep its ConvConvFusion
(which crashes on a conv whose weight is an input) away, and fusion makes the search net about 1.14x
as fast (`scripts/bench_runtimes.py --fusion-study`). `blurtrack models convert` also cuts search.onnx
where the kernels come in (engine/runtime/mslite/graph.py), so MindSpore Lite shares the search
features among sessions; the export needs nothing for that beyond keeping the kernels convolution
weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

from blurtrack.engine.manifest import (
    AnchorConfig,
    Bundle,
    DeblurConfig,
    Manifest,
    NetworkSpec,
    Preprocess,
    TensorSpec,
    TrackerConfig,
)

OPSET = 17
EXEMPLAR, INSTANCE, SCORE = 127, 255, 25
# pysot-like defaults for a stride-8 depthwise RPN tracker (SiamRPN++ mobilenet/alex configs use
# penalty_k 0.04-0.16, window_influence 0.40-0.46, lr 0.30-0.40)
DEFAULT_TRACKER = {"penalty_k": 0.05, "window_influence": 0.42, "lr": 0.38}


def export_onnx(net, out_dir: Path, *, check: bool = True, seed: int = 0) -> dict:
    """Export the template and search branches of `net` (a models.tracker.net.SiamRPN) to ONNX in
    out_dir; returns the tensor specs and, with `check`, the max |ORT - torch| differences."""
    import torch

    from blurtrack.models.tracker.net import SearchNet, TemplateNet

    net.eval()
    template_net, search_net = TemplateNet(net).eval(), SearchNet(net).eval()
    gen = torch.Generator().manual_seed(seed)
    z = torch.rand(1, 3, EXEMPLAR, EXEMPLAR, generator=gen) * 255.0
    x = torch.rand(1, 3, INSTANCE, INSTANCE, generator=gen) * 255.0
    with torch.no_grad():
        kc, kl = template_net(z)
        cls, loc = search_net(x, kc, kl)
    out_dir.mkdir(parents=True, exist_ok=True)
    template_path, search_path = out_dir / "template.onnx", out_dir / "search.onnx"
    _write_onnx(template_net, (z,), template_path, ["template"], ["kernel_cls", "kernel_loc"])
    _write_onnx(search_net, (x, kc, kl), search_path, ["search", "kernel_cls", "kernel_loc"], ["cls", "loc"])
    specs = _tensor_specs(kc.shape, kl.shape, cls.shape, loc.shape)
    result: dict = {"specs": specs}
    if check:
        result["max_abs_diff"] = check_parity(
            template_path,
            search_path,
            z.numpy(),
            x.numpy(),
            {"kernel_cls": kc.numpy(), "kernel_loc": kl.numpy(), "cls": cls.numpy(), "loc": loc.numpy()},
        )
    return result


def _write_onnx(module, inputs: tuple, path: Path, input_names: list[str], output_names: list[str]) -> None:
    """Trace `module` on `inputs` to an ONNX file with fixed shapes, its constant shape chains folded."""
    import torch

    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated but needs no extra packages (dynamo needs onnxscript)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module, inputs, str(path), input_names=input_names, output_names=output_names, opset_version=OPSET, dynamo=False
        )
    fold_static_shapes(path)


def _tensor_specs(kernel_cls: tuple, kernel_loc: tuple, cls: tuple, loc: tuple) -> dict[str, list[TensorSpec]]:
    """The two networks' inputs and outputs, for the manifest."""
    return {
        "template_in": [TensorSpec(name="template", shape=[1, 3, EXEMPLAR, EXEMPLAR])],
        "template_out": [
            TensorSpec(name="kernel_cls", shape=list(kernel_cls)),
            TensorSpec(name="kernel_loc", shape=list(kernel_loc)),
        ],
        "search_in": [
            TensorSpec(name="search", shape=[1, 3, INSTANCE, INSTANCE]),
            TensorSpec(name="kernel_cls", shape=list(kernel_cls)),
            TensorSpec(name="kernel_loc", shape=list(kernel_loc)),
        ],
        "search_out": [TensorSpec(name="cls", shape=list(cls)), TensorSpec(name="loc", shape=list(loc))],
    }


def fold_static_shapes(path: Path) -> None:
    """Fold the Shape -> Gather -> Concat chains that tracing leaves around reshapes and resizes
    into constants (ONNX Runtime's basic, hardware-independent optimisations, saved back as plain
    ONNX). With them the MindSpore Lite converter cannot infer output shapes (it reports -1)."""
    import onnx
    import onnxruntime as ort

    folded = path.with_suffix(".folded.onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    model = onnx.load(str(folded))
    drop_unit_pool_dilations(model)
    used = {node.domain for node in model.graph.node}
    keep = [o for o in model.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    folded.unlink()


def drop_unit_pool_dilations(model) -> None:
    """torch writes `dilations=[1, 1]` on every MaxPool; the Lite 2.0 converter refuses any
    pooling with that attribute ("pooling op not support dilations"), and 1 is ONNX's default."""
    for node in model.graph.node:
        if node.op_type != "MaxPool":
            continue
        for attr in list(node.attribute):
            if attr.name == "dilations" and all(d == 1 for d in attr.ints):
                node.attribute.remove(attr)


def check_parity(
    template_path: Path, search_path: Path, z: np.ndarray, x: np.ndarray, expected: dict[str, np.ndarray]
) -> dict[str, float]:
    """Run both ONNX files in ONNX Runtime and compare every output with the torch result."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    t = ort.InferenceSession(str(template_path), opts, providers=["CPUExecutionProvider"])
    s = ort.InferenceSession(str(search_path), opts, providers=["CPUExecutionProvider"])
    kc, kl = t.run(["kernel_cls", "kernel_loc"], {"template": z})
    cls, loc = s.run(["cls", "loc"], {"search": x, "kernel_cls": kc, "kernel_loc": kl})
    got = {"kernel_cls": kc, "kernel_loc": kl, "cls": cls, "loc": loc}
    return {k: float(np.abs(got[k] - expected[k]).max()) for k in expected}


def build_manifest(
    name: str, specs: dict, *, description: str = "", tracker: dict | None = None, deblur: NetworkSpec | None = None
) -> Manifest:
    return Manifest(
        name=name,
        description=description,
        template=NetworkSpec(onnx="template.onnx", inputs=specs["template_in"], outputs=specs["template_out"]),
        search=NetworkSpec(onnx="search.onnx", inputs=specs["search_in"], outputs=specs["search_out"]),
        deblur=deblur,
        preprocess=Preprocess(),  # networks take BGR 0..255 and normalise inside the graph
        anchors=AnchorConfig(),
        tracker=TrackerConfig(**{**DEFAULT_TRACKER, **(tracker or {})}),
        deblur_policy=DeblurConfig(mode="auto") if deblur is not None else DeblurConfig(mode="off"),
    )


def deblur_spec(path: Path) -> NetworkSpec:
    """Describe a deblur ONNX (input "blurred", output "sharp", [1,3,255,255]) after checking it."""
    import onnx

    model = onnx.load(str(path))
    names_in = [i.name for i in model.graph.input]
    names_out = [o.name for o in model.graph.output]
    if "blurred" not in names_in or "sharp" not in names_out:
        raise SystemExit(
            f"{path}: a deblur network takes input 'blurred' and gives output 'sharp'; it has {names_in} -> {names_out}"
        )
    spec = TensorSpec(name="blurred", shape=[1, 3, INSTANCE, INSTANCE])
    return NetworkSpec(onnx="deblur.onnx", inputs=[spec], outputs=[TensorSpec(name="sharp", shape=[1, 3, INSTANCE, INSTANCE])])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m blurtrack.models.export", description="Export a trained tracker to a bundle."
    )
    configure(parser)
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="training checkpoint (best.pt / last.pt), or a run file of models.tracker.collect",
    )
    parser.add_argument("--snapshot", type=int, default=None, help="with a run file: the snapshot's iteration (default the last)")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    parser.add_argument("--deblur", type=Path, default=None, help="deblur.onnx to copy into the bundle")
    parser.add_argument("--name", default=None, help="bundle name (default: the training config's name)")
    parser.add_argument(
        "--calibrate-scale",
        action="store_true",
        help="measure the regression's size bias on DEV pairs and remove it before export (models/tracker/calibrate.py)",
    )
    parser.add_argument(
        "--synth-dev",
        type=Path,
        default=Path("/tmp/blurtrack-train/synth-dev-train"),
        help="DEV synthetic sequences for --calibrate-scale (made by training; skipped when absent)",
    )
    parser.add_argument(
        "--tracker-json",
        default=None,
        help='tracker hyper-parameters as JSON, e.g. \'{"penalty_k": 0.05, "window_influence": 0.42, "lr": 0.38}\'',
    )


# largest |ONNX Runtime - torch| accepted per output
PARITY_TOLERANCE = {"kernel_cls": 1e-3, "kernel_loc": 1e-3, "cls": 1e-2, "loc": 1e-2}


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("export needs torch: pip install -e '.[train]'", file=sys.stderr)
        return 2
    from blurtrack.models.tracker.training import TRAIN_WEIGHTS_FILE, load_net_from_checkpoint, save_train_weights

    if not args.checkpoint.is_file():
        print(
            f"checkpoint {args.checkpoint} not found: pass OUT/best.pt from `python -m blurtrack.models.train`", file=sys.stderr
        )
        return 2
    net, ckpt = load_net_from_checkpoint(args.checkpoint, args.snapshot)
    config = ckpt["config"]
    name = args.name or config.get("name", args.out.name)
    calibration = calibrate_scale(net, config, ckpt, args.synth_dev) if args.calibrate_scale else ""
    result = export_onnx(net, args.out)
    diffs = result["max_abs_diff"]
    print(f"ONNX Runtime vs torch, max |diff|: {json.dumps(diffs)}")
    bad = {k: v for k, v in diffs.items() if v > PARITY_TOLERANCE[k]}
    if bad:
        print(f"exported networks disagree with torch: {bad}", file=sys.stderr)
        return 1
    save_train_weights(net, config, args.out / TRAIN_WEIGHTS_FILE)
    deblur = None
    if args.deblur is not None:
        if not args.deblur.is_file():
            print(f"deblur network {args.deblur} not found", file=sys.stderr)
            return 2
        deblur = copy_deblur(args.deblur, args.out)
    tracker = {**config.get("tracker", {}), **(json.loads(args.tracker_json) if args.tracker_json else {})}
    description = (
        f"{config.get('description', '')}; checkpoint iteration {ckpt.get('iteration')}, "
        f"held-out pair metrics {json.dumps(ckpt.get('metrics', {}))}{calibration}"
    )
    manifest = build_manifest(name, result["specs"], description=description, tracker=tracker, deblur=deblur)
    path = Bundle(root=args.out, manifest=manifest).save()
    print(
        f"bundle {name!r} written to {args.out} ({path.name}, template.onnx, search.onnx"
        f"{', deblur.onnx' if deblur else ''}, {TRAIN_WEIGHTS_FILE} for fine-tuning with --init)"
    )
    return 0


def calibrate_scale(net, config: dict, ckpt: dict, synth_dev: Path | None) -> str:
    """Measure the regression's log-size bias on DEV pairs and remove it from `net`; returns the
    note for the manifest's description."""
    from blurtrack.models.synth import default_images_dir
    from blurtrack.models.tracker.calibrate import apply_scale_bias, calibration_batches, measure_scale_bias
    from blurtrack.models.tracker.labels import AnchorTarget

    images = Path(config["images"]) if config.get("images") else default_images_dir()
    synth_dev = synth_dev if synth_dev is not None and synth_dev.is_dir() else None
    batches = calibration_batches(
        images, synth_dev, seed=int(ckpt.get("seed", 0)), deblur_bundle=config.get("deblur_input", {}).get("bundle")
    )
    anchors = AnchorTarget().anchors
    bw, bh, n = measure_scale_bias(net, batches, anchors)
    apply_scale_bias(net, bw, bh)
    aw, ah, _ = measure_scale_bias(net, batches, anchors)
    calibration = (
        f"; scale calibration on {n} DEV pairs: log-size bias w {bw:+.3f}, h {bh:+.3f} removed (after: {aw:+.3f}, {ah:+.3f})"
    )
    print(calibration[2:])
    return calibration


def copy_deblur(source: Path, out: Path) -> NetworkSpec:
    """Check a deblur network and copy it into the bundle folder as deblur.onnx."""
    spec = deblur_spec(source)
    if source.resolve() != (out / "deblur.onnx").resolve():
        shutil.copyfile(source, out / "deblur.onnx")
    return spec


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
