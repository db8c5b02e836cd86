"""IANet: two encoders, local mutual enhancement, global weights, progressive aggregation.

``IANet()`` is the paper's network (ResNet34 encoders at output stride 16; see
``docs/architecture.md``, "The network"): its state dict has exactly the reference
checkpoint's keys (``tests/data/ianet-state-dict.txt``), so reference weights load with
``strict=True``. ``IANet("lite")`` has the same topology with MobileNetV3-Small encoders
and a decoder whose widths are the encoders' channel counts (every module below takes its
channels as arguments); ``IANet("lite-efficientnet")`` the same with EfficientNet-Lite0's
first four stages, whose ImageNet weights ship in a package (``ianet.backbones``).

Every resize inside the network is ``up(x, ref)``: bilinear with ``align_corners=True``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ianet.backbones import ENCODERS, build_encoder, imagenet_state_dict, load_imagenet
from ianet.errors import InputError


def up(x: Tensor, ref: Tensor) -> Tensor:
    """Resize ``x`` (BxCxhxw) to the spatial size of ``ref``: bilinear, align_corners=True."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)


torch.fx.wrap("up")  # a leaf for symbolic tracing (BatchNorm folding traces the network)


def cbr(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv 3x3 (bias) + BatchNorm + ReLU, keys 0 and 1."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def double_cbr(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """Two ``cbr`` in a row (keys 0, 1, 3, 4): the decoder's ``block*`` between stages."""
    return nn.Sequential(*cbr(in_channels, mid_channels), *cbr(mid_channels, out_channels))


def logit_head(channels: int) -> nn.Sequential:
    """Conv 3x3, BN, ReLU, Conv 3x3, BN, ReLU (convs without bias), Conv 1x1 -> 1 logit map
    (keys 0, 1, 3, 4, 6): ``last_conv`` of a bone and ``last_conv_rgb``."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, 1, 1),
    )


class ASPPBranch(nn.Module):
    """One atrous branch: conv (1x1 at rate 1, else 3x3 with dilation = padding = rate,
    no bias), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, rate: int) -> None:
        super().__init__()
        kernel, padding = (1, 0) if rate == 1 else (3, rate)
        self.atrous_convolution = nn.Conv2d(
            in_channels, out_channels, kernel, padding=padding, dilation=rate, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.atrous_convolution(x)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling at rates 1, 6, 12, 18 plus global pooling.

    forward: BxCinxHxW -> BxCoutxHxW.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.aspp1 = ASPPBranch(in_channels, out_channels, 1)
        self.aspp2 = ASPPBranch(in_channels, out_channels, 6)
        self.aspp3 = ASPPBranch(in_channels, out_channels, 12)
        self.aspp4 = ASPPBranch(in_channels, out_channels, 18)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.conv1 = nn.Conv2d(5 * out_channels, out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        pooled = up(self.global_avg_pool(x), x)
        branches = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x), pooled]
        return F.relu(self.bn1(self.conv1(torch.cat(branches, dim=1))))


class Bone(nn.Module):
    """An encoder with its ASPP (and the coarse logit head ``last_conv``).

    forward: Bx3xHxW -> ([l1, l2, l3, l4], aspp) with aspp Bx(aspp_channels)xH/16xW/16.
    """

    def __init__(self, encoder: nn.Module, aspp_channels: int, with_head: bool) -> None:
        super().__init__()
        self.backbone_features = encoder
        self.aspp = ASPP(encoder.channels[-1], aspp_channels)
        if with_head:
            self.last_conv = logit_head(aspp_channels)

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        levels = self.backbone_features(x)
        return levels, self.aspp(levels[-1])


class LME(nn.Module):
    """Local mutual enhancement of an RGB feature r and a flow feature f (both BxCxHxW).

    fuse = cbr1(r) * cbr2(f); s1 = cbr3(f - r); s2 = cbr4(r - f);
    returns (r + cbr5(fuse + s1), f + cbr6(fuse + s2)), cbr5/6 being 1x1.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        for index in range(1, 7):
            kernel = 3 if index <= 4 else 1
            conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
            self.add_module(f"conv{index}", conv)
            self.add_module(f"bn{index}", nn.BatchNorm2d(channels))

    def _cbr(self, index: int, x: Tensor) -> Tensor:
        return F.relu(getattr(self, f"bn{index}")(getattr(self, f"conv{index}")(x)))

    def forward(self, r: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        fuse = self._cbr(1, r) * self._cbr(2, f)
        s1 = self._cbr(3, f - r)
        s2 = self._cbr(4, r - f)
        return r + self._cbr(5, fuse + s1), f + self._cbr(6, fuse + s2)


class GWG(nn.Module):
    """Global weight generation: one channel weight vector per level from both modalities.

    forward(gi, gf): two BxCxHxW squeezed stacks -> [w1..w5], wk Bx(level_channels[k])x1x1
    in (0, 1).
    """

    def __init__(self, in_channels: int, level_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.FC = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1), nn.BatchNorm2d(in_channels), nn.ReLU(True)
        )
        for index, channels in enumerate(level_channels, start=1):
            head = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.Sigmoid()
            )
            self.add_module(f"att_{index}", head)
        self.levels = len(level_channels)

    def forward(self, gi: Tensor, gf: Tensor) -> list[Tensor]:
        pooled = torch.cat([F.adaptive_avg_pool2d(gi, 1), F.adaptive_avg_pool2d(gf, 1)], dim=1)
        g = self.FC(pooled)
        return [getattr(self, f"att_{index}")(g) for index in range(1, self.levels + 1)]


class ChannelSelect(nn.Module):
    """Softmax selection among n same-shaped features, per channel (``cs`` of PA / PA_last).

    g = fc1(avgpool(cat(xs))); heads att1..attn on g, concatenated along dim 2 (Bxcxnx1)
    and softmaxed over dim 2 -> p; returns sum_i xs[i] * p_i.
    """

    def __init__(self, inputs: int, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(inputs * channels, hidden, 1)
        for index in range(1, inputs + 1):
            self.add_module(f"att{index}", nn.Conv2d(hidden, channels, 1))
        self.inputs = inputs

    def forward(self, *xs: Tensor) -> Tensor:
        g = self.fc1(F.adaptive_avg_pool2d(torch.cat(xs, dim=1), 1))
        heads = [getattr(self, f"att{index}")(g) for index in range(1, self.inputs + 1)]
        p = torch.softmax(torch.cat(heads, dim=2), dim=2)
        out = xs[0] * p[:, :, 0:1]
        for index in range(1, self.inputs):
            out = out + xs[index] * p[:, :, index : index + 1]
        return out


class PALast(nn.Module):
    """The first aggregation stage (``pa5``): a softmax mix of the RGB and flow features.

    forward: r, f BxCxHxW -> BxCxHxW.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.cs = ChannelSelect(2, channels, hidden=2 * channels)

    def forward(self, r: Tensor, f: Tensor) -> Tensor:
        return self.cs(r, f)


class PA(nn.Module):
    """Progressive aggregation of an RGB feature, a flow feature and the previous stage.

    forward: r, f BxCxHxW and u BxCxhxw (h <= H) -> BxCxHxW.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layer_11 = cbr(channels, channels)
        self.layer_21 = cbr(channels, channels)
        self.layer_31 = cbr(channels, channels)
        self.layer_41 = cbr(channels, channels)
        self.layer_final_rgb = cbr(2 * channels, channels)
        self.layer_final_flow = cbr(2 * channels, channels)
        self.cs = ChannelSelect(3, channels, hidden=channels)

    def forward(self, r: Tensor, f: Tensor, u: Tensor) -> Tensor:
        xr, xf = self.layer_11(r), self.layer_21(f)
        ur, uf = up(self.layer_31(u), r), up(self.layer_41(u), r)
        ro = self.layer_final_rgb(torch.cat([xr * ur, torch.maximum(xr, ur)], dim=1))
        fo = self.layer_final_flow(torch.cat([xf * uf, torch.maximum(xf, uf)], dim=1))
        return self.cs(ro, fo, up(u, ro))


class IANetOutput(NamedTuple):
    """The seven Bx1xHxW logit maps at input size; in eval only ``pred`` matters."""

    pred: Tensor
    coarse_img: Tensor
    coarse_flow: Tensor
    side4: Tensor
    side3: Tensor
    side2: Tensor
    side1: Tensor


@dataclass(frozen=True)
class IANetOptions:
    """What builds an IANet (stored in checkpoints so that the network can be rebuilt).

    encoder: a name in ``ianet.backbones.ENCODERS``; aspp_channels: width of the ASPP
    output and of the fifth level; squeeze_channels: width of each level in the global
    weight generation; keep_unused: keep the modules the forward pass never uses
    (``ImageBone.last_conv``, ``convp_i``, ``convp_f``) for key compatibility.
    """

    variant: str = "ianet"
    encoder: str = "resnet34"
    aspp_channels: int = 256
    squeeze_channels: int = 64
    keep_unused: bool = True


_LITE = IANetOptions(
    variant="lite",
    encoder="mobilenet_v3_small",
    aspp_channels=40,
    squeeze_channels=16,
    keep_unused=False,
)
VARIANTS = {
    "ianet": IANetOptions(),
    "lite": _LITE,
    "lite-efficientnet": replace(_LITE, variant="lite-efficientnet", encoder="efficientnet_lite0"),
}


def init_weights(module: nn.Module) -> None:
    """The reference initialisation: conv weights ~ N(0, 0.01) (biases keep PyTorch's
    default), BatchNorm weight 1 and bias 0."""
    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            nn.init.normal_(child.weight, mean=0.0, std=0.01)
        elif isinstance(child, nn.BatchNorm2d):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)


class IANet(nn.Module):
    """The IANet video salient-object detector.

    Args:
        variant: "ianet" (the paper's network, 106,942,054 parameters), "lite"
            (MobileNetV3-Small encoders, 3,900,287) or "lite-efficientnet" (EfficientNet-Lite0
            encoders, 3,014,823).
        backbone_weights: "none" (random), "auto" (torchvision's ImageNet weights from the
            torch hub cache or a download) or a path to a torchvision state dict; loaded
            into both encoders.
        **overrides: fields of ``IANetOptions`` that differ from the variant's.

    forward(image, flow): normalised Bx3xHxW picture and colour-coded flow ->
    ``IANetOutput`` of seven Bx1xHxW logit maps
    ``(pred, coarse_img, coarse_flow, side4, side3, side2, side1)``.
    """

    def __init__(
        self,
        variant: str = "ianet",
        *,
        backbone_weights: str | os.PathLike = "none",
        **overrides: object,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise InputError(f"variant {variant!r}: unknown (choose from {', '.join(VARIANTS)})")
        unknown = set(overrides) - set(IANetOptions.__dataclass_fields__) - {"variant"}
        if unknown:
            raise InputError(f"IANet options: unknown {', '.join(sorted(unknown))}")
        options = replace(VARIANTS[variant], **overrides)
        self.options = asdict(options)
        channels = (*ENCODERS[options.encoder].build.channels, options.aspp_channels)
        c1, c2, c3, c4, c5 = channels
        squeeze = options.squeeze_channels

        self.ImageBone = Bone(build_encoder(options.encoder), c5, options.keep_unused)
        self.FlowBone = Bone(build_encoder(options.encoder), c5, with_head=True)
        self.GWG = GWG(2 * len(channels) * squeeze, channels)
        for side in ("i", "f"):
            for level, name in enumerate(("conv1", "conv2", "conv3", "conv4", "convaspp")):
                self.add_module(f"{name}_{side}", cbr(channels[level], squeeze))
            if options.keep_unused:
                self.add_module(f"convp_{side}", cbr(len(channels) * squeeze, len(channels)))
        self.block1 = double_cbr(c1, c1, c1)
        self.block2 = double_cbr(c2, c2, c1)
        self.block3 = double_cbr(c3, c3, c2)
        self.block4 = double_cbr(c4, c4, c3)
        self.blockaspp = double_cbr(c5, c5, c4)
        for level, width in enumerate(channels, start=1):
            self.add_module(f"lme{level}", LME(width))
        self.pa5 = PALast(c5)
        self.pa4, self.pa3, self.pa2, self.pa1 = PA(c4), PA(c3), PA(c2), PA(c1)
        for level, width in enumerate(channels, start=1):
            self.add_module(f"pred_head{level}", nn.Conv2d(width, 1, 1))
        self.last_conv_rgb = logit_head(c5)

        init_weights(self)
        if str(backbone_weights) != "none":
            state = imagenet_state_dict(options.encoder, backbone_weights)
            for bone in (self.ImageBone, self.FlowBone):
                load_imagenet(bone.backbone_features, state, str(backbone_weights))

    @classmethod
    def lite(cls, **kwargs: object) -> IANet:
        """The lite variant: MobileNetV3-Small encoders and a narrow decoder."""
        return cls("lite", **kwargs)

    def _squeeze(self, side: str, levels: list[Tensor]) -> Tensor:
        """Squeeze the five levels of one modality and stack them at level 1's size."""
        names = ("conv1", "conv2", "conv3", "conv4", "convaspp")
        squeezed = [
            getattr(self, f"{name}_{side}")(x) for name, x in zip(names, levels, strict=True)
        ]
        return torch.cat([squeezed[0]] + [up(x, squeezed[0]) for x in squeezed[1:]], dim=1)

    def forward(self, image: Tensor, flow: Tensor) -> IANetOutput:
        levels_i, aspp_i = self.ImageBone(image)
        levels_f, aspp_f = self.FlowBone(flow)

        coarse_flow = up(self.FlowBone.last_conv(aspp_f), image)
        m = up(coarse_flow, aspp_i)
        coarse_img = self.last_conv_rgb(aspp_i * m + aspp_i)

        enhanced = [
            getattr(self, f"lme{level}")(r, f)
            for level, (r, f) in enumerate(
                zip([*levels_i, aspp_i], [*levels_f, aspp_f], strict=True), 1
            )
        ]
        rgb = [r for r, _ in enhanced]
        flw = [f for _, f in enhanced]
        weights = self.GWG(self._squeeze("i", rgb), self._squeeze("f", flw))
        r = [w * x for w, x in zip(weights, rgb, strict=True)]
        f = [(1 - w) * x for w, x in zip(weights, flw, strict=True)]

        d5 = self.pa5(r[4], f[4])
        d5 = d5 + d5 * up(torch.sigmoid(coarse_img), d5)
        side4 = self.pred_head5(d5)
        d4 = self.pa4(r[3], f[3], self.blockaspp(d5))
        side3 = self.pred_head4(d4)
        d3 = self.pa3(r[2], f[2], self.block4(d4))
        side2 = self.pred_head3(d3)
        d2 = self.pa2(r[1], f[1], self.block3(d3))
        side1 = self.pred_head2(d2)
        d1 = self.block1(self.pa1(r[0], f[0], self.block2(d2)))
        pred = self.pred_head1(d1)
        maps = (pred, coarse_img, m, side4, side3, side2, side1)
        return IANetOutput(*(up(x, image) for x in maps))
