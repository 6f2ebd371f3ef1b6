"""`blurtrack models list | stats | convert | quantize | make-test-bundle | train | export`."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from blurtrack.commands.arguments import positive_int
from blurtrack.engine.errors import BlurtrackError

TORCH_HINT = "pip install -e '.[train]'"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, help="bundles folder (default: BLURTRACK_MODELS_DIR)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="bundles, their networks and whether .ms files exist")
    stats = actions.add_parser("stats", help="parameters and GFLOPs per call of a bundle's networks")
    stats.add_argument("bundle", nargs="?", metavar="BUNDLE", help="name or folder (default: BLURTRACK_BUNDLE)")
    convert = actions.add_parser(
        "convert", help="convert bundles' ONNX networks to MindSpore Lite .ms files and build their INT8 files"
    )
    convert.add_argument("bundles", nargs="*", metavar="BUNDLE", help="names or folders (default: BLURTRACK_BUNDLE)")
    convert.add_argument("--all", action="store_true", help="every bundle under the models folder")
    quantize = actions.add_parser(
        "quantize",
        help="INT8: calibrate on the real train clips, build, measure on the select clips, choose per network and runtime",
    )
    quantize.add_argument("bundle", nargs="?", metavar="BUNDLE", help="name or folder (default: BLURTRACK_BUNDLE)")
    quantize.add_argument("--real-train", type=Path, help="real-train clips (default: ../shared/data/real-train)")
    quantize.add_argument("--per-clip", type=positive_int, default=12, help="calibration crops per train clip (default 12)")
    quantize.add_argument("--threads", type=positive_int, default=1, help="threads while timing (default 1)")
    quantize.add_argument(
        "--keep-float",
        action="append",
        metavar="PREFIX",
        help="keep nodes whose names start with PREFIX fp32 (repeatable; default: the first two MBConv blocks)",
    )
    quantize.add_argument(
        "--reuse-calibration",
        action="store_true",
        help="keep the committed calibration ranges: only rebuild, measure and choose (e.g. again on a quiet host)",
    )
    test_bundle = actions.add_parser("make-test-bundle", help="write the tiny hand-made ONNX test bundle")
    test_bundle.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    for name in ("train", "export"):
        # Everything after the action goes to models.<name>.main untouched, options included
        # ('+' as the only prefix char keeps argparse from reading '--epochs' or '-h' itself).
        help_text = f"run models.{name} with ARGS (needs {TORCH_HINT})"
        forward = actions.add_parser(name, help=help_text, add_help=False, prefix_chars="+")
        forward.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGS")


def _list(models_dir: Path | None) -> int:
    from blurtrack.engine.manifest import list_bundles, load_bundle
    from blurtrack.engine.settings import get_engine_settings

    base = models_dir or get_engine_settings().models_dir
    bundles = list_bundles(base)
    if not bundles:
        print(f"no bundles under {base} (a bundle is a folder with manifest.json)")
    for root in bundles:
        try:
            bundle = load_bundle(root)
        except BlurtrackError as exc:
            print(f"{root.name}: invalid ({exc})")
            continue
        print(f"{bundle.name}  ({root})")
        for role, net in bundle.manifest.networks().items():
            onnx_state = "ok" if bundle.path(net.onnx).is_file() else "MISSING"
            if net.ms is None:
                ms_state = "not converted"
            else:
                ms_state = f"{net.ms} {'ok' if bundle.path(net.ms).is_file() else 'missing'}"
            fusion = "; converted with fusion off" if net.convert_no_fusion else ""
            print(f"  {role:<8} onnx {net.onnx} {onnx_state}; ms {ms_state}{fusion}")
            if net.int8 is not None:
                built = [f"{n} {'ok' if bundle.path(n).is_file() else 'missing'}" for n in (net.int8.onnx, net.int8.ms) if n]
                auto = f"auto: onnxruntime {net.precision.onnxruntime}, mslite {net.precision.mslite}"
                print(f"  {'':<8} int8 {'; '.join(built)}; {auto}")
    return 0


def _convert(names: list[str], all_bundles: bool, models_dir: Path | None) -> int:
    from blurtrack.engine.manifest import list_bundles
    from blurtrack.engine.runtime.int8 import build_int8
    from blurtrack.engine.runtime.mslite.convert import convert_bundle
    from blurtrack.engine.settings import get_engine_settings

    settings = get_engine_settings()
    if all_bundles:
        targets: list[str | Path] = list(list_bundles(models_dir or settings.models_dir))
    else:
        targets = [(models_dir / n if models_dir and not Path(n).is_dir() else n) for n in names] or [settings.bundle]
    for bundle in targets:
        for written in convert_bundle(bundle) + build_int8(bundle):
            print(f"wrote {written}")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from blurtrack.engine.errors import DatasetError
    from blurtrack.engine.manifest import load_bundle
    from blurtrack.engine.settings import get_engine_settings
    from blurtrack.models.paths import shared_dir
    from blurtrack.models.quantization.command import DEFAULT_KEEP_FLOAT, quantize_bundle

    clips = args.real_train or shared_dir() / "data" / "real-train"
    if not clips.is_dir():
        raise DatasetError(f"no real-train clips at {clips}: pass --real-train DIR (OTB layout) or set BLURTRACK_SHARED_DIR")
    bundle = load_bundle(args.bundle or get_engine_settings().bundle)
    keep = tuple(args.keep_float) if args.keep_float else DEFAULT_KEEP_FLOAT
    rows = quantize_bundle(
        bundle, clips, per_clip=args.per_clip, threads=args.threads, keep_float=keep, recalibrate=not args.reuse_calibration
    )
    print(
        f"{'runtime':<12} {'network':<9} {'fp32 ms':>8} {'int8 ms':>8} {'speed':>7} {'faster':>6} {'box IoU':>8} {'shift90':>8}  auto"
    )
    print("\n".join(rows))
    print(f"wrote {bundle.root / 'manifest.json'}; `blurtrack models convert {bundle.root}` rebuilds the INT8 files anywhere")
    return 0


def _stats(name: str | None) -> int:
    from blurtrack.engine.manifest import load_bundle
    from blurtrack.engine.modelstats import network_stats
    from blurtrack.engine.settings import get_engine_settings

    bundle = load_bundle(name or get_engine_settings().bundle)
    print(f"{bundle.name}: parameters stored per file, GFLOPs (2 x MACs of conv/gemm) per call")
    for role, net in bundle.manifest.networks().items():
        stats = network_stats(bundle.path(net.onnx))
        print(f"  {role:<8} {net.onnx:<14} {stats['params']:>10,d} params  {stats['gflops']:.3f} GFLOPs")
    return 0


def _forward(module_name: str, argv: list[str]) -> int:
    try:
        import torch  # noqa: F401 - only to give a clear message before the script fails on it
    except ImportError as exc:
        raise BlurtrackError(f"`blurtrack models {module_name.split('.')[-1]}` needs PyTorch: {TORCH_HINT}") from exc
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (module_name, "blurtrack.models"):
            raise
        raise BlurtrackError(f"{module_name} is not in this installation: run from a blurtrack source checkout") from exc
    return int(module.main(argv) or 0)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args.models_dir)
    if args.action == "stats":
        return _stats(args.bundle)
    if args.action == "convert":
        return _convert(args.bundles, args.all, args.models_dir)
    if args.action == "quantize":
        return _quantize(args)
    if args.action == "make-test-bundle":
        from blurtrack.models.testbundle import build_test_bundle

        print(f"wrote {build_test_bundle(args.out_dir)}")
        return 0
    return _forward(f"blurtrack.models.{args.action}", args.argv)
