"""`blurtrack` command line. Each subcommand lives in its own module under blurtrack/commands and
is imported only when it runs, so `blurtrack serve` never loads torch and `--help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from blurtrack import __version__

# name -> (module, one-line help). Each module defines configure(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "setup": ("blurtrack.commands.setup", "install optional runtimes (MindSpore Lite)"),
    "models": ("blurtrack.commands.models", "list, convert, train and export model bundles"),
    "serve": ("blurtrack.commands.serve", "run the streaming tracking service"),
    "eval": ("blurtrack.commands.eval", "evaluate the tracker on an OTB-layout data set"),
    "bench": ("blurtrack.commands.bench", "benchmark our tracker, its ablations and peers"),
    "tune": ("blurtrack.commands.tune", "choose a bundle's tracker hyper-parameters on the synthetic DEV split"),
    "track": ("blurtrack.commands.track", "track a target through a video file or image folder"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blurtrack", description="Real-time tracking through motion-blurred video.")
    parser.add_argument("--version", action="version", version=f"blurtrack {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the command being run is imported; the others only list their one-line help.
        if name == wanted:
            module = importlib.import_module(module_name)
            module.configure(command_parser)
            command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from blurtrack.engine.errors import BlurtrackError

    try:
        return int(args._run(args) or 0)
    except BlurtrackError as exc:
        print(f"blurtrack {args.command}: error: {exc}", file=sys.stderr)
        return 2
