"""Encoders for IANet: torchvision networks re-configured to output stride 16.

Each encoder maps a Bx3xHxW picture to four feature maps ``[l1, l2, l3, l4]`` at strides
4, 8, 16 and 16 and lists their channel counts in ``channels``. The module names are
torchvision's, so torchvision's ImageNet state dicts load by name (classifier ignored).

- ``resnet34``: the paper's encoder. torchvision's resnet34 whose layer4 keeps stride 1:
  its first block's conv1 becomes 3x3 with dilation 2 and padding 2 and its downsample a
  1x1 conv with stride 1 (torchvision's BasicBlock refuses dilation at construction, so
  the two convolutions are re-configured after it). Channels 64, 128, 256, 512.
- ``mobilenet_v3_small``: torchvision's ``mobilenet_v3_small(dilated=True)`` (its last
  stage dilated instead of strided), without the final 1x1 expansion. Channels 16, 24,
  48, 96.

``imagenet_state_dict(name, "auto" | PATH)`` finds the ImageNet weights: "auto" is
torchvision's own mechanism (the torch hub cache, then a download).
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import MobileNet_V3_Small_Weights, ResNet34_Weights, WeightsEnum

from ianet.errors import InputError
from ianet.torchfile import load_tensor_dict


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
        levels, start = [], 0
        for end in self._ends:
            for index in range(start, end):
                x = self.features[index](x)
            levels.append(x)
            start = end
        return levels


@dataclass(frozen=True)
class EncoderSpec:
    """How to build an encoder and where its ImageNet weights come from."""

    build: type[nn.Module]
    weights: WeightsEnum
    other_file_names: tuple[str, ...] = ()  # older names of the same weights in the hub cache


ENCODERS: dict[str, EncoderSpec] = {
    "resnet34": EncoderSpec(
        ResNet34OS16, ResNet34_Weights.IMAGENET1K_V1, other_file_names=("resnet34-333f7ec4.pth",)
    ),
    "mobilenet_v3_small": EncoderSpec(
        MobileNetV3SmallOS16, MobileNet_V3_Small_Weights.IMAGENET1K_V1
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
    file and the folder to put it in.
    """
    spec = ENCODERS[name]
    if str(source) != "auto":
        return _load_file(Path(source))
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
