"""Making and judging models: the PyTorch networks, training and export (the optional `[train]`
extra), the blur synthesiser, the hand-made test bundle and moving-target renderer, and the
evaluation / benchmarking toolkit. Only the training modules import torch.

The runtime (blurtrack.engine, blurtrack.service) never imports this package: it only reads the
exported ONNX / .ms bundles under models/weights/.
"""
