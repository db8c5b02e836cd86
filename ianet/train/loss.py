"""The training loss: BCE-with-logits + IoU on each of the seven outputs (spec §7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def bce_iou_loss(logits: Tensor, target: Tensor) -> Tensor:
    """BCE-with-logits (mean over all pixels) + IoU loss (mean over the batch), as the
    reference: IoU = sum(p g) / (sum p + sum g - sum(p g)) per sample, p = sigmoid(logits).

    Args:
        logits: Bx1xHxW (any float dtype; computed in float32).
        target: Bx1xHxW in [0, 1].

    Returns:
        A scalar float32 tensor.
    """
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    probability = torch.sigmoid(logits)
    intersection = (probability * target).sum(dim=(1, 2, 3))
    union = probability.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) - intersection
    return bce + (1 - intersection / union).mean()


def deep_supervision_losses(outputs: Sequence[Tensor], target: Tensor) -> Tensor:
    """The loss of each output against the same target: a float32 tensor of len(outputs)."""
    return torch.stack([bce_iou_loss(logits, target) for logits in outputs])
