"""Training and export code for blurtrack's networks (PyTorch; the optional `[train]` extra).

The service and engine never import this package: they only read the exported ONNX / .ms bundles.
"""
