"""What goes into and comes out of the network: pure functions on tensors, on torchvision's ops.

``normalise`` (ImageNet mean and std, the encoders' training statistics),
``resize_pictures`` (PIL-equivalent antialiased bilinear resize of uint8 pictures, as the
reference preprocessing), ``min_max`` (the reference test procedure's per-map
normalisation), ``map_to_uint8`` (a map as an 8-bit image at a frame's size) and
``resize_flow`` (a flow field on another grid, its vectors scaled) and ``working_size``
(the reduced size that flow, saliency and temporal work at).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(pictures: Tensor) -> Tensor:
    """Bx3xHxW pictures in [0, 255] (uint8 or float) -> ImageNet-normalised float Bx3xHxW."""
    return TF.normalize(pictures.float().div(255), IMAGENET_MEAN, IMAGENET_STD)


def resize_pictures(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 BxHxWx3 -> float Bx3xhxw in [0, 255], PIL-equivalent bilinear resize.

    On the CPU the uint8 kernel rounds as PIL does (equal to PIL's BILINEAR but for rare
    off-by-one pixels); elsewhere the float result is not rounded (within 1 level of PIL).
    """
    pictures = frames.permute(0, 3, 1, 2)
    if tuple(pictures.shape[-2:]) == tuple(size):
        return pictures.float()
    if pictures.device.type != "cpu":
        pictures = pictures.float()
    return TF.resize(pictures, list(size), antialias=True).float()


def resize_uint8(pictures: Tensor, size: tuple[int, int]) -> Tensor:
    """``...xHxWx3`` uint8 pictures at ``size`` = (h, w): antialiased bilinear, uint8
    throughout (torchvision's uint8 kernel on the CPU); unchanged at that size."""
    if tuple(pictures.shape[-3:-1]) == tuple(size):
        return pictures
    batch = pictures.reshape(-1, *pictures.shape[-3:]).permute(0, 3, 1, 2)
    resized = TF.resize(batch, list(size), antialias=True).permute(0, 2, 3, 1).contiguous()
    return resized.reshape(*pictures.shape[:-3], *size, pictures.shape[-1])


def min_max(maps: Tensor, dims: tuple[int, ...] = (-2, -1)) -> Tensor:
    """Each map scaled to [0, 1]: ``(s - min) / (max - min + 1e-8)`` over ``dims``."""
    low = maps.amin(dim=dims, keepdim=True)
    high = maps.amax(dim=dims, keepdim=True)
    return (maps - low) / (high - low + 1e-8)


def map_to_uint8(saliency: Tensor, size: tuple[int, int]) -> Tensor:
    """A ``hxw`` (or ``...x1xhxw``) map in [0, 1] as an ``HxW`` uint8 image at ``size``:
    bilinear (antialiased when it shrinks), then ``round(255 * x)``."""
    planar = saliency.reshape(1, 1, *saliency.shape[-2:]).float()
    if tuple(planar.shape[-2:]) != tuple(size):
        planar = TF.resize(planar, list(size), antialias=True)
    return planar[0, 0].clamp(0, 1).mul_(255).add_(0.5).to(torch.uint8)


def resize_flow(flow: Tensor, size: tuple[int, int], antialias: bool = True) -> Tensor:
    """Bx2xhxw flow in pixels -> Bx2xHxW at ``size`` = (H, W), the vectors scaled with the
    grid (bilinear; antialiased when shrinking unless ``antialias`` is False: several times
    faster, for flows that are smooth already)."""
    height, width = flow.shape[-2:]
    if (height, width) == tuple(size):
        return flow
    resized = F.interpolate(flow, size=tuple(size), mode="bilinear", antialias=antialias)
    resized[:, 0] *= size[1] / width
    resized[:, 1] *= size[0] / height
    return resized


def working_size(
    height: int, width: int, short_side: int | tuple[int, int] | None
) -> tuple[int, int]:
    """``(height, width)`` scaled so the short side is ``short_side``, never enlarged; a
    ``(height, width)`` grid as it is; None: unchanged."""
    if isinstance(short_side, tuple):
        return short_side
    if short_side is None or min(height, width) <= short_side:
        return height, width
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))
