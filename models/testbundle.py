"""A tiny hand-made model bundle for tests and demos, built with onnx.helper (no training).

Features are fixed filters (colour and Sobel-edge magnitudes, pooled 16x16 at stride 8); the
template net keeps the centre 7x7 cells, removes their mean and scales them to unit norm; the
search net correlates them (depthwise, the SiamRPN way) and divides by the local energy of the
search features, which gives the normalised cross-correlation r in [-1, 1], and turns it into
foreground logits alpha * (r - 0.5) for every anchor, with zero box regression.
The result is a matched-filter tracker that follows high-contrast textured targets and scores
near 0 where the target is absent. The deblur net is an unsharp mask. Real networks, real files,
the same manifest as a trained bundle: the whole engine and service run on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from blurtrack.engine.manifest import (
    AnchorConfig,
    Bundle,
    DeblurConfig,
    Manifest,
    NetworkSpec,
    TensorSpec,
    TrackerConfig,
)

OPSET = 13
CHANNELS = 5
ANCHORS = 5
SCORE_SIZE = 25
ALPHA = 12.0


def _const(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _feature_nodes(image: str, prefix: str) -> tuple[list, list, str]:
    """Fixed filters: B, G, R and |Sobel x|, |Sobel y| of the grey image, all /255, pooled."""
    weight = np.zeros((CHANNELS, 3, 3, 3), dtype=np.float32)
    for c in range(3):
        weight[c, c, 1, 1] = 1.0 / 255.0
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32) / 4.0
    grey = np.array([0.114, 0.587, 0.299], dtype=np.float32)  # BGR weights
    for c in range(3):
        weight[3, c] = sobel_x * grey[c] / 255.0
        weight[4, c] = sobel_x.T * grey[c] / 255.0
    inits = [_const(f"{prefix}_w", weight)]
    nodes = [
        helper.make_node("Conv", [image, f"{prefix}_w"], [f"{prefix}_conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Abs", [f"{prefix}_conv"], [f"{prefix}_abs"]),
        helper.make_node(
            "AveragePool", [f"{prefix}_abs"], [f"{prefix}_feat"], kernel_shape=[16, 16], strides=[8, 8], pads=[4, 4, 4, 4]
        ),
    ]
    return nodes, inits, f"{prefix}_feat"


def _save(graph: onnx.GraphProto, path: Path) -> None:
    for index, node in enumerate(graph.node):
        node.name = node.name or f"{node.op_type}_{index}"  # quantisation tools address nodes by name
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="blurtrack-testbundle")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def template_graph() -> onnx.GraphProto:
    nodes, inits, feat = _feature_nodes("template", "t")
    inits += [
        _const("starts", np.array([4, 4], dtype=np.int64)),
        _const("ends", np.array([11, 11], dtype=np.int64)),
        _const("axes", np.array([2, 3], dtype=np.int64)),
        _const("eps", np.array(1e-6, dtype=np.float32)),
    ]
    nodes += [
        helper.make_node("Slice", [feat, "starts", "ends", "axes"], ["centre"]),
        helper.make_node("ReduceMean", ["centre"], ["mean"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", ["centre", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["squared"]),
        helper.make_node("ReduceSum", ["squared", "axes_all"], ["energy"], keepdims=1),
        helper.make_node("Add", ["energy", "eps"], ["energy_eps"]),
        helper.make_node("Sqrt", ["energy_eps"], ["norm"]),
        helper.make_node("Div", ["centred", "norm"], ["zf"]),
    ]
    inits.append(_const("axes_all", np.array([1, 2, 3], dtype=np.int64)))
    return helper.make_graph(
        nodes,
        "template",
        [helper.make_tensor_value_info("template", TensorProto.FLOAT, [1, 3, 127, 127])],
        [helper.make_tensor_value_info("zf", TensorProto.FLOAT, [1, CHANNELS, 7, 7])],
        inits,
    )


def search_graph() -> onnx.GraphProto:
    nodes, inits, feat = _feature_nodes("search", "s")
    inits += [
        _const("kernel_shape", np.array([CHANNELS, 1, 7, 7], dtype=np.int64)),
        _const("axis_c", np.array([1], dtype=np.int64)),
        _const("half", np.array(0.5, dtype=np.float32)),
        _const("alpha_half", np.array(ALPHA / 2.0, dtype=np.float32)),
        _const("minus_one", np.array(-1.0, dtype=np.float32)),
        _const("no_regression", np.zeros((1, 4 * ANCHORS, 1, 1), dtype=np.float32)),
        _const("window_sum", np.ones((CHANNELS, 1, 7, 7), dtype=np.float32)),
        _const("inv_cells", np.array(1.0 / 49.0, dtype=np.float32)),
        _const("eps", np.array(1e-6, dtype=np.float32)),
    ]
    nodes += [
        helper.make_node("Reshape", ["zf", "kernel_shape"], ["kernel"]),
        # depthwise cross-correlation: the template features are the convolution weight
        helper.make_node("Conv", [feat, "kernel"], ["corr"], group=CHANNELS),
        helper.make_node("ReduceSum", ["corr", "axis_c"], ["raw_response"], keepdims=1),
        # local energy of the centred search features under each 7x7 window: sum(s^2) - sum(s)^2 / 49
        # (nodes named energy/...: a difference of two close squares, which 8-bit activations cannot
        # resolve, so INT8 versions keep them fp32)
        helper.make_node("Mul", [feat, feat], ["feat_sq"], name="energy/square"),
        helper.make_node("Conv", ["feat_sq", "window_sum"], ["local_sq"], group=CHANNELS, name="energy/window_sq"),
        helper.make_node("Conv", [feat, "window_sum"], ["local_sum"], group=CHANNELS, name="energy/window_sum"),
        helper.make_node("Mul", ["local_sum", "local_sum"], ["local_sum_sq"], name="energy/sum_sq"),
        helper.make_node("Mul", ["local_sum_sq", "inv_cells"], ["local_mean_sq"], name="energy/mean_sq"),
        helper.make_node("Sub", ["local_sq", "local_mean_sq"], ["local_var"], name="energy/var"),
        helper.make_node("ReduceSum", ["local_var", "axis_c"], ["energy"], keepdims=1, name="energy/sum"),
        helper.make_node("Relu", ["energy"], ["energy_pos"], name="energy/relu"),
        helper.make_node("Add", ["energy_pos", "eps"], ["energy_eps"], name="energy/eps"),
        helper.make_node("Sqrt", ["energy_eps"], ["energy_norm"], name="energy/sqrt"),
        helper.make_node("Div", ["raw_response", "energy_norm"], ["response"]),
        helper.make_node("Sub", ["response", "half"], ["centred_response"]),
        helper.make_node("Mul", ["centred_response", "alpha_half"], ["fg"]),
        helper.make_node("Mul", ["fg", "minus_one"], ["bg"]),
        helper.make_node("Concat", ["bg"] * ANCHORS + ["fg"] * ANCHORS, ["cls"], axis=1),
        helper.make_node("Mul", ["response", "no_regression"], ["loc"]),
    ]
    return helper.make_graph(
        nodes,
        "search",
        [
            helper.make_tensor_value_info("search", TensorProto.FLOAT, [1, 3, 255, 255]),
            helper.make_tensor_value_info("zf", TensorProto.FLOAT, [1, CHANNELS, 7, 7]),
        ],
        [
            helper.make_tensor_value_info("cls", TensorProto.FLOAT, [1, 2 * ANCHORS, SCORE_SIZE, SCORE_SIZE]),
            helper.make_tensor_value_info("loc", TensorProto.FLOAT, [1, 4 * ANCHORS, SCORE_SIZE, SCORE_SIZE]),
        ],
        inits,
    )


def deblur_graph(amount: float = 0.6) -> onnx.GraphProto:
    """Unsharp mask per channel: x + amount * (x - box3x3(x)), clipped to 0..255."""
    kernel = -amount * np.full((3, 3), 1.0 / 9.0, dtype=np.float32)
    kernel[1, 1] += 1.0 + amount
    weight = np.repeat(kernel[None, None], 3, axis=0)
    inits = [_const("w", weight), _const("lo", np.array(0.0, dtype=np.float32)), _const("hi", np.array(255.0, dtype=np.float32))]
    nodes = [
        helper.make_node("Conv", ["blurred", "w"], ["sharpened"], group=3, pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["sharpened", "lo", "hi"], ["sharp"]),
    ]
    return helper.make_graph(
        nodes,
        "deblur",
        [helper.make_tensor_value_info("blurred", TensorProto.FLOAT, [1, 3, 255, 255])],
        [helper.make_tensor_value_info("sharp", TensorProto.FLOAT, [1, 3, 255, 255])],
        inits,
    )


def build_test_bundle(out_dir: str | Path, name: str = "test-matched-filter") -> Path:
    """Write the bundle (ONNX files + manifest.json) into out_dir and return out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save(template_graph(), out / "template.onnx")
    _save(search_graph(), out / "search.onnx")
    _save(deblur_graph(), out / "deblur.onnx")
    image = lambda name, size: TensorSpec(name=name, shape=[1, 3, size, size])  # noqa: E731
    manifest = Manifest(
        name=name,
        description="Hand-made matched-filter Siamese bundle for tests and demos (models/testbundle.py); not trained.",
        template=NetworkSpec(
            onnx="template.onnx", inputs=[image("template", 127)], outputs=[TensorSpec(name="zf", shape=[1, CHANNELS, 7, 7])]
        ),
        search=NetworkSpec(
            onnx="search.onnx",
            inputs=[image("search", 255), TensorSpec(name="zf", shape=[1, CHANNELS, 7, 7])],
            outputs=[
                TensorSpec(name="cls", shape=[1, 2 * ANCHORS, SCORE_SIZE, SCORE_SIZE]),
                TensorSpec(name="loc", shape=[1, 4 * ANCHORS, SCORE_SIZE, SCORE_SIZE]),
            ],
            convert_no_fusion=True,
        ),
        deblur=NetworkSpec(onnx="deblur.onnx", inputs=[image("blurred", 255)], outputs=[image("sharp", 255)]),
        anchors=AnchorConfig(stride=8, ratios=[0.33, 0.5, 1.0, 2.0, 3.0], scales=[8.0], score_size=SCORE_SIZE),
        # No box regression here, so the size stays put (lr 0) and the ratio penalty is moot.
        tracker=TrackerConfig(
            penalty_k=0.0,
            window_influence=0.3,
            lr=0.0,
            lost_threshold=0.3,
            found_threshold=0.6,
            lost_patience=2,
            lost_search_growth=1.1,
            lost_search_max=1.3,
        ),
        deblur_policy=DeblurConfig(mode="auto", blur_threshold=150.0),
    )
    Bundle(root=out, manifest=manifest).save()
    return out
