"""Validation during training: the mean S-measure of the model on held-out lists."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from ianet.data.dataset import normalise_batch
from ianet.metrics import SODAccumulator
from ianet.train.precision import autocast
from ianet.transforms import min_max


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, device: torch.device, precision: str) -> float:
    """Mean S-measure (PySODMetrics' averaging over all frames) of ``model`` on ``loader``.

    Scored at the training size, on the resized GT binarised at > 128 as the benchmark
    does, with each map min-max normalised as the reference test procedure does: a score to
    pick checkpoints with, close to but not the benchmark's number (``test`` + ``eval``).
    Leaves the model in eval mode.
    """
    model.eval()
    accumulator = SODAccumulator("pysod")
    for batch in loader:
        image, flow, _ = normalise_batch(batch, device)
        with autocast(device, precision):
            logits = model(image, flow).pred
        saliency = min_max(torch.sigmoid(logits.float())[:, 0])
        accumulator.update(saliency, batch["gt"][:, 0].to(device) > 128)
    return accumulator.result()["all"].s_measure
