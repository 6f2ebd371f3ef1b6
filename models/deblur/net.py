"""The deblurrer: a light DeblurGAN-v2 FPN generator, a PatchGAN critic and a perceptual loss.

Generator (FPNDeblur), sized to run on every frame (../shared/PERF_NOTES.md: the full
DeblurGAN-v2 FPN costs 5.4 GFLOPs at 256; this light variant ~1.2):
  BGR 0..255 -> pad to a multiple of 32 -> MobileNetV2 encoder taps at /2 /4 /8 /16 /32
  -> 1x1 laterals (64 ch) with top-down nearest-upsample + add and depthwise-separable smoothing
  -> one depthwise-separable head per level (32 ch) -> all upsampled to /4 and concatenated
  -> fuse to /2 with the /2 lateral -> /1 -> 3x3 conv -> tanh residual added to the input
  -> clamp -> crop -> BGR 0..255.
Everything (normalisation, padding, residual scaling) is inside the graph, so the exported ONNX
takes "blurred" [1,3,H,W] BGR 0..255 and returns "sharp" of the same shape and range.
The decoder has no normalisation layers: batch sizes are small on CPU, and the encoder's
BatchNorms are kept in eval mode (ImageNet statistics), so train and test behave the same.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from blurtrack.models.deblur.mobilenetv2 import load_imagenet, mobilenet_v2_features, normalise_bgr


def _replicate_pad(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Repeat the last row / column: exports as static Slice + Concat (F.pad's replicate mode
    exports a Shape/Gather/Mod sub-graph that converters handle worse)."""
    if bottom:
        x = torch.cat([x] + [x[:, :, -1:, :]] * bottom, dim=2)
    if right:
        x = torch.cat([x] + [x[:, :, :, -1:]] * right, dim=3)
    return x


class SepConv(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1 (+ ReLU): the light replacement for DeblurGAN's 3x3 convs."""

    def __init__(self, cin: int, cout: int, relu: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(cin, cin, 3, padding=1, groups=cin), nn.Conv2d(cin, cout, 1)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class FPNDeblur(nn.Module):
    # MobileNetV2 feature slices feeding each pyramid level, with their channels and strides.
    TAPS = ((0, 2, 16), (2, 4, 24), (4, 7, 32), (7, 11, 64), (11, 16, 160))  # /2 /4 /8 /16 /32

    def __init__(self, lateral: int = 64, head: int = 32, pretrained: bool = True):
        super().__init__()
        features = mobilenet_v2_features(16)
        if pretrained:
            load_imagenet(features)
        self.enc = nn.ModuleList(features[a:b] for a, b, _ in self.TAPS)
        chans = [c for _, _, c in self.TAPS]
        self.lat0 = nn.Conv2d(chans[0], lateral, 1)
        self.lats = nn.ModuleList(nn.Conv2d(c, lateral, 1) for c in chans[1:])  # /4 /8 /16 /32
        self.topdown = nn.ModuleList(SepConv(lateral, lateral) for _ in range(3))  # at /16 /8 /4
        self.heads = nn.ModuleList(SepConv(lateral, head) for _ in range(4))
        self.smooth = SepConv(4 * head, lateral)
        self.smooth2 = SepConv(lateral, head)
        self.final = nn.Conv2d(head, 3, 3, padding=1)
        # Start as the identity (residual 0): the untrained net passes the blurred crop through.
        nn.init.zeros_(self.final.weight)
        assert self.final.bias is not None  # Conv2d has one unless told otherwise
        nn.init.zeros_(self.final.bias)

    def encoder_parameters(self):
        return self.enc.parameters()

    def decoder_parameters(self):
        enc = {id(p) for p in self.enc.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def train(self, mode: bool = True) -> FPNDeblur:
        super().train(mode)
        for m in self.enc.modules():  # frozen ImageNet BN statistics: small CPU batches
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, blurred: torch.Tensor) -> torch.Tensor:
        h, w = blurred.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32  # shapes are static in the exported graph
        x = _replicate_pad(blurred, ph, pw)
        feats = []
        y = normalise_bgr(x)
        for stage in self.enc:
            y = stage(y)
            feats.append(y)
        e0, e1, e2, e3, e4 = feats
        m4 = self.lats[3](e4)
        m3 = self.topdown[0](self.lats[2](e3) + F.interpolate(m4, scale_factor=2.0, mode="nearest"))
        m2 = self.topdown[1](self.lats[1](e2) + F.interpolate(m3, scale_factor=2.0, mode="nearest"))
        m1 = self.topdown[2](self.lats[0](e1) + F.interpolate(m2, scale_factor=2.0, mode="nearest"))
        heads = [
            self.heads[0](m1),
            F.interpolate(self.heads[1](m2), scale_factor=2.0, mode="nearest"),
            F.interpolate(self.heads[2](m3), scale_factor=4.0, mode="nearest"),
            F.interpolate(self.heads[3](m4), scale_factor=8.0, mode="nearest"),
        ]
        z = self.smooth(torch.cat(heads, dim=1))
        z = F.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False) + self.lat0(e0)
        z = self.smooth2(z)
        z = F.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False)
        residual = torch.tanh(self.final(z))
        x_n = x * (1.0 / 127.5) - 1.0
        out = torch.clamp(x_n + residual, -1.0, 1.0)
        out = (out + 1.0) * 127.5
        return out[:, :, :h, :w] if (ph or pw) else out


class PatchDiscriminator(nn.Module):
    """A light PatchGAN critic (70x70-style receptive field, 3 stride-2 convs): one score per patch."""

    def __init__(self, width: int = 32):
        super().__init__()
        c = width
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * c, 4 * c, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * c, 1, 3, 1, 1),
        )

    def forward(self, x255: torch.Tensor) -> torch.Tensor:
        return self.net(x255 * (1.0 / 127.5) - 1.0)


class PerceptualLoss(nn.Module):
    """L1 between frozen ImageNet MobileNetV2 features (/2, /4 and /8 taps) of output and target.

    VGG weights are not available offline; MobileNetV2's early layers play the same role.
    """

    def __init__(self):
        super().__init__()
        features = load_imagenet(mobilenet_v2_features(7))
        self.stages = nn.ModuleList([features[0:2], features[2:4], features[4:7]])
        self.weights = (1.0, 1.0, 1.0)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # always frozen

    def forward(self, output255: torch.Tensor, target255: torch.Tensor) -> torch.Tensor:
        a, b = normalise_bgr(output255), normalise_bgr(target255)
        loss = output255.new_zeros(())
        for w, stage in zip(self.weights, self.stages):
            a, b = stage(a), stage(b)
            loss = loss + w * F.l1_loss(a, b)
        return loss


def count_flops(model: nn.Module, shape: tuple[int, ...] = (1, 3, 256, 256)) -> float:
    """Multiply-accumulates of Conv2d layers x 2 (GFLOPs as in PERF_NOTES) for one forward."""
    total = [0]

    def hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total[0] += out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(shape))
    for h in handles:
        h.remove()
    return 2.0 * total[0] / 1e9
