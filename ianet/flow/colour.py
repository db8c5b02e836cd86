"""The standard optical-flow colour wheel (Baker et al.), the image IANet's flow stream reads.

Hue encodes the direction of motion, saturation its magnitude normalised by the largest
magnitude of each image; zero motion is white. This is the coding of RAFT's
visualisation and of ``torchvision.utils.flow_to_image``, except that the magnitude is
normalised per image rather than over the whole batch. It is the model's input, not a
storage format: store raw flow as ``.npy`` or ``.flo`` (``ianet.flow.io``). The arithmetic
is done in float64, so CPU and GPU give the same bytes.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Number of hues between the six primary and secondary colours of the wheel.
_SEGMENTS = (15, 6, 4, 11, 13, 6)  # red-yellow, yellow-green, green-cyan, cyan-blue, ...
_EPSILON = 1e-5


def colour_wheel() -> Tensor:
    """The 55x3 colour wheel in [0, 255] (float32), starting at red, turning through yellow."""
    ramps = []
    # Each segment: (channel that ramps, up or down, the channel held at 255).
    plan = ((1, True, 0), (0, False, 1), (2, True, 1), (1, False, 2), (0, True, 2), (2, False, 0))
    for count, (ramp_channel, rising, full_channel) in zip(_SEGMENTS, plan, strict=True):
        ramp = torch.floor(255 * torch.arange(count, dtype=torch.float32) / count)
        segment = torch.zeros(count, 3)
        segment[:, full_channel] = 255
        segment[:, ramp_channel] = ramp if rising else 255 - ramp
        ramps.append(segment)
    return torch.cat(ramps)


def flow_to_image(flow: Tensor) -> Tensor:
    """Colour-code optical flow with the standard wheel.

    Args:
        flow: Bx2xHxW flow in pixels (x then y displacement), any float dtype and device.

    Returns:
        BxHxWx3 uint8 RGB images on the same device; each image's largest motion has
        full saturation, zero motion is white.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow_to_image expects Bx2xHxW flow, got shape {tuple(flow.shape)}")
    flow = flow.float()
    magnitude = torch.linalg.vector_norm(flow, dim=1)  # BxHxW
    peak = magnitude.flatten(1).amax(dim=1).view(-1, 1, 1)
    radius = (magnitude / (peak + _EPSILON)).unsqueeze(-1)

    wheel = colour_wheel().to(flow.device) / 255
    count = wheel.shape[0]
    # The angle does not depend on the normalisation, so it is taken from the raw flow.
    position = (torch.atan2(-flow[:, 1], -flow[:, 0]) / torch.pi + 1) * ((count - 1) / 2)
    k0 = position.long()
    k1 = torch.where(k0 + 1 == count, 0, k0 + 1)
    weight = (position - k0).unsqueeze(-1)
    colour = torch.lerp(wheel[k0], wheel[k1], weight)  # BxHxWx3
    colour = 1 - radius * (1 - colour)
    return (255 * colour).clamp_(0, 255).to(torch.uint8)
