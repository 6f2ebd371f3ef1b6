"""Small ONNX models built with onnx.helper, for the runtime tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def _conv(inputs: list[str], output: str, kernel: int, *, pads: int = 0, group: int = 1) -> onnx.NodeProto:
    # attributes spelt out as torch exports them
    return helper.make_node("Conv", inputs, [output], kernel_shape=[kernel, kernel], strides=[1, 1], pads=[pads] * 4, group=group)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _weights(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name)


def make_conv_net(path: Path, size: int = 64, seed: int = 0) -> Path:
    """image [1,3,size,size] -> conv3x3(16)+relu -> conv3x3(8) -> feat [1,8,size,size]."""
    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [
            _conv(["image", "w1", "b1"], "h", 3, pads=1),
            helper.make_node("Relu", ["h"], ["r"]),
            _conv(["r", "w2"], "feat", 3, pads=1),
        ],
        "conv_net",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, [1, 8, size, size])],
        [_weights(rng, "w1", (16, 3, 3, 3)), _weights(rng, "b1", (16,)), _weights(rng, "w2", (8, 16, 3, 3))],
    )
    return _save(graph, path)


def make_siamese_net(path: Path, channels: int = 8, seed: int = 1) -> Path:
    """A SiamRPN-style search net: search [1,3,39,39] and the template feature zf [1,C,7,7] ->
    depthwise cross-correlation (a grouped Conv whose *weight is a graph input*) -> 1x1 heads
    cls [1,10,25,25] and loc [1,20,25,25]. Its converter run needs fusion off."""
    rng = np.random.default_rng(seed)
    c = channels
    graph = helper.make_graph(
        [
            _conv(["search", "wx"], "x1", 3),  # 39 -> 37
            helper.make_node("Relu", ["x1"], ["xr"]),
            _conv(["xr", "wx2"], "xf", 7),  # 37 -> 31
            helper.make_node("Reshape", ["zf", "kernel_shape"], ["zk"]),  # [1,C,7,7] -> [C,1,7,7]
            _conv(["xf", "zk"], "corr", 7, group=c),  # 31 -> 25
            _conv(["corr", "wc", "bc"], "cls", 1),
            _conv(["corr", "wl", "bl"], "loc", 1),
        ],
        "siamese_net",
        [
            helper.make_tensor_value_info("search", TensorProto.FLOAT, [1, 3, 39, 39]),
            helper.make_tensor_value_info("zf", TensorProto.FLOAT, [1, c, 7, 7]),
        ],
        [
            helper.make_tensor_value_info("cls", TensorProto.FLOAT, [1, 10, 25, 25]),
            helper.make_tensor_value_info("loc", TensorProto.FLOAT, [1, 20, 25, 25]),
        ],
        [
            _weights(rng, "wx", (c, 3, 3, 3)),
            _weights(rng, "wx2", (c, c, 7, 7)),
            numpy_helper.from_array(np.array([c, 1, 7, 7], np.int64), "kernel_shape"),
            _weights(rng, "wc", (10, c, 1, 1)),
            _weights(rng, "bc", (10,)),
            _weights(rng, "wl", (20, c, 1, 1)),
            _weights(rng, "bl", (20,)),
        ],
    )
    return _save(graph, path)
