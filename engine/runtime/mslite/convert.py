"""ONNX -> .ms conversion, run in a child process, with the converter's tensor renames recorded."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from blurtrack.engine.errors import BlurtrackError, ModelNotFoundError
from blurtrack.engine.runtime.mslite.backend import names_file, open_model, search_part_file
from blurtrack.engine.runtime.mslite.binding import shim_error, shim_library
from blurtrack.engine.runtime.mslite.detect import official_module, require_runtime
from blurtrack.engine.runtime.mslite.graph import lite_compatible, match_names, onnx_specs, split_search

log = logging.getLogger(__name__)

# Run in a child process: the converter can crash outright (a segfault in a fusion pass) and must
# not take the caller with it.
_CONVERT_CHILD = """
import sys
from blurtrack.engine.runtime.mslite.convert import convert_in_process
sys.exit(convert_in_process(sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] or None, sys.argv[5]))
"""


def convert_in_process(onnx_path: str, output_stem: str, no_fusion: bool, home: str | None, config_file: str = "") -> int:
    """Writes `<output_stem>.ms`; `config_file` is the converter's INI config ("" for none).
    Returns 0, or 1 after printing the reason to stderr."""
    official = official_module()
    if official is not None:
        converter = official.Converter()
        converter.save_type = official.ModelType.MINDIR_LITE
        converter.input_format = official.Format.NCHW
        converter.optimize = "none" if no_fusion else "general"
        try:
            converter.convert(official.FmkType.ONNX, onnx_path, output_stem, config_file=config_file)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    lib = shim_library(Path(home) if home else None)
    if lib.bt_convert_onnx(onnx_path.encode(), output_stem.encode(), int(no_fusion), config_file.encode()) != 0:
        print(shim_error(lib), file=sys.stderr)
        return 1
    return 0


def _converter_errors(stderr: str) -> str:
    """The first MindSpore error lines, without their log prefixes."""
    lines = [line.split("] ", 2)[-1] for line in stderr.splitlines() if line.startswith("[ERROR]")]
    return "; ".join(dict.fromkeys(lines[:3]))


def convert_model(
    onnx_path: Path, ms_path: Path, no_fusion: bool = False, home: Path | None = None, config: str | None = None
) -> Path:
    """Converts one ONNX file to `ms_path` (inputs kept NCHW) and records renamed tensors. `config`:
    the text of a converter config file (e.g. post-training quantisation), or None."""
    onnx_path, ms_path = Path(onnx_path), Path(ms_path)
    if not onnx_path.is_file():
        raise ModelNotFoundError(f"ONNX model {onnx_path} not found: export it first (`blurtrack models export`)")
    if ms_path.suffix != ".ms":
        raise ValueError(f"{ms_path} must end in .ms (the converter appends it)")
    require_runtime(home)
    # Convert to a temporary name and move it into place, so a failed run leaves the old file.
    stem = ms_path.with_name(f".{ms_path.stem}.converting-{os.getpid()}")
    produced = stem.with_name(stem.name + ".ms")
    source = onnx_path
    fixed = lite_compatible(onnx_path)
    if fixed is not None:
        import onnx

        source = stem.with_name(stem.name + ".onnx")
        onnx.save(fixed, str(source))
    config_file = stem.with_name(stem.name + ".cfg")
    if config is not None:
        config_file.write_text(config)
    command = [sys.executable, "-c", _CONVERT_CHILD, str(source), str(stem), "1" if no_fusion else "0", str(home or "")]
    command.append(str(config_file) if config is not None else "")
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    finally:
        config_file.unlink(missing_ok=True)
        if source != onnx_path:
            source.unlink(missing_ok=True)
    if result.returncode != 0 or not produced.is_file():
        produced.unlink(missing_ok=True)
        if result.returncode < 0:  # killed by a signal: the converter crashed
            reason = f"the converter crashed (signal {-result.returncode})"
            if not no_fusion:
                reason += "; if it crashed in a fusion pass, set convert_no_fusion for this network"
        else:
            lines = result.stderr.strip().splitlines()
            reason = _converter_errors(result.stderr) or (lines[-1] if lines else f"exit status {result.returncode}")
        raise BlurtrackError(f"converting {onnx_path} to MindSpore Lite failed: {reason}")
    produced.chmod(0o644)  # the converter writes 0400; the service may run as another user
    produced.replace(ms_path)

    inputs, outputs = onnx_specs(onnx_path)
    model = open_model(ms_path, 1, home)
    renames = {
        "inputs": match_names("inputs", inputs, model.inputs),
        "outputs": match_names("outputs", outputs, model.outputs),
    }
    sidecar = names_file(ms_path)
    if renames["inputs"] or renames["outputs"]:
        sidecar.write_text(json.dumps(renames, indent=2) + "\n")
        log.info("converter renamed tensors of %s; ONNX names kept in %s", ms_path.name, sidecar.name)
    else:
        sidecar.unlink(missing_ok=True)
    return ms_path


def convert_search_parts(
    onnx_path: Path,
    ms_path: Path,
    image_input: str,
    no_fusion: bool = False,
    home: Path | None = None,
    config: str | None = None,
) -> list[Path]:
    """Cuts the search network where the target's kernels come in (graph.split_search) and converts
    each part next to `ms_path` (backend.search_part_file), so Lite can share the features among
    targets."""
    import onnx

    split = split_search(onnx.load(str(onnx_path)), image_input)
    written = []
    with tempfile.TemporaryDirectory(prefix=".split-", dir=ms_path.parent) as work:
        for part, model in split.parts().items():
            source = Path(work) / f"{ms_path.stem}.{part}.onnx"
            onnx.save(model, str(source))
            written.append(convert_model(source, search_part_file(ms_path, part), no_fusion, home, config))
    return written


def convert_bundle(bundle: Any, home: Path | None = None) -> list[Path]:
    """Converts every network of a bundle (a Bundle, its name or folder) to .ms, and the search
    network's parts besides. Networks without an `ms` file name get `<onnx stem>.ms`, and the
    manifest is saved with it."""
    from blurtrack.engine.manifest import Bundle, load_bundle

    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    written, named = [], False
    for role, net in bundle.manifest.networks().items():
        if net.ms is None:
            net.ms, named = f"{Path(net.onnx).stem}.ms", True
        log.info("converting %s network %s -> %s%s", role, net.onnx, net.ms, " (fusion off)" * net.convert_no_fusion)
        written.append(convert_model(bundle.path(net.onnx), bundle.path(net.ms), net.convert_no_fusion, home))
        if role == "search":
            image = bundle.manifest.search_image_input
            written += convert_search_parts(bundle.path(net.onnx), bundle.path(net.ms), image, net.convert_no_fusion, home)
    if named:
        bundle.save()
    return written
