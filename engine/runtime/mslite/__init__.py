"""MindSpore Lite: runs a bundle's `.ms` files.

Two ways in, tried in this order:
- `official`: the `mindspore_lite` Python package, where it installs (Ascend / edge devices, from
  the MindSpore release site matching the device);
- `shim`: our C shim over the native libraries of PyPI's CPython-3.7-only wheel, loaded with ctypes
  (set up by `blurtrack setup mslite`, see install.py).

ONNX stays the source of truth: `.ms` files are made from it on the machine that runs them
(`blurtrack models convert`), because model files only load in the Lite version that wrote them.
The converter may rename tensors; conversion then records the ONNX names in `<file>.ms.names.json`
so sessions are always fed and read by the ONNX names.

Lite packs a convolution's weights on its first call and keeps them, so a search network fed
different targets' kernels in turn would answer with the first target's. Conversion therefore also
cuts the search network where the kernels come in (`search.features.ms`, `search.head.ms`): the
features are loaded once and shared by every target, the small head (correlations and RPN head)
once per target (see engine/runtime/search.py).

One module per job: `detect` (which runtime is here), `binding` (the shim through ctypes),
`official` (the official package), `backend` (sessions and the Backend over either), `graph`
(ONNX rewrites and tensor-name matching for the converter), `convert` (ONNX -> .ms in a child
process) and `install` (fetching the runtime and building the shim).
"""

import os

# MindSpore logs every warning to stderr; keep errors only unless the user chose a level.
os.environ.setdefault("GLOG_v", "3")
