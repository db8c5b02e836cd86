"""Compositing: a frame's saliency map turned into the picture the user sees, at any size.

Two scales, so that a 1080p frame costs little more than a small one:

- At the map's (reduced) resolution, in float on torch (any device): the soft mask
  (threshold, feather), the blurred background (a mask-weighted Gaussian of the picture
  reduced once), the outline. Maps and masks are ``Bx1xhxw`` in [0, 1]; pictures
  ``Bx3xhxw`` in [0, 1].
- At the frame's full resolution, in uint8 only: the mask is rounded to 8 bits at its
  own size and upsampled once in uint8 (``upsample_mask``), pictures are scaled in uint8
  (``cover``) and combined by ``blend`` and ``highlight``, which run PIL's C loops on the
  CPU (several times faster there than torch's element-wise operations) and torch on
  other devices. Pictures are ``HxWx3`` uint8 tensors, masks ``HxW`` uint8.

Colours are ``(r, g, b)`` tuples in [0, 1].
"""

from __future__ import annotations

import math
from functools import lru_cache

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ianet.transforms import resize_uint8

Colour = tuple[float, float, float]

# Above this sigma (pixels) a blur runs at a lower resolution: a Gaussian of sigma s at
# 1/f scale, upsampled, matches one of sigma s*f at full scale to within a grey level,
# at a fraction of the cost.
_FULL_RESOLUTION_SIGMA = 6.0
_LOW_RESOLUTION_SIGMA = 3.0
_OUTLINE_SMOOTHING = 0.6  # sigma (pixels) that anti-aliases the outline's stair steps
_GRID_BACKDROP = 0.08  # grey level of the gutters and label strips
_LABEL_GREY = 0.92

# ----------------------------------------------------------------- reduced resolution, float


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
    factor = reduction(sigma)
    small = images
    if factor > 1:
        size = (max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor)))
        small = F.interpolate(images, size=size, mode="area")
    kernel = _gaussian_kernel(float(sigma / factor), images.device, images.dtype)
    blurred = kornia.filters.filter2d_separable(small, kernel, kernel, border_type="replicate")
    if factor > 1:
        blurred = F.interpolate(blurred, size=(height, width), mode="bilinear", align_corners=False)
    return blurred


def reduction(sigma: float) -> int:
    """The factor a picture is reduced by before a Gaussian blur of ``sigma`` pixels."""
    return 1 if sigma < _FULL_RESOLUTION_SIGMA else int(sigma // _LOW_RESOLUTION_SIGMA)


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


def background_blur(pictures: Tensor, masks: Tensor, sigma: float) -> Tensor:
    """The background of ``Bx3xhxw`` pictures blurred with ``sigma`` pixels from the
    background's own pixels (a normalised blur, ``masks`` ``Bx1xhxw``).

    A pixel next to the object counts as the object's: at a reduced resolution, border
    pixels mix the object's colours with the background's, and leaving them out keeps
    those colours from bleeding into a halo around the object. Returns ``Bx3xhxw``.
    """
    near_object = F.max_pool2d(masks, kernel_size=3, stride=1, padding=1)
    weight = 1 - near_object
    blurred = gaussian_blur(torch.cat([pictures * weight, weight], dim=1), sigma)
    return (blurred[:, :3] / blurred[:, 3:].clamp_min(1e-4)).clamp(0, 1)


# ------------------------------------------------------------------ full resolution, uint8


def to_uint8(pictures: Tensor) -> Tensor:
    """``BxCxhxw`` float in [0, 1] -> ``BxhxwxC`` uint8 (contiguous)."""
    pictures = pictures.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return pictures.permute(0, 2, 3, 1).contiguous()


def upsample_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """A ``hxw`` (or ``...x1xhxw``) mask in [0, 1] as an ``HxW`` uint8 image at ``size``.

    Rounded to 8 bits at its own size, then resized in uint8 (antialiased bilinear): within
    one grey level of ``ianet.transforms.map_to_uint8`` at a third of its cost, as no float
    copy of the full size is made.
    """
    small = mask.reshape(1, 1, *mask.shape[-2:]).clamp(0, 1).mul(255).add_(0.5).to(torch.uint8)
    if tuple(small.shape[-2:]) == tuple(size):
        return small[0, 0]
    return TF.resize(small, list(size), antialias=True)[0, 0]


def _pil(picture: Tensor) -> Image.Image:
    """A CPU uint8 ``HxWx3`` or ``HxW`` tensor as a PIL image."""
    return Image.fromarray(picture.contiguous().numpy())


def _tensor(image: Image.Image) -> Tensor:
    return torch.from_numpy(np.array(image))


def blend(top: Tensor, bottom: Tensor, mask: Tensor) -> Tensor:
    """``top`` where ``mask`` is 255, ``bottom`` where it is 0, mixed in between.

    ``top`` and ``bottom`` ``HxWx3`` uint8, ``mask`` ``HxW`` uint8; returns ``HxWx3`` uint8.
    """
    if top.device.type == "cpu":
        return _tensor(Image.composite(_pil(top), _pil(bottom), _pil(mask)))
    return torch.lerp(bottom.float(), top.float(), _weight(mask)).round_().to(torch.uint8)


def cover(picture: Tensor, height: int, width: int) -> Tensor:
    """An ``hxwx3`` uint8 picture scaled to cover ``height`` x ``width`` (aspect kept,
    antialiased, in uint8), centre-cropped: ``HxWx3`` uint8."""
    source_height, source_width = picture.shape[:2]
    if (source_height, source_width) == (height, width):
        return picture
    scale = max(height / source_height, width / source_width)
    size = (max(height, round(source_height * scale)), max(width, round(source_width * scale)))
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    scaled = resize_uint8(picture, size)
    return scaled[top : top + height, left : left + width].contiguous()


def _rgb(colour: Colour) -> tuple[int, int, int]:
    red, green, blue = (round(255 * c) for c in colour)
    return red, green, blue


@lru_cache(maxsize=16)
def _scale_table(factor: float) -> list[int]:
    return [round(value * factor) for value in range(256)] * 3


def highlight(
    picture: Tensor,
    mask: Tensor,
    ring: Tensor | None,
    *,
    dim: float | None,
    tint: Colour | None,
    tint_weight: float,
    outline_colour: Colour,
) -> Tensor:
    """The object in ``picture`` highlighted against its background.

    ``picture`` ``HxWx3`` uint8; ``mask`` (the object) and ``ring`` (the outline, or None)
    ``HxW`` uint8. The background is scaled by ``dim`` (grey, ITU-R 601 luma, when ``dim``
    is None), the object mixed with ``tint`` by ``tint_weight`` (none when None), then the
    outline drawn in ``outline_colour``. On the CPU one chain of PIL operations, the outline
    only within its bounding box; elsewhere torch, colours broadcast rather than drawn as
    pictures. Returns ``HxWx3`` uint8.
    """
    if picture.device.type == "cpu":
        return _highlight_pil(picture, mask, ring, dim, tint, tint_weight, outline_colour)
    return _highlight_torch(picture, mask, ring, dim, tint, tint_weight, outline_colour)


def _highlight_pil(
    picture: Tensor,
    mask: Tensor,
    ring: Tensor | None,
    dim: float | None,
    tint: Colour | None,
    tint_weight: float,
    outline_colour: Colour,
) -> Tensor:
    image = _pil(picture)
    background = (
        image.convert("L").convert("RGB") if dim is None else image.point(_scale_table(dim))
    )
    foreground = image
    if tint is not None:
        foreground = Image.blend(image, Image.new("RGB", image.size, _rgb(tint)), tint_weight)
    result = Image.composite(foreground, background, _pil(mask))
    if ring is not None:
        ring_image = _pil(ring)
        box = ring_image.getbbox()
        if box is not None:
            result.paste(_rgb(outline_colour), box, ring_image.crop(box))
    return _tensor(result)


def _highlight_torch(
    picture: Tensor,
    mask: Tensor,
    ring: Tensor | None,
    dim: float | None,
    tint: Colour | None,
    tint_weight: float,
    outline_colour: Colour,
) -> Tensor:
    """``highlight`` in torch on any device; rounded to whole grey levels where the PIL
    chain has uint8 pictures."""
    pixels = picture.float()
    if dim is None:
        grey = kornia.color.rgb_to_grayscale(pixels.permute(2, 0, 1)).permute(1, 2, 0)
        background = grey.round().expand_as(pixels)
    else:
        background = (pixels * dim).round()
    foreground = pixels
    if tint is not None:
        foreground = torch.lerp(pixels, _colour(tint, picture.device), tint_weight).round()
    result = torch.lerp(background, foreground, _weight(mask)).round()
    if ring is not None:
        result = torch.lerp(result, _colour(outline_colour, picture.device), _weight(ring))
    return result.round_().to(torch.uint8)


def _colour(colour: Colour, device: torch.device) -> Tensor:
    """A colour as a float 3-vector in [0, 255] (broadcasts over ``HxWx3``)."""
    return torch.tensor(_rgb(colour), dtype=torch.float32, device=device)


def _weight(mask: Tensor) -> Tensor:
    """An ``HxW`` uint8 mask as ``HxWx1`` float weights in [0, 1]."""
    return mask.unsqueeze(-1).float().div_(255)


def solid(colour: Colour, height: int, width: int, device: torch.device) -> Tensor:
    """An ``HxWx3`` uint8 picture of one colour."""
    value = torch.tensor(_rgb(colour), dtype=torch.uint8, device=device)
    return value.expand(height, width, 3).contiguous()


def grey_picture(mask: Tensor) -> Tensor:
    """An ``HxW`` uint8 mask as an ``HxWx3`` grey picture."""
    return mask[..., None].expand(-1, -1, 3).contiguous()


def label_height(panel_width: int) -> int:
    """Height in pixels of a grid label strip over a panel ``panel_width`` wide (even)."""
    return 2 * round(_font_size(panel_width) * 0.8)


def _font_size(panel_width: int) -> int:
    return min(36, max(12, round(panel_width / 24)))


@lru_cache(maxsize=64)
def _label_strip(text: str, width: int, device: torch.device) -> Tensor:
    """The label ``text`` on a dark strip, ``label_height(width) x width x 3`` uint8."""
    height = label_height(width)
    strip = Image.new("L", (width, height), round(255 * _GRID_BACKDROP))
    font = ImageFont.load_default(size=_font_size(width))
    draw = ImageDraw.Draw(strip)
    draw.text(
        (height // 2, height / 2), text, fill=round(255 * _LABEL_GREY), font=font, anchor="lm"
    )
    return grey_picture(torch.from_numpy(np.asarray(strip).copy())).to(device)


def grid(panels: list[Tensor], labels: list[str], columns: int = 2, gutter: int = 2) -> Tensor:
    """A labelled mosaic of equally sized ``HxWx3`` uint8 panels, ``columns`` per row.

    Each panel gets a dark strip with its label above it; ``gutter`` pixels separate
    the columns. Returns ``H'xW'x3`` with ``H' = rows * (label_height(W) + H)`` and
    ``W' = columns * W + (columns - 1) * gutter`` (even when H, W and gutter are).
    """
    if len(panels) != len(labels) or not panels:
        raise ValueError("grid needs one label per panel and at least one panel")
    height, width = panels[0].shape[:2]
    rows = math.ceil(len(panels) / columns)
    strip = label_height(width)
    cell = strip + height
    canvas = panels[0].new_full(
        (rows * cell, columns * width + (columns - 1) * gutter, 3), round(255 * _GRID_BACKDROP)
    )
    for position, (panel, text) in enumerate(zip(panels, labels, strict=True)):
        top = (position // columns) * cell
        left = (position % columns) * (width + gutter)
        canvas[top : top + strip, left : left + width] = _label_strip(text, width, panel.device)
        canvas[top + strip : top + cell, left : left + width] = panel
    return canvas
