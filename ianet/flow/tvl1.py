"""TV-L1 optical flow: a weight-free, coarse-to-fine variational method in torch.

The energy is the L1 norm of the linearised brightness-constancy residual plus the total
variation of each flow component (Zach, Pock and Bischof 2007). It is minimised as in Sánchez
Pérez, Meinhardt-Llopis and Facciolo ("TV-L1 Optical Flow Estimation", IPOL 2013): a
Gaussian pyramid, several warps per level, and per iteration a thresholding step on the data
term and a projected dual step on the total variation. As Wedel et al. (2009) advise, a median
filter cleans the flow after every warp and each image loses part of its smooth structure
before matching; each image is also scaled to zero mean and a fixed contrast, so that a global
change of brightness (gain and offset) does not change what is compared.

Everything is vectorised over the batch and the two flow components, the iteration counts are
fixed (no convergence test, no host synchronisation), and an iteration is under twenty tensor
operations; ``TVL1Options(compile=True)`` runs it through ``torch.compile`` (worth it on a GPU,
not on a CPU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from ianet.transforms import resize_flow

_MIN_LEVEL_SIZE = 16  # the coarsest pyramid level keeps at least this many pixels per side
_EPSILON = 1e-6


@dataclass(frozen=True)
class TVL1Options:
    """Parameters of TV-L1 (intensities on a 0..255 scale, lengths in pixels).

    Attributes:
        levels: pyramid levels, each half the size of the one below (fewer on small images:
            the coarsest keeps at least 16 pixels a side).
        finest_level: the level the solver stops at: 0 is full resolution, 1 stops at half
            resolution and upsamples the flow (4x less work at the finest level).
        warps: warps per level (the second image is re-warped with the current flow each time).
        finest_warps: warps at the finest level, if not ``warps`` (0 = as ``warps``).
        iterations: solver iterations per warp.
        data_weight: lambda, the weight of the data term against the total variation.
        theta: coupling between the data and smoothness sub-problems.
        tau: dual step (stable up to 0.25).
        median: size of the median filter applied to the flow after each warp: 0 (none), 3
            (a fast exact 3x3 median) or an odd size (``kornia.filters.median_blur``).
        texture: share of the smooth structure (the Gaussian blur) removed from each pyramid
            level before matching (0 = grey levels; 1 = the texture part only).
        texture_sigma: standard deviation of that blur.
        contrast: standard deviation each image is scaled to after that, at zero mean (0 = no
            scaling), so that a global change of brightness gain and offset changes nothing.
        compile: run the solver iteration through ``torch.compile``.
    """

    levels: int = 5
    finest_level: int = 0
    warps: int = 4
    finest_warps: int = 0
    iterations: int = 10
    data_weight: float = 0.3
    theta: float = 0.3
    tau: float = 0.25
    median: int = 3
    texture: float = 0.5
    texture_sigma: float = 1.5
    contrast: float = 20.0
    compile: bool = False

    def __post_init__(self) -> None:
        counts = {"levels": 1, "finest_level": 0, "warps": 1, "finest_warps": 0, "iterations": 1}
        for name, least in counts.items():
            if not isinstance(getattr(self, name), int) or getattr(self, name) < least:
                raise ValueError(f"TV-L1 {name}: expected an integer >= {least}")
        if self.median != 0 and (self.median < 3 or self.median % 2 == 0):
            raise ValueError(f"TV-L1 median: expected 0 or an odd size >= 3, got {self.median}")
        if not 0 < self.tau <= 0.25:
            raise ValueError(f"TV-L1 tau: expected within (0, 0.25], got {self.tau}")
        if not 0 <= self.texture <= 1:
            raise ValueError(f"TV-L1 texture: expected within [0, 1], got {self.texture}")
        for name in ("data_weight", "theta", "texture_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TV-L1 {name}: expected > 0, got {getattr(self, name)}")


PRESETS: dict[str, TVL1Options] = {
    "fast": TVL1Options(iterations=8, finest_warps=2),
    "balanced": TVL1Options(),
    "accurate": TVL1Options(levels=6, warps=5),
}


def tvl1_options(preset: str = "balanced", **overrides: object) -> TVL1Options:
    """The options of a preset (``fast``, ``balanced``, ``accurate``) with some fields replaced."""
    if preset not in PRESETS:
        raise ValueError(f"unknown TV-L1 preset {preset!r}; choose one of {', '.join(PRESETS)}")
    names = {field.name for field in dataclasses.fields(TVL1Options)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        known = ", ".join(sorted(names))
        raise ValueError(f"unknown TV-L1 option(s) {', '.join(unknown)}; known: {known}")
    return dataclasses.replace(PRESETS[preset], **overrides)


def grey(images: Tensor) -> Tensor:
    """Grey levels (0..255) of BxHxWx3 uint8 RGB images, as Bx1xHxW float32."""
    return kornia.color.rgb_to_grayscale(images.permute(0, 3, 1, 2).float())


def texture_part(images: Tensor, options: TVL1Options) -> Tensor:
    """Bx1xHxW grey images less ``options.texture`` of their blur, then each scaled to zero
    mean and a standard deviation of ``options.contrast``."""
    if options.texture > 0:
        sigma = options.texture_sigma
        side = 2 * max(1, round(3 * sigma)) + 1
        structure = kornia.filters.gaussian_blur2d(
            images, (side, side), (sigma, sigma), border_type="replicate"
        )
        images = images - options.texture * structure
    if options.contrast > 0:
        std, mean = torch.std_mean(images.flatten(1), dim=1)
        images = (images - mean.view(-1, 1, 1, 1)) * (options.contrast / (std + _EPSILON)).view(
            -1, 1, 1, 1
        )
    return images


def _solver_step(
    u: Tensor,
    p: Tensor,
    image_gradient: Tensor,
    inverse_gradient_sq: Tensor,
    residual_at_zero: Tensor,
    threshold: float,
    theta: float,
    tau_over_theta: float,
) -> Tensor:
    """One iteration of the TV-L1 scheme: a thresholding step on the data term, then a
    projected step on the dual of the total variation of each flow component.

    Args:
        u: Bx2xHxW flow.
        p: Bx2x2xHxW dual variable (x part, y part; each for both flow components); updated
            in place. Its x part is zero on the last column, its y part on the last row.
        image_gradient: Bx2xHxW gradient of the warped second image.
        inverse_gradient_sq: Bx1xHxW minus the inverse of its squared norm.
        residual_at_zero: Bx1xHxW linearised residual at u = 0.
        threshold: lambda * theta.

    Returns:
        The new Bx2xHxW flow.
    """
    residual = torch.addcmul(residual_at_zero, image_gradient[:, :1], u[:, :1])
    residual = residual.addcmul_(image_gradient[:, 1:], u[:, 1:])
    step = (residual * inverse_gradient_sq).clamp_(-threshold, threshold)
    u = torch.addcmul(u, step, image_gradient)
    divergence = p[:, 0] + p[:, 1]
    divergence[..., :, 1:] -= p[:, 0, ..., :, :-1]
    divergence[..., 1:, :] -= p[:, 1, ..., :-1, :]
    u = u.add_(divergence, alpha=theta)
    p[:, 0, ..., :, :-1].add_(u[..., :, 1:], alpha=tau_over_theta).sub_(
        u[..., :, :-1], alpha=tau_over_theta
    )
    p[:, 1, ..., :-1, :].add_(u[..., 1:, :], alpha=tau_over_theta).sub_(
        u[..., :-1, :], alpha=tau_over_theta
    )
    norm_sq = torch.addcmul(p[:, 0] * p[:, 0], p[:, 1], p[:, 1])
    p.mul_(norm_sq.clamp_(min=1).rsqrt_().unsqueeze(1))
    return u


@cache
def _compiled_solver_step():  # type: ignore[no-untyped-def]
    return torch.compile(_solver_step, dynamic=True)


def _median3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def median_filter3(field: Tensor) -> Tensor:
    """Exact 3x3 median of ...xHxW fields (replicated borders), from sorted columns of three.

    The median of nine equals the median of (the largest column minimum, the median of the
    column medians, the smallest column maximum); a few min/max passes, no sorting.
    """
    padded = F.pad(field, (1, 1, 1, 1), mode="replicate")
    top, middle, bottom = padded[..., :-2, :], padded[..., 1:-1, :], padded[..., 2:, :]
    low, high = torch.minimum(top, middle), torch.maximum(top, middle)
    middle, high = torch.minimum(high, bottom), torch.maximum(high, bottom)
    low, middle = torch.minimum(low, middle), torch.maximum(low, middle)
    lows = torch.maximum(torch.maximum(low[..., :-2], low[..., 1:-1]), low[..., 2:])
    highs = torch.minimum(torch.minimum(high[..., :-2], high[..., 1:-1]), high[..., 2:])
    middles = _median3(middle[..., :-2], middle[..., 1:-1], middle[..., 2:])
    return _median3(lows, middles, highs)


def _pixel_grid(height: int, width: int, device: torch.device) -> Tensor:
    """1x2xHxW pixel coordinates (x then y)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack((xs, ys)).unsqueeze(0)


def warp(images: Tensor, flow: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Sample images at (pixel + flow), bilinearly.

    Args:
        images: BxCxHxW; flow: Bx2xHxW in pixels; grid: 1x2xHxW from ``_pixel_grid``.

    Returns:
        The BxCxHxW warped images (border values outside) and a Bx1xHxW float mask that is 1
        where the sampled point lies inside the image.
    """
    height, width = images.shape[-2:]
    coords = grid + flow
    x = coords[:, 0] * (2 / max(width - 1, 1)) - 1
    y = coords[:, 1] * (2 / max(height - 1, 1)) - 1
    normalised = torch.stack((x, y), dim=-1)
    warped = F.grid_sample(images, normalised, padding_mode="border", align_corners=True)
    inside = ((x.abs() <= 1) & (y.abs() <= 1)).unsqueeze(1).to(images.dtype)
    return warped, inside


def _pyramid(image: Tensor, levels: int) -> list[Tensor]:
    """Gaussian pyramid, finest first, with at most ``levels`` levels of at least 16 pixels."""
    height, width = image.shape[-2:]
    count = 1
    while count < levels and min(height, width) >> count >= _MIN_LEVEL_SIZE:
        count += 1
    return kornia.geometry.transform.build_pyramid(image, count, border_type="replicate")


def _refine(
    first: Tensor, second: Tensor, flow: Tensor, options: TVL1Options, warps: int
) -> Tensor:
    """``warps`` warps, each with its solver iterations, at one pyramid level.

    Args:
        first, second: Bx1xHxW images; flow: Bx2xHxW initial flow from first to second.

    Returns:
        The refined Bx2xHxW flow.
    """
    step = _compiled_solver_step() if options.compile else _solver_step
    height, width = first.shape[-2:]
    grid = _pixel_grid(height, width, first.device)
    second_and_gradient = torch.cat(
        (second, kornia.filters.spatial_gradient(second, mode="diff", normalized=False)[:, 0]),
        dim=1,
    )
    p = flow.new_zeros(flow.shape[0], 2, 2, height, width)
    threshold = options.data_weight * options.theta
    tau_over_theta = options.tau / options.theta
    for _ in range(warps):
        warped, inside = warp(second_and_gradient, flow, grid)
        image_gradient = warped[:, 1:] * inside
        residual_at_zero = (warped[:, :1] - first) * inside - (image_gradient * flow).sum(
            dim=1, keepdim=True
        )
        inverse_gradient_sq = -1 / (image_gradient.square().sum(dim=1, keepdim=True) + _EPSILON)
        for _ in range(options.iterations):
            flow = step(
                flow,
                p,
                image_gradient,
                inverse_gradient_sq,
                residual_at_zero,
                threshold,
                options.theta,
                tau_over_theta,
            )
        if options.median == 3:
            flow = median_filter3(flow)
        elif options.median > 1:
            flow = kornia.filters.median_blur(flow, options.median)
    return flow


def tvl1_flow(
    first: Tensor, second: Tensor, options: TVL1Options, init: Tensor | None = None
) -> Tensor:
    """TV-L1 flow from ``first`` to ``second``.

    Args:
        first, second: Bx1xHxW grey images (0..255).
        options: the solver's parameters.
        init: optional Bx2xHxW flow to start from (a warm start), in pixels.

    Returns:
        Bx2xHxW flow in pixels (x then y), on first's grid.
    """
    batch, _, height, width = first.shape
    pyramid = _pyramid(torch.cat((first, second)), max(options.levels, options.finest_level + 1))
    finest = min(options.finest_level, len(pyramid) - 1)
    if init is None:
        flow = first.new_zeros(batch, 2, *pyramid[-1].shape[-2:])
    else:
        flow = init.to(first.dtype)
    for level in range(len(pyramid) - 1, finest - 1, -1):
        images = texture_part(pyramid[level], options)
        flow = resize_flow(flow, images.shape[-2:])
        warps = options.finest_warps if level == finest and options.finest_warps else options.warps
        flow = _refine(images[:batch], images[batch:], flow, options, warps)
    return resize_flow(flow, (height, width))


def tvl1(prev: Tensor, next: Tensor, options: TVL1Options, init: Tensor | None = None) -> Tensor:
    """TV-L1 flow between uint8 RGB images.

    Args:
        prev, next: BxHxWx3 uint8 RGB on one device.
        options: see ``TVL1Options`` / ``tvl1_options``.
        init: optional Bx2xHxW warm-start flow.

    Returns:
        Bx2xHxW float32 flow in pixels from prev to next, on prev's grid.
    """
    return tvl1_flow(grey(prev), grey(next), options, init)
