"""Model bundle manifest: everything the engine needs to know about a bundle's networks.

A bundle is a folder `models/weights/<name>/` with `manifest.json` and the network files it names.
ONNX files are the source of truth; `.ms` files and INT8 files are made from them by
`blurtrack models convert`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from blurtrack.engine.errors import ModelNotFoundError
from blurtrack.engine.settings import get_engine_settings

MANIFEST_NAME = "manifest.json"

log = logging.getLogger(__name__)


class TensorSpec(BaseModel):
    name: str
    shape: list[int]


Precision = Literal["fp32", "int8"]
#: what a caller may ask for: `auto` is each network's choice in the manifest for the runtime
PRECISION_CHOICES = ("auto", "fp32", "int8")
RUNTIMES = ("onnxruntime", "mslite")


class Int8Spec(BaseModel):
    """A network's INT8 files, built on each machine by `blurtrack models convert` from the fp32
    ONNX and `calibration` (activation ranges measured on real training clips by
    `blurtrack models quantize`, committed with the bundle), so building needs no data.

    `onnx`: ONNX Runtime static quantisation, QDQ, uint8 activations and per-channel int8 weights;
    nodes in `float_nodes` stay fp32 (the correlation, whose weights are the template's features,
    and the layers measured to be most sensitive). `ms`: MindSpore Lite's converter weight
    quantisation (int8 weights, fp32 arithmetic), the only INT8 mode its CPU runtime loads here."""

    calibration: str
    onnx: str
    ms: str | None = None
    float_nodes: list[str] = []


class PrecisionChoice(BaseModel):
    """Which precision `auto` runs per runtime, chosen by `blurtrack models quantize` from what it
    measured (kept in `measured`: speed and agreement with fp32 per runtime)."""

    onnxruntime: Precision = "fp32"
    mslite: Precision = "fp32"
    measured: dict[str, Any] = {}

    def for_runtime(self, runtime: str) -> Precision:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
        return self.onnxruntime if runtime == "onnxruntime" else self.mslite


class NetworkSpec(BaseModel):
    """One network file pair. `onnx` is required; `ms` is written by the converter; `int8` and
    `precision` by `blurtrack models quantize`."""

    onnx: str
    ms: str | None = None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # The converter's ConvConvFusion pass crashes on a convolution whose weight is a graph input
    # (the Siamese correlation) chained directly to another convolution; such a network is
    # converted with fusion off. The trained bundles have reshapes around it and keep fusion.
    convert_no_fusion: bool = False
    int8: Int8Spec | None = None
    precision: PrecisionChoice = Field(default_factory=PrecisionChoice)

    def file(self, model_format: str, precision: Precision) -> str | None:
        """The file name of this network in a format ("onnx" or "ms") and precision; None where the
        bundle has none (not converted, or no INT8 version)."""
        if precision == "int8":
            if self.int8 is None:
                return None
            return self.int8.onnx if model_format == "onnx" else self.int8.ms
        return self.onnx if model_format == "onnx" else self.ms

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"network {self.onnx} has no input {name!r}")


class Preprocess(BaseModel):
    """How the engine turns a BGR uint8 crop into a network input: (pixel - mean) / std per channel,
    NCHW float32. Bundles that normalise inside the graph use mean 0 / std 1 (the cheaper path)."""

    color: Literal["bgr", "rgb"] = "bgr"
    mean: list[float] = [0.0, 0.0, 0.0]
    std: list[float] = [1.0, 1.0, 1.0]

    @property
    def is_identity(self) -> bool:
        return self.color == "bgr" and self.mean == [0.0, 0.0, 0.0] and self.std == [1.0, 1.0, 1.0]

    def to_input(self, crop_bgr: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 crop -> 1x3xHxW float32 network input (identity preprocess is the fast path)."""
        image = crop_bgr[:, :, ::-1] if self.color == "rgb" else crop_bgr
        tensor = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        if self.is_identity:
            return tensor
        return (tensor - np.asarray(self.mean, np.float32).reshape(1, 3, 1, 1)) / np.asarray(self.std, np.float32).reshape(
            1, 3, 1, 1
        )

    def to_image(self, tensor: np.ndarray) -> np.ndarray:
        """The inverse: a 1x3xHxW network input or image output -> HxWx3 BGR uint8 (rounded, clipped)."""
        image = tensor[0] * np.asarray(self.std, np.float32)[:, None, None] + np.asarray(self.mean, np.float32)[:, None, None]
        image = np.clip(image.transpose(1, 2, 0) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(image[:, :, ::-1] if self.color == "rgb" else image)


class AnchorConfig(BaseModel):
    stride: int = 8
    ratios: list[float] = [0.33, 0.5, 1.0, 2.0, 3.0]
    scales: list[float] = [8.0]
    score_size: int = 25

    @property
    def anchor_num(self) -> int:
        return len(self.ratios) * len(self.scales)


class TrackerConfig(BaseModel):
    """SiamRPN hyper-parameters (pysot names) plus the lost / re-detect policy."""

    exemplar_size: int = 127
    instance_size: int = 255
    context_amount: float = 0.5
    penalty_k: float = 0.05
    window_influence: float = 0.42
    lr: float = 0.38
    # The new box is the score-weighted mean of the anchor boxes overlapping the best one by at
    # least this IoU (box voting); 0 keeps the best anchor's box alone.
    box_vote_iou: float = 0.0
    # The box's aspect ratio (w / h) moves towards the chosen box's at aspect_lr times the pace of
    # its size (its area still follows at lr): below 1 a network that keeps choosing taller or
    # wider boxes than the target reshapes the box more slowly; 1 updates w and h alike, 0 keeps
    # the first box's shape.
    aspect_lr: float = Field(1.0, ge=0.0, le=1.0)
    # The box's centre and size snap to this grid (frame pixels) after each update; 0 keeps them
    # exact. Two runtimes' outputs differ by ~1e-5, which moves the box by ~1e-3 px: on a grid
    # far coarser than that both land on the same point, so their next crops are identical and
    # their paths stay one instead of drifting apart frame by frame.
    state_grid: float = Field(0.0, ge=0.0, le=1.0)
    # Template update: on the first frame at least template_update_interval frames after the last
    # update whose best score reaches template_update_score, the target is cut again at its
    # tracked box and the kernels become (1 - template_update) x the first frame's +
    # template_update x this newest one's. Anchored to the first frame so a bad update is
    # diluted, not compounded; 0 keeps the first alone (the shipped bundles: models/weights/
    # MODEL_CARD.md says why).
    template_update: float = Field(0.0, ge=0.0, le=1.0)
    template_update_interval: int = Field(10, ge=1)
    template_update_score: float = Field(0.8, ge=0.0, le=1.0)
    # A frame whose best score is below lost_threshold counts as a miss; after lost_patience
    # misses in a row the state becomes `lost` and the search region grows by lost_search_growth
    # per missed frame, up to lost_search_max times the normal region, until a frame scores
    # at least found_threshold.
    lost_threshold: float = 0.3
    found_threshold: float = 0.5
    lost_patience: int = 3
    lost_search_growth: float = 1.25
    lost_search_max: float = 3.0


class DeblurConfig(BaseModel):
    """When the deblur network runs: `on` every frame, `off` never, `auto` when the crop's blur
    score (engine.deblur.blur_score; lower is blurrier) is below blur_threshold,
    and, in `auto`, also when the tracker is unsure: a frame whose best score on the crop as it
    came is below rescue_score is tracked again on the deblurred crop, and the surer of the two
    answers is kept (0 never rescues). Where it runs, the search network sees strength x the
    deblurred crop + (1 - strength) x the crop as it came: below 1 the crop's own detail tempers
    the network's artefacts."""

    mode: Literal["on", "off", "auto"] = "auto"
    blur_threshold: float = Field(150.0, ge=0.0)
    rescue_score: float = Field(0.0, ge=0.0, le=1.0)
    strength: float = Field(1.0, gt=0.0, le=1.0)


class Manifest(BaseModel):
    name: str
    format_version: Literal[1] = 1
    description: str = ""
    template: NetworkSpec
    search: NetworkSpec
    deblur: NetworkSpec | None = None
    # Input names that carry the image crop; every other search input is a template output.
    template_image_input: str = "template"
    search_image_input: str = "search"
    deblur_image_input: str = "blurred"
    cls_output: str = "cls"
    loc_output: str = "loc"
    deblur_output: str = "sharp"
    preprocess: Preprocess = Field(default_factory=Preprocess)
    anchors: AnchorConfig = Field(default_factory=AnchorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    deblur_policy: DeblurConfig = Field(default_factory=DeblurConfig)
    # Per runtime: the whole tracker with the INT8 candidates against all-fp32, closed loop on the
    # select and validation clips, and the verdict (`blurtrack models quantize`).
    precision_check: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_wiring(self) -> Manifest:
        template_outputs = {t.name for t in self.template.outputs}
        search_inputs = {t.name for t in self.search.inputs}
        if self.search_image_input not in search_inputs:
            raise ValueError(f"search network has no input {self.search_image_input!r}")
        missing = search_inputs - {self.search_image_input} - template_outputs
        if missing:
            raise ValueError(f"search inputs {sorted(missing)} are not template outputs")
        return self

    def networks(self) -> dict[str, NetworkSpec]:
        nets = {"template": self.template, "search": self.search}
        if self.deblur is not None:
            nets["deblur"] = self.deblur
        return nets

    def role_of(self, spec: NetworkSpec) -> str:
        return next(role for role, net in self.networks().items() if net is spec)


class Bundle(BaseModel):
    """A manifest plus the folder it was read from."""

    root: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    def path(self, file_name: str) -> Path:
        return self.root / file_name

    def has_ms_files(self) -> bool:
        """Whether every network has its converted MindSpore Lite file."""
        return all(spec.ms and self.path(spec.ms).is_file() for spec in self.manifest.networks().values())

    def network_file(self, spec: NetworkSpec, model_format: str, runtime: str, requested: str) -> tuple[Path, Precision]:
        """The file a runtime loads for one network at the `requested` precision (`auto`: the
        manifest's choice for that runtime), and the precision it has. An INT8 file that `auto`
        chose but this machine has not built falls back to fp32, with a warning; a file asked for
        by name and missing is an error that says how to make it."""
        if requested not in PRECISION_CHOICES:
            raise ValueError(f"unknown precision {requested!r}: one of {', '.join(PRECISION_CHOICES)}")
        precision = spec.precision.for_runtime(runtime) if requested == "auto" else cast(Precision, requested)
        name = spec.file(model_format, precision)
        if name is not None and (self.path(name).is_file() or (model_format, precision) == ("onnx", "fp32")):
            return self.path(name), precision  # a missing fp32 ONNX file: the backend says so as it loads
        role = self.manifest.role_of(spec)
        if requested == "auto" and precision == "int8":
            log.warning("bundle %s: INT8 %s network not built here, running fp32 (`blurtrack models convert`)", self.name, role)
            return self.network_file(spec, model_format, runtime, "fp32")
        if precision == "int8" and spec.int8 is None:
            raise ModelNotFoundError(
                f"bundle {self.name} has no INT8 version of its {role} network: `blurtrack models quantize {self.root}` "
                "makes one (it calibrates on ../shared/data/real-train); or run at --precision fp32"
            )
        made = ("INT8 " if precision == "int8" else "") + ("MindSpore Lite file" if model_format == "ms" else "ONNX file")
        raise ModelNotFoundError(
            f"bundle {self.name} has no {made} for its {role} network ({name or 'not converted'}): "
            f"run `blurtrack models convert {self.root}`"
        )

    def save(self) -> Path:
        out = self.root / MANIFEST_NAME
        out.write_text(self.manifest.model_dump_json(indent=2) + "\n")
        return out


def resolve_bundle_dir(bundle: str | Path) -> Path:
    """A bundle is given as a folder path or as a name under the models folder setting."""
    candidate = Path(bundle)
    if (candidate / MANIFEST_NAME).is_file():
        return candidate
    named = get_engine_settings().models_dir / str(bundle)
    if (named / MANIFEST_NAME).is_file():
        return named
    raise ModelNotFoundError(
        f"no model bundle {str(bundle)!r}: expected {candidate / MANIFEST_NAME} or {named / MANIFEST_NAME}. "
        "Pass --bundle with a folder holding manifest.json, or set BLURTRACK_MODELS_DIR; "
        "`blurtrack models list` shows the bundles found."
    )


def load_bundle(bundle: str | Path) -> Bundle:
    root = resolve_bundle_dir(bundle)
    try:
        manifest = Manifest.model_validate(json.loads((root / MANIFEST_NAME).read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelNotFoundError(f"{root / MANIFEST_NAME} is not a valid bundle manifest: {exc}") from exc
    return Bundle(root=root, manifest=manifest)


def list_bundles(models_dir: Path | None = None) -> list[Path]:
    base = models_dir or get_engine_settings().models_dir
    return sorted(p.parent for p in base.glob(f"*/{MANIFEST_NAME}"))
