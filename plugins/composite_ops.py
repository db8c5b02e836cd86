"""Compositing on batches of pictures and saliency masks: pure functions, any device.

Every picture is a float tensor in [0, 1]: ``Bx3xHxW`` RGB; every mask is ``Bx1xHxW`` in
[0, 1] (1 = the salient object). Colours are ``(r, g, b)`` tuples in [0, 1]. Blurs and
morphology are kornia's, so the work stays on the device the tensors live on.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

Colour = tuple[float, float, float]

# Above this sigma (pixels) a blur runs at a lower resolution: a Gaussian of sigma s at
# 1/f scale, upsampled, matches one of sigma s*f at full scale to within a grey level,
# at a fraction of the cost.
_FULL_RESOLUTION_SIGMA = 6.0
_LOW_RESOLUTION_SIGMA = 3.0
_TINT_WEIGHT = 0.35
_OUTLINE_SMOOTHING = 0.6  # sigma (pixels) that anti-aliases the outline's stair steps
_GRID_BACKDROP = 0.08  # grey level of the gutters and label strips
_LABEL_GREY = 0.92


@lru_cache(maxsize=32)
def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    size = 2 * math.ceil(3 * sigma) + 1
    return kornia.filters.get_gaussian_kernel1d(size, sigma, device=device, dtype=dtype)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``BxCxHxW`` with standard deviation ``sigma`` in pixels.

    Borders replicate the edge pixels. Large sigmas are computed at a lower resolution
    (area downsampling, a smaller Gaussian, bilinear upsampling), so the cost does not
    grow with sigma.
    """
    if sigma <= 0:
        return images
    height, width = images.shape[-2:]
    factor = 1 if sigma < _FULL_RESOLUTION_SIGMA else int(sigma // _LOW_RESOLUTION_SIGMA)
    small = images
    if factor > 1:
        size = (max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor)))
        small = F.interpolate(images, size=size, mode="area")
    kernel = _gaussian_kernel(float(sigma / factor), images.device, images.dtype)
    blurred = kornia.filters.filter2d_separable(small, kernel, kernel, border_type="replicate")
    if factor > 1:
        blurred = F.interpolate(blurred, size=(height, width), mode="bilinear", align_corners=False)
    return blurred


def soft_mask(saliency: Tensor, threshold: float | None = None, feather: float = 0.0) -> Tensor:
    """The compositing mask of a ``Bx1xHxW`` saliency map.

    With ``threshold`` the map is cut to 0/1 (object where ``saliency >= threshold``);
    without it the map stays soft. ``feather`` (Gaussian sigma in pixels) then softens the
    edges. Returns ``Bx1xHxW`` in [0, 1].
    """
    mask = saliency.clamp(0, 1)
    if threshold is not None:
        mask = (mask >= threshold).to(saliency.dtype)
    return gaussian_blur(mask, feather)


def grey(mask: Tensor) -> Tensor:
    """A ``Bx1xHxW`` map as a ``Bx3xHxW`` grey picture."""
    return mask.expand(-1, 3, -1, -1)


def alpha(image: Tensor, mask: Tensor) -> Tensor:
    """RGBA: the ``Bx3xHxW`` picture with the ``Bx1xHxW`` mask as alpha, ``Bx4xHxW``."""
    return torch.cat([image, mask], dim=1)


def replace_background(image: Tensor, mask: Tensor, background: Tensor) -> Tensor:
    """The object over a new background (``Bx3xHxW``, or ``1x3x1x1`` for a colour)."""
    return torch.lerp(background.to(image.dtype), image, mask)


def blur_background(image: Tensor, mask: Tensor, strength: float) -> Tensor:
    """The object sharp over its own background blurred with sigma ``strength`` pixels.

    The blur averages background pixels only (a mask-weighted normalised blur), so the
    object's colours do not bleed into a halo around it.
    """
    weight = 1 - mask
    blurred = gaussian_blur(torch.cat([image * weight, weight], dim=1), strength)
    background = (blurred[:, :3] / blurred[:, 3:].clamp_min(1e-4)).clamp(0, 1)
    return torch.lerp(background, image, mask)


@lru_cache(maxsize=16)
def _disc(radius: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    distance = offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2
    return (distance <= radius * radius + radius).to(dtype)


def outline(mask: Tensor, width: int) -> Tensor:
    """The band of ``width`` pixels along the border of the ``mask >= 0.5`` region.

    Half of the band lies outside the object, half inside (dilation minus erosion with
    discs); its edges are anti-aliased. Returns ``Bx1xHxW`` in [0, 1].
    """
    hard = (mask >= 0.5).to(mask.dtype)
    if width <= 0:
        return torch.zeros_like(hard)
    outer, inner = (width + 1) // 2, width // 2
    grown = kornia.morphology.dilation(hard, _disc(outer, hard.device, hard.dtype))
    shrunk = hard
    if inner > 0:
        shrunk = kornia.morphology.erosion(hard, _disc(inner, hard.device, hard.dtype))
    return gaussian_blur(grown - shrunk, _OUTLINE_SMOOTHING)


@lru_cache(maxsize=16)
def _colour_tensor(colour: Colour, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.tensor(colour, device=device, dtype=dtype).view(1, 3, 1, 1)


def highlight(
    image: Tensor,
    mask: Tensor,
    style: Literal["dim", "desaturate"] = "dim",
    dim: float = 0.35,
    tint: Colour | None = None,
    outline_width: int = 0,
    outline_colour: Colour = (1.0, 1.0, 1.0),
) -> Tensor:
    """Draw the eye to the object: its background dimmed (scaled by ``dim``) or turned grey.

    ``tint`` mixes a colour into the object; ``outline_width`` > 0 draws an outline of
    that many pixels in ``outline_colour`` along the object's border. Returns ``Bx3xHxW``.
    """
    if style == "dim":
        background = image * dim
    elif style == "desaturate":
        background = grey(kornia.color.rgb_to_grayscale(image))
    else:
        raise ValueError(f"style must be 'dim' or 'desaturate', got {style!r}")
    foreground = image
    if tint is not None:
        foreground = torch.lerp(
            image, _colour_tensor(tint, image.device, image.dtype), _TINT_WEIGHT
        )
    result = torch.lerp(background, foreground, mask)
    if outline_width > 0:
        colour = _colour_tensor(outline_colour, image.device, image.dtype).expand_as(result)
        result = torch.lerp(result, colour, outline(mask, outline_width))
    return result


def cover(pictures: Tensor, height: int, width: int) -> Tensor:
    """Scale ``Bx3xhxw`` pictures to cover ``height`` x ``width`` (aspect kept), centre-cropped."""
    source_height, source_width = pictures.shape[-2:]
    if (source_height, source_width) == (height, width):
        return pictures
    scale = max(height / source_height, width / source_width)
    size = (max(height, round(source_height * scale)), max(width, round(source_width * scale)))
    scaled = F.interpolate(
        pictures, size=size, mode="bilinear", antialias=True, align_corners=False
    )
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return scaled[..., top : top + height, left : left + width].clamp(0, 1)


def label_height(panel_width: int) -> int:
    """Height in pixels of a grid label strip over a panel ``panel_width`` wide (even)."""
    return 2 * round(_font_size(panel_width) * 0.8)


def _font_size(panel_width: int) -> int:
    return min(36, max(12, round(panel_width / 24)))


@lru_cache(maxsize=64)
def _label_strip(text: str, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The label ``text`` on a dark strip, ``3 x label_height(width) x width``."""
    height = label_height(width)
    backdrop = round(255 * _GRID_BACKDROP)
    strip = Image.new("L", (width, height), backdrop)
    font = ImageFont.load_default(size=_font_size(width))
    draw = ImageDraw.Draw(strip)
    draw.text(
        (height // 2, height / 2), text, fill=round(255 * _LABEL_GREY), font=font, anchor="lm"
    )
    pixels = torch.from_numpy(np.asarray(strip, dtype=np.float32) / 255)
    return pixels.to(device=device, dtype=dtype).expand(3, -1, -1)


def grid(panels: list[Tensor], labels: list[str], columns: int = 2, gutter: int = 2) -> Tensor:
    """A labelled mosaic of equally sized ``Bx3xHxW`` panels, ``columns`` per row.

    Each panel gets a dark strip with its label above it; ``gutter`` pixels separate
    the columns. Returns ``Bx3xH'xW'`` with ``H' = rows * (label_height(W) + H)`` and
    ``W' = columns * W + (columns - 1) * gutter`` (even when H, W and gutter are).
    """
    if len(panels) != len(labels) or not panels:
        raise ValueError("grid needs one label per panel and at least one panel")
    first = panels[0]
    batch, _, height, width = first.shape
    rows = math.ceil(len(panels) / columns)
    strip_height = label_height(width)
    cell_height = strip_height + height
    canvas = first.new_full(
        (batch, 3, rows * cell_height, columns * width + (columns - 1) * gutter), _GRID_BACKDROP
    )
    for position, (panel, text) in enumerate(zip(panels, labels, strict=True)):
        top = (position // columns) * cell_height
        left = (position % columns) * (width + gutter)
        canvas[:, :, top : top + strip_height, left : left + width] = _label_strip(
            text, width, first.device, first.dtype
        )
        canvas[:, :, top + strip_height : top + cell_height, left : left + width] = panel
    return canvas
