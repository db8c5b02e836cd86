"""Training augmentations that keep the picture, its ground truth and its flow image consistent.

All are off by default (the reference recipe uses none). Each draws its parameters from a
``numpy.random.Generator`` handed in by the dataset, so a sample's augmentation is a pure
function of (seed, epoch, index) whatever worker decodes it.

The flow image is colour-coded (``ianet.flow.flow_to_image``: hue = direction), so mirroring
it horizontally must also mirror the direction it encodes: a flow (u, v) becomes (-u, v),
which on the wheel maps the angle ``a = atan2(-v, -u)`` to ``atan2(-v, u) = pi - a``, i.e. the
wheel position ``t = (a / pi + 1) / 2`` in [0, 1] to ``1.5 - t`` (for t >= 0.5) or
``0.5 - t`` (for t < 0.5). ``flip_flow_image`` decodes each pixel's position and saturation
from its colour, reflects the position and encodes it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageEnhance

from ianet.flow.colour import colour_wheel


@dataclass(frozen=True)
class Augment:
    """Which augmentations to draw (all off by default).

    Attributes:
        hflip: mirror picture, GT and flow (with the flow's x direction) with probability 0.5.
        min_scale: below 1, crop a random window of ``s`` times the frame's width and height,
            ``s`` uniform in [min_scale, 1], before resizing (same window for all three).
        colour_jitter: above 0, scale brightness, contrast and saturation of the picture
            (only) by factors uniform in [1 - colour_jitter, 1 + colour_jitter].
    """

    hflip: bool = False
    min_scale: float = 1.0
    colour_jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {self.min_scale}")
        if not 0 <= self.colour_jitter < 1:
            raise ValueError(f"colour_jitter must be in [0, 1), got {self.colour_jitter}")

    @property
    def enabled(self) -> bool:
        return self.hflip or self.min_scale < 1 or self.colour_jitter > 0


def crop_box(
    width: int, height: int, min_scale: float, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """A random (left, top, right, bottom) window of ``s`` x the frame, s in [min_scale, 1]."""
    scale = rng.uniform(min_scale, 1.0)
    crop_w, crop_h = width * scale, height * scale
    left = rng.uniform(0.0, width - crop_w)
    top = rng.uniform(0.0, height - crop_h)
    return (left, top, left + crop_w, top + crop_h)


def jitter_colour(image: Image.Image, strength: float, rng: np.random.Generator) -> Image.Image:
    """Scale brightness, contrast and saturation by random factors in [1 - s, 1 + s]."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(1 - strength, 1 + strength))
    return image


def _hue(colour: np.ndarray) -> np.ndarray:
    """HSV hue in degrees [0, 360) of ...x3 colours (0 where the colour is grey)."""
    red, green, blue = np.moveaxis(colour, -1, 0)
    high, low = colour.max(axis=-1), colour.min(axis=-1)
    spread = np.maximum(high - low, 1e-12)
    hue = np.where(
        high == red,
        np.mod((green - blue) / spread, 6),
        np.where(high == green, (blue - red) / spread + 2, (red - green) / spread + 4),
    )
    return np.where(high > low, 60 * hue, 0.0)


@cache
def _wheel() -> tuple[np.ndarray, np.ndarray]:
    """The wheel (Nx3 in 0..1) and the HSV hue of its entries (increasing along the wheel)."""
    wheel = colour_wheel().numpy() / 255
    return wheel, _hue(wheel)


def _encode(position: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Wheel position (0..N-1) and saturation (0..1) -> HxWx3 uint8, as flow_to_image does."""
    wheel, _ = _wheel()
    k0 = np.floor(position).astype(np.int64)
    k1 = np.where(k0 + 1 == len(wheel), 0, k0 + 1)
    weight = (position - k0)[..., None]
    colour = (1 - weight) * wheel[k0] + weight * wheel[k1]
    colour = 1 - radius[..., None] * (1 - colour)
    return np.clip(np.floor(255 * colour), 0, 255).astype(np.uint8)


def _decode(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HxWx3 uint8 flow image -> wheel position (0..N-1) and saturation (0..1) per pixel.

    Along the wheel, HSV hue increases piecewise linearly between entries, and mixing a
    colour with white (lower saturation) keeps its hue: so the position is the hue looked
    up in the entries' hues, and the saturation comes from the lowest channel.
    """
    wheel, wheel_hue = _wheel()
    colour = image.astype(np.float64)
    high = colour.max(axis=-1, keepdims=True)
    low = (colour * (255 / np.maximum(high, 1))).min(axis=-1)
    radius = np.clip(1 - (low + 0.5) / 255, 0, 1)
    position = np.interp(_hue(colour), wheel_hue, np.arange(len(wheel), dtype=np.float64))
    return position, radius


def flip_flow_image(image: np.ndarray) -> np.ndarray:
    """Mirror a colour-coded flow image left-right, the motion's x direction included.

    Args:
        image: HxWx3 uint8, coded like ``ianet.flow.flow_to_image``.

    Returns:
        HxWx3 uint8: what ``flow_to_image`` gives for the mirrored flow (u -> -u, pixels
        mirrored), up to the 8-bit rounding of the input.
    """
    wheel, _ = _wheel()
    last = len(wheel) - 1
    position, radius = _decode(image[:, ::-1])
    turn = position / last  # (angle / pi + 1) / 2
    flipped = np.where(turn >= 0.5, 1.5 - turn, 0.5 - turn)
    return _encode(flipped * last, radius)
