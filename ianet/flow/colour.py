"""The standard optical-flow colour wheel (Baker et al.), the image IANet's flow stream reads.

Hue encodes the direction of motion, saturation its magnitude normalised by the largest
magnitude of each image; zero motion is white. It is ``torchvision.utils.flow_to_image``
applied to each image on its own (torchvision normalises over a whole batch, which would
make a frame's colours depend on the frames batched with it). It is the model's input, not
a storage format: store raw flow as ``.npy`` or ``.flo`` (``ianet.flow.io``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.utils import flow_to_image as torchvision_flow_to_image

# Number of hues between the six primary and secondary colours of the wheel.
_SEGMENTS = (15, 6, 4, 11, 13, 6)  # red-yellow, yellow-green, green-cyan, cyan-blue, ...


def colour_wheel() -> Tensor:
    """The wheel's 55x3 entries in [0, 255] (float32), from red through yellow: for code
    that decodes flow images (``ianet.data.augment`` mirrors them); the same entries
    ``torchvision.utils.flow_to_image`` interpolates."""
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
    images = [torchvision_flow_to_image(field.float()) for field in flow]
    return torch.stack(images).permute(0, 2, 3, 1).contiguous()
