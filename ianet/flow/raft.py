"""RAFT optical flow (torchvision's ``raft_small`` / ``raft_large``) with padding and warm start.

Weights: ``"auto"`` uses torchvision's own mechanism for the default weights (the torch hub
cache, then a download where the network allows it), a path loads a state dict saved from
torchvision's RAFT, and ``"none"`` keeps random weights (only for testing the plumbing: the
flow it gives is meaningless).

torchvision's ``RAFT.forward`` always starts from zero flow and upsamples every iteration;
``raft_flow`` drives the same modules in the same order but can start from a given flow (a
warm start for video) and upsamples only the final estimate.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models import optical_flow
from torchvision.models.optical_flow import RAFT
from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow

from ianet.errors import InputError
from ianet.torchfile import load_tensor_dict

RAFT_METHODS = {
    "raft_small": (optical_flow.raft_small, optical_flow.Raft_Small_Weights),
    "raft_large": (optical_flow.raft_large, optical_flow.Raft_Large_Weights),
}
_STRIDE = 8  # RAFT works at 1/8 of the input size
_MIN_SIZE = 128  # its correlation pyramid needs feature maps of at least 16x16


def _default_weights_state_dict(method: str) -> dict[str, Tensor]:
    """The default weights of ``method`` from torchvision's cache, downloading them if allowed."""
    weights = RAFT_METHODS[method][1].DEFAULT
    filename = os.path.basename(urlparse(weights.url).path)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        # torch.hub announces a download on stdout, which may carry video: send it to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            return weights.get_state_dict(
                progress=False, check_hash=True, map_location="cpu", weights_only=True
            )
    except OSError as error:  # URLError and HTTPError are OSErrors
        raise InputError(
            f"{method} weights: {filename} is not in torchvision's cache and could not be "
            f"downloaded ({error}); put {filename} (from {weights.url}) in {folder}/, "
            "or pass weights=PATH to a local copy"
        ) from None
    except Exception as error:  # a corrupt cached file, or a download with the wrong hash
        first_line = str(error).splitlines()[0]
        raise InputError(
            f"{folder / filename}: cannot load {method} weights ({first_line})"
        ) from None


def build_raft(method: str, weights: str | os.PathLike = "auto") -> RAFT:
    """A RAFT model in eval mode on the CPU.

    Args:
        method: ``raft_small`` or ``raft_large``.
        weights: ``"auto"`` (torchvision's default weights from its cache or a download),
            a path to a state dict, or ``"none"`` (random weights, for tests only).
    """
    if method not in RAFT_METHODS:
        raise ValueError(
            f"unknown RAFT variant {method!r}; choose one of {', '.join(RAFT_METHODS)}"
        )
    model = RAFT_METHODS[method][0](weights=None, progress=False)
    if weights != "none":
        state = (
            _default_weights_state_dict(method)
            if weights == "auto"
            else load_tensor_dict(Path(weights), f"{method} weights file")
        )
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            first_line = str(error).splitlines()[0]
            raise InputError(f"{weights}: not {method} weights ({first_line})") from None
    return model.eval().requires_grad_(False)


@cache
def _cached_raft(method: str, weights: str, device: torch.device) -> RAFT:
    return build_raft(method, weights).to(device)


def load_raft(method: str, weights: str | os.PathLike, device: torch.device) -> RAFT:
    """Like ``build_raft`` but on ``device`` and built once per (method, weights, device)."""
    return _cached_raft(method, str(weights), torch.device(device))


def _padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) replicate padding to a multiple of 8 and at least 128."""
    padded_h = max(-(-height // _STRIDE) * _STRIDE, _MIN_SIZE)
    padded_w = max(-(-width // _STRIDE) * _STRIDE, _MIN_SIZE)
    top, left = (padded_h - height) // 2, (padded_w - width) // 2
    return left, padded_w - width - left, top, padded_h - height - top


def raft_flow(
    model: RAFT, prev: Tensor, next: Tensor, iterations: int = 12, init: Tensor | None = None
) -> Tensor:
    """RAFT flow between uint8 RGB images of any size.

    Args:
        model: a torchvision RAFT on the images' device.
        prev, next: BxHxWx3 uint8 RGB.
        iterations: refinement iterations (torchvision's ``num_flow_updates``).
        init: optional Bx2xHxW flow to start from (warm start), in pixels.

    Returns:
        Bx2xHxW float32 flow in pixels from prev to next, on prev's grid.
    """
    height, width = prev.shape[1:3]
    pad = _padding(height, width)
    images = torch.cat((prev, next)).permute(0, 3, 1, 2).float() / 127.5 - 1
    images = F.pad(images, pad, mode="replicate")
    first = images[: prev.shape[0]]

    feature_maps = model.feature_encoder(images)
    # The correlation block keeps its pyramid as an attribute: use a copy of its own, so that
    # one model can serve several threads.
    correlation_block = copy.copy(model.corr_block)
    correlation_block.build_pyramid(*feature_maps.chunk(2))
    context = model.context_encoder(first)
    hidden_size = model.update_block.hidden_state_size
    hidden, context = context.split([hidden_size, context.shape[1] - hidden_size], dim=1)
    hidden, context = torch.tanh(hidden), F.relu(context)

    batch, _, low_h, low_w = context.shape
    coords0 = make_coords_grid(batch, low_h, low_w, device=str(first.device))
    coords1 = coords0.clone()
    if init is not None:
        padded_init = F.pad(init.float(), pad, mode="replicate")
        coords1 = coords1 + F.avg_pool2d(padded_init, _STRIDE) / _STRIDE
    for _ in range(iterations):
        correlation = correlation_block.index_pyramid(centroids_coords=coords1)
        hidden, delta = model.update_block(hidden, context, correlation, coords1 - coords0)
        coords1 = coords1 + delta
    mask = None if model.mask_predictor is None else model.mask_predictor(hidden)
    flow = upsample_flow(coords1 - coords0, up_mask=mask, factor=_STRIDE)
    left, top = pad[0], pad[2]
    return flow[..., top : top + height, left : left + width]
