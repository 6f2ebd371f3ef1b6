"""`python -m blurtrack.models.train --config CONFIG.json --out DIR [...]` (also `blurtrack models train`).

The config's "task" picks the trainer: "tracker" -> models.tracker.training.run(config, args). Any
other task name T is dispatched to models.T.training.run(config, args), or, when that module does
not exist, to models.T.train.main(argv) with the same flags (e.g. the deblurrer), so every network
trains through this one command.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

DEFAULT_OUT_ROOT = Path("/tmp/blurtrack-train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m blurtrack.models.train", description="Train a blurtrack network.")
    configure(parser)
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="JSON config (models/configs/*.json)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="checkpoint folder (default /tmp/blurtrack-train/<config name>); keep it outside the repo",
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt when it exists")
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from these weights: a bundle folder (its train_weights.npz) or a checkpoint (.pt)",
    )
    parser.add_argument("--budget-minutes", type=float, default=None, help="stop cleanly (with a checkpoint) after this long")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry, dotted key and JSON value, e.g. --set train.lr=0.0003 (repeatable)",
    )


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """`--set a.b=VALUE`: VALUE is read as JSON when it parses (numbers, true, lists), else a string."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: write KEY=VALUE, e.g. train.lr=0.0003")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a section of the config")
        node[leaf] = value
    return config


def _forward_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--config", str(args.config), "--out", str(args.out)]
    if args.resume:
        argv.append("--resume")
    if args.init is not None:
        argv += ["--init", str(args.init)]
    if args.budget_minutes is not None:
        argv += ["--budget-minutes", str(args.budget_minutes)]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    return argv


def run(args: argparse.Namespace) -> int:
    try:
        config = json.loads(Path(args.config).read_text())
    except FileNotFoundError:
        print(f"config {args.config} not found: pass a file such as models/configs/tracker.json", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"config {args.config} is not valid JSON: {exc}", file=sys.stderr)
        return 2
    try:
        apply_overrides(config, args.overrides)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    task = config.get("task", "tracker")
    if args.out is None:
        args.out = DEFAULT_OUT_ROOT / Path(args.config).stem
    if args.overrides:
        # trainers that read the config file themselves get the overridden copy
        Path(args.out).mkdir(parents=True, exist_ok=True)
        args.config = Path(args.out) / "config.json"
        args.config.write_text(json.dumps(config, indent=2))
    for module, call in ((f"blurtrack.models.{task}.training", "run"), (f"blurtrack.models.{task}.train", "main")):
        try:
            trainer = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            print(f"training needs the [train] extra ({exc.name} is missing): pip install -e '.[train]'", file=sys.stderr)
            return 2
        if call == "run" and hasattr(trainer, "run"):
            return int(trainer.run(config, args))
        if call == "main" and hasattr(trainer, "main"):
            return int(trainer.main(_forward_argv(args)))
    print(f"no trainer for task {task!r}: expected models/{task}/training.py with run(config, args)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
