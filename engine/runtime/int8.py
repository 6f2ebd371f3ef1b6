"""A bundle's INT8 files, built on each machine from its fp32 ONNX files and the calibration ranges
committed beside them, so building needs no data (`blurtrack models convert` calls `build_int8`):

- ONNX Runtime: static quantisation into QDQ form (uint8 activations, int8 per-channel weights),
  from the ranges `blurtrack models quantize` measured on real training clips;
- MindSpore Lite: the converter's weight quantisation (int8 weights, fp32 arithmetic). Its full
  (activation) quantisation does not run with the PyPI 2.0 x86 libraries: calibration fails inside
  the converter, and a QDQ ONNX model does not convert either (MODEL_CARD.md has the measurements).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blurtrack.engine.manifest import Bundle, NetworkSpec, load_bundle

log = logging.getLogger(__name__)

# The settings the ranges were measured for and the INT8 models are built with, in one place.
QDQ_OPTIONS: dict[str, Any] = {"per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8"}
STAMP_KEY = "blurtrack.int8.source"
# Lite 2.0's CPU convolution cannot pack a weight-quantised kernel over a 3-channel input (the
# stems, 864 values: "pack weight is nullptr" at build), so weights under this size stay fp32.
MS_MIN_WEIGHT_SIZE = 1000
MS_WEIGHT_QUANT_CONFIG = f"""[common_quant_param]
quant_type=WEIGHT_QUANT
bit_num=8
min_quant_weight_size={MS_MIN_WEIGHT_SIZE}
min_quant_weight_channel=16
"""


def quantize_kwargs() -> dict[str, Any]:
    """QDQ_OPTIONS as onnxruntime.quantization.quantize_static arguments."""
    from onnxruntime.quantization import QuantFormat, QuantType

    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": QDQ_OPTIONS["per_channel"],
        "activation_type": QuantType[QDQ_OPTIONS["activation_type"]],
        "weight_type": QuantType[QDQ_OPTIONS["weight_type"]],
    }


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization advises pre-processing on the root logger at every call; the
    models here are exported clean, so that advice is kept out of the output."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _stamp(fp32_onnx: Path, calibration: Path, float_nodes: list[str]) -> str:
    import onnxruntime

    digest = hashlib.sha256()
    for part in (fp32_onnx.read_bytes(), calibration.read_bytes(), "\n".join(float_nodes).encode()):
        digest.update(hashlib.sha256(part).digest())
    digest.update(f"{QDQ_OPTIONS} onnxruntime {onnxruntime.__version__}".encode())
    return digest.hexdigest()


def _built_from(model_file: Path) -> str | None:
    import onnx

    if not model_file.is_file():
        return None
    model = onnx.load(str(model_file), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == STAMP_KEY), None)


def build_int8_onnx(fp32_onnx: Path, calibration: Path, out: Path, float_nodes: list[str]) -> bool:
    """Writes the QDQ model to `out` unless it was built from these same inputs (a stamp in its
    metadata says so); returns whether it built. Nodes in `float_nodes` stay fp32."""
    import onnx
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.calibrate import load_tensors_data

    stamp = _stamp(fp32_onnx, calibration, float_nodes)
    if _built_from(out) == stamp:
        return False
    method = load_tensors_data(calibration).calibration_method
    partial = out.with_name(f".{out.name}.building-{os.getpid()}")
    try:
        with quiet_quantizer():
            quantize_static(
                str(fp32_onnx),
                str(partial),
                None,  # the ranges come from the calibration file: no data is read
                nodes_to_exclude=float_nodes,
                calibrate_method=method,
                calibration_cache_path=str(calibration),
                **quantize_kwargs(),
            )
        model = onnx.load(str(partial))
        onnx.helper.set_model_props(model, {STAMP_KEY: stamp})
        onnx.save(model, str(partial))
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return True


def build_int8(bundle: Bundle | str | Path, mslite: bool = True, home: Path | None = None) -> list[Path]:
    """Builds the INT8 files of every network of `bundle` that has an INT8 version: the ONNX Runtime
    model (skipped when up to date) and, with `mslite`, the MindSpore Lite one."""
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    written = []
    for role, net in bundle.manifest.networks().items():
        if net.int8 is None:
            continue
        out = bundle.path(net.int8.onnx)
        built = build_int8_onnx(bundle.path(net.onnx), bundle.path(net.int8.calibration), out, net.int8.float_nodes)
        log.info("%s INT8 %s network %s", "built" if built else "up to date:", role, out.name)
        written.append(out)
        if mslite and net.int8.ms is not None:
            written += build_int8_ms(bundle, net, home)
    return written


def build_int8_ms(bundle: Bundle, net: NetworkSpec, home: Path | None = None) -> list[Path]:
    """The MindSpore Lite INT8 file of one network, and for the search network its parts (features
    shared by all targets, a head per target: see engine/runtime/search.py)."""
    from blurtrack.engine.runtime.mslite.convert import convert_model, convert_search_parts

    assert net.int8 is not None and net.int8.ms is not None
    out, source = bundle.path(net.int8.ms), bundle.path(net.onnx)
    log.info("converting %s -> %s (MindSpore Lite weight quantisation)", net.onnx, out.name)
    written = [convert_model(source, out, net.convert_no_fusion, home, config=MS_WEIGHT_QUANT_CONFIG)]
    if net is bundle.manifest.search:
        image = bundle.manifest.search_image_input
        written += convert_search_parts(source, out, image, net.convert_no_fusion, home, config=MS_WEIGHT_QUANT_CONFIG)
    return written
