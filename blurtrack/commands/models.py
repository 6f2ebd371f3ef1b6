"""`blurtrack models list | stats | convert | make-test-bundle | train | export`."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from blurtrack.engine.errors import BlurtrackError

TORCH_HINT = "pip install -e '.[train]'"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, help="bundles folder (default: BLURTRACK_MODELS_DIR)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="bundles, their networks and whether .ms files exist")
    stats = actions.add_parser("stats", help="parameters and GFLOPs per call of a bundle's networks")
    stats.add_argument("bundle", nargs="?", metavar="BUNDLE", help="name or folder (default: BLURTRACK_BUNDLE)")
    convert = actions.add_parser("convert", help="convert bundles' ONNX networks to MindSpore Lite .ms files")
    convert.add_argument("bundles", nargs="*", metavar="BUNDLE", help="names or folders (default: BLURTRACK_BUNDLE)")
    convert.add_argument("--all", action="store_true", help="every bundle under the models folder")
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
    return 0


def _convert(names: list[str], all_bundles: bool, models_dir: Path | None) -> int:
    from blurtrack.engine.manifest import list_bundles
    from blurtrack.engine.runtime.mslite.convert import convert_bundle
    from blurtrack.engine.settings import get_engine_settings

    settings = get_engine_settings()
    if all_bundles:
        targets: list[str | Path] = list(list_bundles(models_dir or settings.models_dir))
    else:
        targets = [(models_dir / n if models_dir and not Path(n).is_dir() else n) for n in names] or [settings.bundle]
    for bundle in targets:
        for written in convert_bundle(bundle):
            print(f"wrote {written}")
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
    if args.action == "make-test-bundle":
        from blurtrack.models.testbundle import build_test_bundle

        print(f"wrote {build_test_bundle(args.out_dir)}")
        return 0
    return _forward(f"blurtrack.models.{args.action}", args.argv)
