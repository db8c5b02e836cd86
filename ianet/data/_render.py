"""Pure helpers of the synthetic video generator: textures, shapes, sampling, similarity maps.

Conventions: pixel (row i, column j) has its centre at screen point (x=j, y=i); 2x3 affine
maps act on column vectors (x, y, 1); colours are float32 in [0, 255]. A shape is anything
with ``signed_distance(u, v)`` (negative inside, local units) whose region lies within the
unit disc.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

TAU = 2 * np.pi
SHAPE_SAMPLES = 1024  # angles of a shape's radial table
SHAPE_KINDS = ("ellipse", "polygon", "star", "blob")
COMPLEX_KINDS = ("ring", "holed", "spiky", "stick")


class Region(Protocol):
    """A region of the plane within the unit disc, given by its signed distance."""

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray: ...


# ----------------------------------------------------------------------------- affine maps


def similarity(centre: np.ndarray, scale: float, angle: float) -> np.ndarray:
    """The 2x3 map u -> centre + scale * R(angle) u (float64)."""
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[cos, -sin, centre[0]], [sin, cos, centre[1]]], dtype=np.float64)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 map ``outer(inner(u))``."""
    return np.concatenate(
        [outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2:] + outer[:, 2:]], 1
    )


def invert(affine: np.ndarray) -> np.ndarray:
    """The inverse of an invertible 2x3 affine map."""
    linear = np.linalg.inv(affine[:, :2])
    return np.concatenate([linear, -linear @ affine[:, 2:]], 1)


def apply(affine: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 2x3 map to points given as coordinate arrays of any (equal) shape."""
    return (
        affine[0, 0] * x + affine[0, 1] * y + affine[0, 2],
        affine[1, 0] * x + affine[1, 1] * y + affine[1, 2],
    )


def scale_of(affine: np.ndarray) -> float:
    """The scale factor of a similarity map."""
    return float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))


def displacement(visible: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Per-pixel displacement ``maps[layer](p) - p`` where ``layer = visible[p]``.

    Args:
        visible: HxW integer map of the layer seen at each pixel.
        maps: Nx2x3 float64 maps, one per layer index.

    Returns:
        2xHxW float32 displacement in pixels (x then y).
    """
    height, width = visible.shape
    offsets = maps - np.eye(2, 3)
    x = np.arange(width, dtype=np.float64)[None, :]
    y = np.arange(height, dtype=np.float64)[:, None]
    result = np.empty((2, height, width), np.float32)
    for axis in range(2):
        row = offsets[:, axis]  # Nx3
        result[axis] = (
            np.take(row[:, 0], visible) * x
            + np.take(row[:, 1], visible) * y
            + np.take(row[:, 2], visible)
        )
    return result


# ----------------------------------------------------------------------------- textures


def hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """One colour from HSV (hue in turns, the rest in [0, 1]) to RGB in [0, 255]."""
    hue = (hue % 1.0) * 6
    chroma = value * saturation
    second = chroma * (1 - abs(hue % 2 - 1))
    sector = int(hue) % 6
    order = ((0, 1, 2), (1, 0, 2), (2, 0, 1), (2, 1, 0), (1, 2, 0), (0, 2, 1))[sector]
    levels = (chroma, second, 0.0)
    rgb = np.empty(3)
    for channel, level in zip(order, levels, strict=True):
        rgb[channel] = level
    return 255 * (rgb + value - chroma)


def palette(rng: np.random.Generator, hue: float) -> np.ndarray:
    """Three related colours (3x3, rows RGB in [0, 255]) around ``hue`` (turns)."""
    colours = [
        hsv_to_rgb(hue + rng.normal(0, 0.04), rng.uniform(0.2, 0.7), rng.uniform(0.25, 0.55)),
        hsv_to_rgb(hue + rng.normal(0, 0.08), rng.uniform(0.15, 0.8), rng.uniform(0.55, 0.95)),
        hsv_to_rgb(hue + rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.9), rng.uniform(0.2, 0.95)),
    ]
    return np.stack(colours).astype(np.float32)


def noise_field(rng: np.random.Generator, height: int, width: int, beta: float, blur: float):
    """Periodic coloured noise (power spectrum 1/f^beta, Gaussian blur in px), HxW float32.

    The result has zero mean and unit standard deviation and tiles without seams. The
    spectrum of white noise is drawn directly (complex Gaussian), then shaped.
    """
    fy = np.fft.fftfreq(height).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(width).astype(np.float32)[None, :]
    frequency = np.sqrt(fx * fx + fy * fy)
    frequency[0, 0] = 1.0
    gain = frequency ** np.float32(-beta / 2) * np.exp(
        np.float32(-2 * (np.pi * blur) ** 2) * frequency**2
    )
    gain[0, 0] = 0.0
    spectrum = rng.standard_normal((2, *gain.shape), dtype=np.float32) * gain
    field = np.fft.irfft2(spectrum[0] + 1j * spectrum[1], s=(height, width)).astype(np.float32)
    return (field - field.mean()) / (field.std() + 1e-12)


def _stripes(rng: np.random.Generator, height: int, width: int, warp: np.ndarray) -> np.ndarray:
    """Periodic, slightly warped stripes in [0, 1] (HxW float32)."""
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(9, 36)
    cycles_x = round(width * np.cos(angle) / period)
    cycles_y = round(height * np.sin(angle) / period)
    if cycles_x == 0 and cycles_y == 0:
        cycles_x = 1
    x = np.arange(width, dtype=np.float32)[None, :] / width
    y = np.arange(height, dtype=np.float32)[:, None] / height
    phase = np.float32(TAU) * (cycles_x * x + cycles_y * y) + np.float32(rng.uniform(0.5, 2)) * warp
    sharpness = np.float32(rng.uniform(1, 4))
    return 0.5 + 0.5 * np.tanh(sharpness * np.sin(phase)) / np.tanh(sharpness)


def texture(rng: np.random.Generator, height: int, width: int, colours: np.ndarray) -> np.ndarray:
    """A periodic colour texture: multi-scale noise, blobs and stripes in three colours.

    Returns:
        (height + 1)x(width + 1)x3 float32 in [12, 243]; the extra row and column repeat the
        first ones so that bilinear sampling needs no wrap-around (see ``sample``).
    """
    large = noise_field(rng, height, width, beta=3.0, blur=2.0)
    blobs = noise_field(rng, height, width, beta=4.0, blur=3.0)
    fine = noise_field(rng, height, width, beta=1.5, blur=1.2)
    mix = (0.5 + 0.5 * np.tanh(np.float32(1.3) * large))[..., None]
    picture = colours[0] * (1 - mix) + colours[1] * mix
    threshold = np.float32(rng.uniform(-0.5, 1.0))
    weight = np.float32(rng.uniform(0.4, 1))
    blob_mix = np.clip((blobs - threshold) / np.float32(0.3) + np.float32(0.5), 0, 1) * weight
    blob_mix = blob_mix[..., None]
    picture = picture * (1 - blob_mix) + colours[2] * blob_mix
    if rng.random() < 0.6:
        stripes = _stripes(rng, height, width, large)[..., None]
        depth = np.float32(rng.uniform(0.1, 0.35))
        picture = picture * (1 - depth + 2 * depth * stripes)
    picture = picture * (1 + np.float32(rng.uniform(0.05, 0.2)) * np.tanh(fine))[..., None]
    picture = np.clip(picture, 12, 243, dtype=np.float32)
    return np.pad(picture, ((0, 1), (0, 1), (0, 0)), mode="wrap")


def sample(tex: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sampling of a padded periodic texture (from ``texture``) at texel points.

    Args:
        tex: (h + 1)x(w + 1)x3 float32.
        x, y: float64 arrays of one shape S (any values; the texture repeats).

    Returns:
        Sx3 float32 colours.
    """
    height, width = tex.shape[0] - 1, tex.shape[1] - 1
    x_floor, y_floor = np.floor(x), np.floor(y)
    fx = (x - x_floor).astype(np.float32)[..., None]
    fy = (y - y_floor).astype(np.float32)[..., None]
    stride = width + 1
    top_left = (y_floor.astype(np.int64) % height) * stride + x_floor.astype(np.int64) % width
    flat = tex.reshape(-1, 3)
    corners = [np.take(flat, top_left + step, axis=0) for step in (0, 1, stride, stride + 1)]
    top = corners[0] + (corners[1] - corners[0]) * fx
    bottom = corners[2] + (corners[3] - corners[2]) * fx
    return top + (bottom - top) * fy


# ----------------------------------------------------------------------------- shapes


@dataclass(frozen=True, eq=False)
class Shape:
    """A star-shaped region ``rho <= radius(theta)`` around the local origin; max radius 1.

    ``radius`` and ``normaliser`` are tables over ``SHAPE_SAMPLES + 1`` equally spaced
    angles from 0 to 2 pi (the last repeats the first), interpolated linearly: the table
    *is* the shape, so the picture and the mask agree exactly. ``normaliser`` (1 / |grad|)
    turns the radial difference into an approximate signed distance for anti-aliasing.
    """

    radius: np.ndarray
    normaliser: np.ndarray

    @classmethod
    def from_radii(cls, radii: np.ndarray) -> Shape:
        """A shape from radii at the ``SHAPE_SAMPLES`` table angles (rescaled to max 1)."""
        radii = radii / radii.max()
        slope = (np.roll(radii, -1) - np.roll(radii, 1)) * SHAPE_SAMPLES / (2 * TAU)
        normaliser = 1 / np.sqrt(1 + (slope / radii) ** 2)
        return cls(np.append(radii, radii[0]), np.append(normaliser, normaliser[0]))

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Approximate signed distance (negative inside) at local points, in local units."""
        rho = np.hypot(u, v)
        position = (np.arctan2(v, u) % TAU) * (SHAPE_SAMPLES / TAU)
        index = np.minimum(position.astype(np.int32), SHAPE_SAMPLES - 1)
        weight = position - index
        radius = self.radius[index] * (1 - weight) + self.radius[index + 1] * weight
        normaliser = self.normaliser[index] * (1 - weight) + self.normaliser[index + 1] * weight
        return (rho - radius) * normaliser


def _angles() -> np.ndarray:
    return np.arange(SHAPE_SAMPLES) * (TAU / SHAPE_SAMPLES)


def polygon_radii(vertices: np.ndarray) -> np.ndarray:
    """Radii of a star-shaped polygon (Nx2 vertices in angular order) at the table's angles."""
    theta = _angles()
    direction = np.stack([np.cos(theta), np.sin(theta)], 1)  # Kx2
    start = vertices
    edge = np.roll(vertices, -1, axis=0) - vertices  # Nx2
    # Ray t * d meets start + s * edge: t = cross(start, edge) / cross(d, edge).
    numerator = start[:, 0] * edge[:, 1] - start[:, 1] * edge[:, 0]  # N
    denominator = direction[:, :1] * edge[None, :, 1] - direction[:, 1:] * edge[None, :, 0]  # KxN
    with np.errstate(divide="ignore", invalid="ignore"):
        t = numerator[None, :] / denominator
        s = (direction[:, :1] * start[None, :, 1] - direction[:, 1:] * start[None, :, 0]) / (
            -denominator
        )
    hits = (t > 0) & (s >= -1e-9) & (s <= 1 + 1e-9)
    return np.where(hits, t, np.inf).min(axis=1)


def random_shape(rng: np.random.Generator) -> Shape:
    """An ellipse, polygon, star or blob with random proportions."""
    kind = SHAPE_KINDS[rng.integers(len(SHAPE_KINDS))]
    theta = _angles()
    if kind == "ellipse":
        ratio = rng.uniform(0.45, 1.0)
        tilt = rng.uniform(0, np.pi)
        radii = 1 / np.sqrt(np.cos(theta - tilt) ** 2 + (np.sin(theta - tilt) / ratio) ** 2)
    elif kind == "blob":
        radii = np.ones_like(theta)
        for harmonic in range(2, 6):
            radii += rng.uniform(0, 0.3 / harmonic) * np.cos(harmonic * theta + rng.uniform(0, TAU))
    else:
        if kind == "polygon":
            count = int(rng.integers(3, 9))
            lengths = rng.uniform(0.65, 1.0, count)
        else:
            points = int(rng.integers(4, 8))
            count = 2 * points
            lengths = np.tile([1.0, rng.uniform(0.45, 0.7)], points)
        # Jitter below a fifth of a step keeps every gap under pi: the origin stays inside.
        angles = (np.arange(count) + rng.uniform(-0.2, 0.2, count)) * (TAU / count)
        angles += rng.uniform(0, TAU)
        vertices = lengths[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
        radii = polygon_radii(vertices)
    return Shape.from_radii(radii)


@dataclass(frozen=True)
class Bar:
    """A rectangle along x, ``aspect`` times as wide as it is long, with corners at radius 1."""

    aspect: float

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Exact signed distance (negative inside) at local points, in local units."""
        half_length = 1 / np.hypot(1.0, self.aspect)
        qx = np.abs(u) - half_length
        qy = np.abs(v) - half_length * self.aspect
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0)


@dataclass(frozen=True)
class Capsule:
    """The points within ``half_width`` of the segment from ``start`` to ``end`` (local units).

    A thin capsule is a limb, a stick, an antenna or a handle.
    """

    start: tuple[float, float]
    end: tuple[float, float]
    half_width: float

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Exact signed distance (negative inside) at local points, in local units."""
        (x0, y0), (x1, y1) = self.start, self.end
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        px, py = u - x0, v - y0
        t = np.clip((px * dx + py * dy) / length2, 0, 1) if length2 > 0 else 0.0
        return np.hypot(px - t * dx, py - t * dy) - self.half_width


@dataclass(frozen=True)
class Ring:
    """The annulus ``inner <= rho <= 1`` (a shape with a hole in the middle)."""

    inner: float

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Exact signed distance (negative inside) at local points, in local units."""
        rho = np.hypot(u, v)
        return np.maximum(rho - 1, self.inner - rho)


@dataclass(frozen=True, eq=False)
class Placed:
    """A region moved to ``centre``, scaled by ``scale`` and turned by ``angle`` (radians)."""

    region: Region
    centre: tuple[float, float]
    scale: float
    angle: float

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        x, y = u - self.centre[0], v - self.centre[1]
        local_u = (cos * x + sin * y) / self.scale
        local_v = (-sin * x + cos * y) / self.scale
        return self.region.signed_distance(local_u, local_v) * self.scale


@dataclass(frozen=True, eq=False)
class Composite:
    """The union of ``parts`` minus the ``holes`` (min and max of signed distances).

    The picture and the mask are drawn from the same function, so they agree exactly; the
    distance is approximate near corners, which only affects anti-aliasing.
    """

    parts: tuple[Region, ...]
    holes: tuple[Region, ...] = ()

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        distance = self.parts[0].signed_distance(u, v)
        for part in self.parts[1:]:
            distance = np.minimum(distance, part.signed_distance(u, v))
        for hole in self.holes:
            distance = np.maximum(distance, -hole.signed_distance(u, v))
        return distance


def _point(radius: float, angle: float) -> tuple[float, float]:
    return radius * math.cos(angle), radius * math.sin(angle)


def complex_shape(rng: np.random.Generator) -> Region:
    """A shape with a hole or thin parts: a ring, a body with holes, a spiky body or a stick.

    Everything lies within the unit disc, as for ``random_shape``.
    """
    kind = COMPLEX_KINDS[rng.integers(len(COMPLEX_KINDS))]
    if kind == "ring":
        ring = Ring(rng.uniform(0.45, 0.8))
        if rng.random() < 0.5:
            return ring
        cut = Capsule((0.0, 0.0), _point(1.1, rng.uniform(0, TAU)), rng.uniform(0.1, 0.25))
        return Composite((ring,), (cut,))
    if kind == "holed":
        body = random_shape(rng)
        holes = []
        for _ in range(int(rng.integers(1, 4))):
            size = rng.uniform(0.1, 0.25)
            centre = _point(rng.uniform(0, 0.5 - size / 2), rng.uniform(0, TAU))
            holes.append(Placed(random_shape(rng), centre, size, rng.uniform(0, TAU)))
        return Composite((body,), tuple(holes))
    if kind == "spiky":
        size = rng.uniform(0.35, 0.6)
        parts: list[Region] = [Placed(random_shape(rng), (0.0, 0.0), size, 0.0)]
        width = rng.uniform(0.02, 0.07)
        for _ in range(int(rng.integers(2, 7))):
            angle = rng.uniform(0, TAU)
            reach = rng.uniform(size + 0.15, 1.0) - width
            parts.append(Capsule(_point(0.5 * size, angle), _point(reach, angle), width))
        return Composite(tuple(parts))
    width = rng.uniform(0.03, 0.1)
    count = int(rng.integers(1, 4))
    angle = rng.uniform(0, TAU)
    points = [_point(1 - width, angle + math.pi)]
    for _ in range(count):
        angle += rng.uniform(-1.0, 1.0)
        points.append(_point(1 - width, angle))
    # A polyline between points on the circle of radius 1 - width stays inside the unit disc.
    segments = tuple(Capsule(a, b, width) for a, b in itertools.pairwise(points))
    return Composite(segments)


def limb(length: float, half_width: float) -> Capsule:
    """A limb from its joint at the local origin along +x, normalised to reach 1."""
    reach = length + half_width
    return Capsule((0.0, 0.0), (length / reach, 0.0), half_width / reach)


# ----------------------------------------------------------------------------- more textures


def _pad(picture: np.ndarray) -> np.ndarray:
    return np.pad(picture, ((0, 1), (0, 1), (0, 0)), mode="wrap")


def flat_texture(
    rng: np.random.Generator, height: int, width: int, colours: np.ndarray
) -> np.ndarray:
    """A nearly plain periodic texture: one colour, soft shading, faint grain (padded)."""
    shading = noise_field(rng, height, width, beta=4.0, blur=4.0)
    grain = noise_field(rng, height, width, beta=1.0, blur=0.8)
    depth = np.float32(rng.uniform(0.03, 0.15))
    picture = colours[int(rng.integers(3))] * (1 + depth * np.tanh(shading))[..., None]
    picture = picture * (1 + np.float32(0.03) * np.tanh(grain))[..., None]
    return _pad(np.clip(picture, 12, 243, dtype=np.float32))


def pattern_texture(
    rng: np.random.Generator, height: int, width: int, colours: np.ndarray
) -> np.ndarray:
    """A periodic man-made pattern: checks, a grid or dots in two colours (padded)."""
    cells = int(rng.integers(3, 13))
    x = np.arange(width, dtype=np.float32)[None, :] * np.float32(cells / width)
    y = np.arange(height, dtype=np.float32)[:, None] * np.float32(cells / height)
    kind = int(rng.integers(3))
    if kind == 0:
        mix = ((np.floor(x) + np.floor(y)) % 2).astype(np.float32)
    elif kind == 1:
        line = np.float32(rng.uniform(0.05, 0.25))
        mix = (((x % 1) < line) | ((y % 1) < line)).astype(np.float32)
    else:
        radius = np.float32(rng.uniform(0.15, 0.4))
        mix = (np.hypot(x % 1 - 0.5, y % 1 - 0.5) < radius).astype(np.float32)
    mix = mix[..., None]
    picture = colours[0] * (1 - mix) + colours[1] * mix
    return _pad(np.clip(picture, 12, 243, dtype=np.float32))


def photo_texture(
    rng: np.random.Generator, photo: np.ndarray, height: int, width: int
) -> np.ndarray:
    """A periodic texture from a random part of a photograph, mirrored so it tiles seamlessly.

    A crop (random place, scale and orientation) fills a (height/2)x(width/2) quarter, which is
    mirrored into a height x width period. Grey photographs are sometimes tinted with two
    colours, colour ones get mild random channel gains. ``height`` and ``width`` must be even.

    Returns:
        (height + 1)x(width + 1)x3 float32 in [0, 255], padded as ``texture``'s.
    """
    from PIL import Image

    half_height, half_width = height // 2, width // 2
    photo_height, photo_width = photo.shape[:2]
    scale = rng.uniform(0.6, 1.6)  # screen pixels per photo pixel
    scale = max(scale, half_width / photo_width, half_height / photo_height)
    crop_width = min(photo_width, max(1, round(half_width / scale)))
    crop_height = min(photo_height, max(1, round(half_height / scale)))
    left = int(rng.integers(photo_width - crop_width + 1))
    top = int(rng.integers(photo_height - crop_height + 1))
    crop = Image.fromarray(
        np.ascontiguousarray(photo[top : top + crop_height, left : left + crop_width])
    )
    crop = crop.resize((half_width, half_height), Image.Resampling.BILINEAR)
    quarter = np.asarray(crop, dtype=np.float32)
    if rng.random() < 0.5:
        quarter = quarter[:, ::-1]
    grey = float(np.abs(quarter - quarter.mean(-1, keepdims=True)).max()) < 1
    if grey and rng.random() < 0.6:
        colours = palette(rng, rng.uniform())
        level = quarter[..., :1] / 255
        quarter = colours[0] * (1 - level) + colours[1] * level
    else:
        quarter = quarter * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    top_half = np.concatenate([quarter, quarter[:, ::-1]], 1)
    picture = np.concatenate([top_half, top_half[::-1]], 0)
    return _pad(np.clip(picture, 0, 255, dtype=np.float32))


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian over +-3 sigma (float32)."""
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / np.float32(sigma)) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(picture: np.ndarray, sigma: float, mode: str = "reflect") -> np.ndarray:
    """A separable Gaussian blur of an HxWxC float32 picture (``mode``: numpy padding)."""
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    for axis in (0, 1):
        padding = [(0, 0)] * picture.ndim
        padding[axis] = (radius, radius)
        padded = np.pad(picture, padding, mode=mode)
        length = picture.shape[axis]
        picture = sum(
            weight * padded.take(np.arange(k, k + length), axis=axis)
            for k, weight in enumerate(kernel)
        )
    return picture.astype(np.float32)


def blur_texture(tex: np.ndarray, sigma: float) -> np.ndarray:
    """A padded periodic texture blurred (it stays periodic and padded)."""
    return _pad(gaussian_blur(tex[:-1, :-1], sigma, mode="wrap"))
