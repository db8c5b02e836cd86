"""The ``saliency`` stage: IANet's saliency map of each frame, one model call per batch.

It wraps ``ianet.Predictor``: frames (and their flow images, from the ``flow`` stage) of a
batch go through the model together, in runs of equally sized frames with or without a
flow image alike (a stream's first frame has none: the model then sees zero flow). Each
frame gains ``saliency``, an HxW float32 map in [0, 1] on the pipeline's device, at the
frame's own size; with ``threshold`` the map is binarised (0 or 1).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from ianet import Predictor
from ianet.checkpoints import read_checkpoint
from ianet_stream.frame import Frame
from ianet_stream.stage import Context, Stage

_MIN_SIZE = 64
DEFAULT_CHECKPOINT = "builtin:ianet-lite-synthetic"
PAPER_SIZE = 512


@dataclass
class SaliencyOptions:
    """Options of the ``saliency`` stage."""

    checkpoint: str = field(
        default=DEFAULT_CHECKPOINT,
        metadata={
            "help": "the model: builtin:NAME (a shipped checkpoint), a checkpoint file "
            "(ours, or a published IANet .pth)"
        },
    )
    size: int | None = field(
        default=None,
        metadata={
            "help": "the model's input size (frames resized to size x size); none: the size "
            f"the checkpoint was trained at, else {PAPER_SIZE}"
        },
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = field(
        default="auto",
        metadata={
            "help": "weights' precision; auto: bf16 where the device is fast at it, else fp32"
        },
    )
    threshold: float | None = field(
        default=None,
        metadata={"help": "binarise the map at this value (0-1); none keeps it continuous"},
    )

    def __post_init__(self) -> None:
        if not self.checkpoint.strip():
            raise ValueError("checkpoint: expected builtin:NAME or a checkpoint file")
        if self.size is not None and self.size < _MIN_SIZE:
            raise ValueError(f"size: expected at least {_MIN_SIZE} pixels, got {self.size}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold: expected a value between 0 and 1, got {self.threshold}")


class Saliency(Stage):
    """IANet saliency maps, batched across the frames the stage receives."""

    name: ClassVar[str] = "saliency"
    help: ClassVar[str] = "IANet saliency map of each frame (from the picture and its flow image)"
    Options: ClassVar[type] = SaliencyOptions
    needs_torch: ClassVar[bool] = True

    def __init__(self, options: SaliencyOptions, context: Context) -> None:
        super().__init__(options, context)
        self.device = torch.device(context.device)
        self.predictor: Predictor | None = None

    def open(self) -> None:
        checkpoint = read_checkpoint(self.options.checkpoint)
        self.predictor = Predictor(
            checkpoint,
            size=self.options.size or trained_size(checkpoint) or PAPER_SIZE,
            device=self.device,
            precision=self.options.precision,
            batch_size=self.context.batch,
        )

    def close(self) -> None:
        self.predictor = None

    def process(self, frames: list[Frame]) -> list[Frame]:
        runs = itertools.groupby(
            frames, key=lambda f: (tuple(f.image.shape), f.flow_image is not None)
        )
        for (_, has_flow), run in runs:
            group = list(run)
            images = torch.stack([torch.as_tensor(f.image) for f in group]).to(self.device)
            flow_images = None
            if has_flow:
                flow_images = torch.stack([torch.as_tensor(f.flow_image) for f in group])
                flow_images = flow_images.to(self.device)
            maps = self.predictor(images, flow_images)
            if self.options.threshold is not None:
                maps = (maps >= self.options.threshold).float()
            for i, frame in enumerate(group):
                frame.image = images[i]
                frame.saliency = maps[i]
        return frames


def trained_size(checkpoint: dict[str, Any]) -> int | None:
    """The input size a checkpoint of ours was trained at (None for reference checkpoints)."""
    config = checkpoint.get("meta", {}).get("train_config", {})
    size = config.get("size") if isinstance(config, dict) else None
    return size if isinstance(size, int) else None
