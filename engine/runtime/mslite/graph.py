"""ONNX graph work for the converter: rewriting what Lite 2.0's parser rejects, and telling which
converted tensor is which ONNX one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blurtrack.engine.errors import BlurtrackError


def onnx_specs(onnx_path: Path) -> tuple[list[tuple[str, tuple]], list[tuple[str, tuple]]]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}

    def spec(value: Any) -> tuple[str, tuple]:
        dims = value.type.tensor_type.shape.dim
        return value.name, tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)

    return [spec(v) for v in graph.input if v.name not in initializers], [spec(v) for v in graph.output]


def match_names(kind: str, onnx_specs: list[tuple[str, tuple]], ms_specs: list[tuple[str, tuple]]) -> dict[str, str]:
    """Maps renamed .ms tensors to ONNX names: same names first, the rest in order, with equal shapes."""
    if len(onnx_specs) != len(ms_specs):
        raise BlurtrackError(f"converted model has {len(ms_specs)} {kind}, the ONNX model {len(onnx_specs)}")
    onnx_names = {name for name, _ in onnx_specs}
    ms_names = {name for name, _ in ms_specs}
    left_onnx = [(n, s) for n, s in onnx_specs if n not in ms_names]
    left_ms = [(n, s) for n, s in ms_specs if n not in onnx_names]
    renames = {}
    for (ms_name, ms_shape), (onnx_name, onnx_shape) in zip(left_ms, left_onnx):
        if len(ms_shape) != len(onnx_shape) or any(o is not None and o != m for o, m in zip(onnx_shape, ms_shape)):
            raise BlurtrackError(
                f"cannot tell which ONNX {kind[:-1]} the converted {ms_name!r} {ms_shape} is ({onnx_name!r} is {onnx_shape})"
            )
        renames[ms_name] = onnx_name
    return renames


def lite_compatible(onnx_path: Path) -> Any | None:
    """Rewrites what Lite 2.0's ONNX parser rejects into equivalent ONNX; returns None when nothing
    needed it. (1) Conv nodes leaving `strides`, `dilations` or `kernel_shape` to their defaults
    fail with "kernel_size/stride/dilation is nullptr" (torch writes them; hand-built graphs often
    do not). (2) `HardSwish` (opset 14) is "not support[ed]": it becomes x * HardSigmoid(x)."""
    import onnx
    from onnx import helper, shape_inference

    model = onnx.load(str(onnx_path))
    graph = model.graph
    wanted = {"strides", "dilations", "kernel_shape"}
    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose") and not wanted <= {a.name for a in n.attribute}]
    hardswish = [n for n in graph.node if n.op_type == "HardSwish"]
    if not convs and not hardswish:
        return None
    if convs:
        inferred = shape_inference.infer_shapes(model).graph
        shapes = {t.name: list(t.dims) for t in graph.initializer}
        for value in [*inferred.input, *inferred.value_info]:
            dims = value.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                shapes[value.name] = [d.dim_value for d in dims]
        for node in convs:
            present = {a.name for a in node.attribute}
            kernel = shapes.get(node.input[1], [])[2:]
            if "kernel_shape" not in present and kernel:
                node.attribute.append(helper.make_attribute("kernel_shape", kernel))
            for name in ("strides", "dilations"):
                if name not in present:
                    node.attribute.append(helper.make_attribute(name, [1] * (len(kernel) or 2)))
    for node in hardswish:
        gate = f"{node.output[0]}__hardsigmoid"
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(index, helper.make_node("Mul", [node.input[0], gate], list(node.output), name=node.name))
        graph.node.insert(index, helper.make_node("HardSigmoid", [node.input[0]], [gate], alpha=1 / 6, beta=0.5))
    return model


SEARCH_PARTS = ("features", "head")


@dataclass(frozen=True)
class SearchSplit:
    """The search network cut where the target's kernels come in, so the part that sees only the
    image can be one model shared by every target.

    features: image -> the image-side tensors that the rest reads (for the shipped bundles the two
              adjusted search feature maps the correlations take)
    head:     those tensors + the kernel inputs -> the network outputs: the depthwise correlations
              (whatever the graph does to the kernels first, e.g. a reshape) and the RPN head after
    """

    features: Any
    head: Any

    def parts(self) -> dict[str, Any]:
        return {part: getattr(self, part) for part in SEARCH_PARTS}


def split_search(model: Any, image_input: str) -> SearchSplit:
    """Cuts a search network (ONNX ModelProto) whose non-image inputs reach the graph only as
    convolution weights. Raises BlurtrackError, saying which node, when a kernel input reaches
    anything else."""
    from onnx import shape_inference
    from onnx.utils import Extractor

    model = shape_inference.infer_shapes(model)  # the cut tensors need shapes as new inputs / outputs
    graph = model.graph
    constant = {t.name for t in graph.initializer}
    kernels = [i.name for i in graph.input if i.name not in constant and i.name != image_input]
    if not kernels:
        raise BlurtrackError(f"search network has no kernel inputs besides {image_input!r}: nothing to split")
    side: dict[str, str] = {image_input: "image", **dict.fromkeys(kernels, "kernel")}
    for node in graph.node:
        sides = {side[name] for name in node.input if name and name not in constant}
        if not sides:
            constant.update(node.output)
            continue
        correlation = node.op_type == "Conv" and sides == {"image", "kernel"} and side.get(node.input[1]) == "kernel"
        if "kernel" in sides and sides != {"kernel"} and not correlation:
            raise BlurtrackError(
                f"cannot split the search network: node {node.name!r} ({node.op_type}) mixes a kernel input with other data"
            )
        kind = "head" if correlation or "head" in sides else sides.pop()
        side.update(dict.fromkeys(node.output, kind))
    outputs = [o.name for o in graph.output]
    if any(side.get(name) != "head" for name in outputs):
        raise BlurtrackError(f"cannot split the search network: not every output of {outputs} comes after a correlation")
    head_nodes = [n for n in graph.node if side.get(n.output[0]) == "head"]
    features = list(dict.fromkeys(name for n in head_nodes for name in n.input if side.get(name) == "image"))
    extractor = Extractor(model)
    return SearchSplit(
        features=extractor.extract_model([image_input], features),
        head=extractor.extract_model(features + kernels, outputs),
    )
