"""Parameters and FLOPs of a bundle's ONNX networks, read from the graphs (no torch needed).

FLOPs are 2 x multiply-accumulates of the Conv, ConvTranspose, Gemm and MatMul nodes, the layers
that dominate these networks; element-wise ops are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    graph = model.graph
    shapes = {}
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def network_stats(onnx_file: Path) -> dict[str, float]:
    """{"params": weights stored in the file, "gflops": per call}."""
    model = shape_inference.infer_shapes(onnx.load(str(onnx_file)))
    shapes = _shapes(model)
    params = sum(int(np.prod(numpy_helper.to_array(i).shape)) for i in model.graph.initializer)
    macs = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if not out or 0 in out:
            continue
        if node.op_type in ("Conv", "ConvTranspose"):
            weight = shapes[node.input[1]]  # [Cout, Cin/group, kh, kw] (Conv)
            macs += int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            inner = shapes[node.input[0]][-1]
            macs += int(np.prod(out)) * inner
    return {"params": params, "gflops": 2 * macs / 1e9}
