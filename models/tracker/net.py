"""SiamRPN with a depthwise cross-correlation RPN head (pysot's DepthwiseRPN, 1x1 adjust convs).

The network is split the way the bundle is: `template_branch(z)` turns a 127 template crop into
the two correlation kernels (cls, loc), each [C, 1, 7, 7] per template; `search_branch(x, kc, kl)`
turns a 255 search crop plus those kernels into cls [N, 2k, 25, 25] and loc [N, 4k, 25, 25].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from blurtrack.models.tracker.backbones import AlexNetStyle, DeblurEncoder, EfficientNetLite0

# Cells of the stride-8 maps (16x16 template, 32x32 search; cell o centred on crop pixel 8*o) that
# the neck keeps. Correlation output i then uses search cells i..i+6, centred on pixel 8*i + 24;
# the template window is centred on template pixel 56 = 63 - 7, so a target at search pixel
# 127 + d matches where 8*i + 24 = 120 + d, i.e. i = 12 + d / 8: the engine's anchor grid (centre
# cell 12, stride 8) with the same -7 px offset on both sides cancelling out.
TEMPLATE_CELLS = slice(4, 11)
SEARCH_CELLS = slice(0, 31)


@dataclass
class NetConfig:
    backbone: str = "effnet_lite0"  # or "alexnet", or "deblur_encoder"
    trunk: str = "fused"  # Lite0 only: "fused" (stage 3 + upsampled stage 4) or "dilated"
    eca: bool = True
    eca_from: int = 3
    pretrained: bool = True
    neck_channels: int = 128
    anchor_num: int = 5
    alexnet_width: float = 0.5
    deblur_onnx: str = ""  # deblur_encoder only: the deblur.onnx whose encoder the tracker reads

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def xcorr_depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel correlation of x [N, C, H, W] with kernel [N*C, 1, h, w] (one kernel per item)."""
    n, c = x.shape[0], x.shape[1]
    out = F.conv2d(x.reshape(1, n * c, x.shape[2], x.shape[3]), kernel, groups=n * c)
    return out.reshape(n, c, out.shape[2], out.shape[3])


class DepthwiseBranch(nn.Module):
    """One RPN branch: adjust template and search, correlate per channel, 1x1 head to `out` maps."""

    def __init__(self, channels: int, out: int):
        super().__init__()
        self.conv_kernel = conv_bn_relu(channels, channels)
        self.conv_search = conv_bn_relu(channels, channels)
        self.head = nn.Sequential(conv_bn_relu(channels, channels), nn.Conv2d(channels, out, 1))

    def kernel(self, zf: torch.Tensor) -> torch.Tensor:
        k = self.conv_kernel(zf)  # [N, C, 7, 7]
        return k.reshape(-1, 1, k.shape[2], k.shape[3])  # [N*C, 1, 7, 7]: a grouped-conv weight

    def forward(self, xf: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return self.head(xcorr_depthwise(self.conv_search(xf), kernel))


class Neck(nn.Module):
    """1x1 conv + BN of each backbone map to a common width, trimmed to the kept cells; a stride-16
    map is upsampled to the stride-8 grid first (align_corners with 2n-1 cells puts its cell o
    exactly on stride-8 cell 2*o) and added."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.adjust = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels)) for c in in_channels
        )

    def forward(self, feats: list[torch.Tensor], cells: slice) -> torch.Tensor:
        out = self.adjust[0](feats[0][:, :, cells, cells])
        for adjust, f in zip(self.adjust[1:], feats[1:]):
            y = adjust(f)
            size = 2 * y.shape[2] - 1
            y = F.interpolate(y, size=(size, size), mode="bilinear", align_corners=True)
            out = out + y[:, :, cells, cells]
        return out


class SiamRPN(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone: EfficientNetLite0 | AlexNetStyle | DeblurEncoder
        if cfg.backbone == "effnet_lite0":
            self.backbone = EfficientNetLite0(eca=cfg.eca, eca_from=cfg.eca_from, mode=cfg.trunk)
            if cfg.pretrained:
                self.backbone.load_imagenet()
        elif cfg.backbone == "alexnet":
            self.backbone = AlexNetStyle(width=cfg.alexnet_width)
        elif cfg.backbone == "deblur_encoder":
            self.backbone = DeblurEncoder(cfg.deblur_onnx)
        else:
            raise ValueError(f"unknown backbone {cfg.backbone!r}: use effnet_lite0, alexnet or deblur_encoder")
        c = cfg.neck_channels
        self.neck = Neck(self.backbone.out_channels, c)
        self.cls = DepthwiseBranch(c, 2 * cfg.anchor_num)
        self.loc = DepthwiseBranch(c, 4 * cfg.anchor_num)

    def template_branch(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zf = self.neck(self.backbone(z), TEMPLATE_CELLS)
        return self.cls.kernel(zf), self.loc.kernel(zf)

    def search_branch(
        self, x: torch.Tensor, kernel_cls: torch.Tensor, kernel_loc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xf = self.neck(self.backbone(x), SEARCH_CELLS)
        return self.cls(xf, kernel_cls), self.loc(xf, kernel_loc)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kc, kl = self.template_branch(z)
        return self.search_branch(x, kc, kl)


class TemplateNet(nn.Module):
    """Export wrapper: template [1,3,127,127] -> kernel_cls, kernel_loc [C,1,7,7]."""

    def __init__(self, net: SiamRPN):
        super().__init__()
        self.net = net

    def forward(self, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.template_branch(template)


class SearchNet(nn.Module):
    """Export wrapper: search [1,3,255,255] + the template kernels -> cls, loc."""

    def __init__(self, net: SiamRPN):
        super().__init__()
        self.net = net

    def forward(
        self, search: torch.Tensor, kernel_cls: torch.Tensor, kernel_loc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.search_branch(search, kernel_cls, kernel_loc)


def build_tracker(cfg: NetConfig | dict) -> SiamRPN:
    if isinstance(cfg, dict):
        cfg = NetConfig.from_dict(cfg)
    return SiamRPN(cfg)
