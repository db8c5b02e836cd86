"""The ``saliency`` stage: IANet's saliency map of each frame, one model call per batch.

It wraps ``ianet.Predictor``: the frames of a batch (their pictures at the working size,
``frame.small`` from the ``flow`` stage, and their flow images) go through the model in one
forward pass, whatever their streams and sizes: each picture is resized to the model's
input size, and each map back to the working size (a stream's first frame has no flow
image: the model then sees zero flow). Each frame gains ``saliency``, an hxw float32 map in
[0, 1] on the pipeline's device at the working size (compositing and the masks sink bring
it to the picture's size); with ``threshold`` the map is binarised (0 or 1).
``context.stats["calls"]`` counts the model's forward passes.

A process keeps the predictors it has built: the clips of a folder run (a worker process
or a Ray actor handling clip after clip) load the model once, not once per clip.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from ianet import Predictor
from ianet_stream.frame import Frame
from ianet_stream.stage import Context, Stage

_MIN_SIZE = 64
_DEGRADED_SIZE = 96  # degrade never takes the model's input below this
DEFAULT_CHECKPOINT = "builtin:ianet-lite-synthetic"


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
            "the weights were trained at (160 built-in, 512 published)"
        },
    )
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = field(
        default="auto",
        metadata={
            "help": "weights' precision; auto: bf16 where the device is fast at it, else fp32; "
            "int8: CPU only, calibrated on the first 8 frames (faster for the paper's network)"
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
    requires: ClassVar[tuple[str, ...]] = ("image", "flow_image")
    provides: ClassVar[tuple[str, ...]] = ("saliency",)

    def __init__(self, options: SaliencyOptions, context: Context) -> None:
        super().__init__(options, context)
        self.device = torch.device(context.device)
        self.predictor: Predictor | None = None

    def open(self) -> None:
        self.predictor = self._predictor(self.options.size)
        self._passes = 0

    def _predictor(self, size: int | None) -> Predictor:
        options = self.options
        return shared_predictor(
            options.checkpoint,
            _file_version(options.checkpoint),
            size,
            str(self.device),
            options.precision,
            self.context.batch,
        )

    def close(self) -> None:
        self.predictor = None

    def describe(self) -> dict[str, Any]:
        predictor, precision = self.predictor, self.options.precision
        return {
            "checkpoint": self.options.checkpoint,
            "variant": predictor.options.get("variant"),
            "size": predictor.size,
            "precision": "int8" if precision == "int8" else str(predictor.dtype).split(".")[-1],
        }

    def _on_device(self, picture: Any) -> torch.Tensor:
        return torch.as_tensor(picture).to(self.device)

    def degrade(self) -> str | None:
        """Cheaper: the model's input size down by a fifth, in multiples of 32, not below
        96 (maps get coarser)."""
        size = self.predictor.size
        smaller = max(_DEGRADED_SIZE, 32 * round(0.8 * size / 32))
        if smaller >= size:
            return None
        self.predictor = self._predictor(smaller)
        return f"model input {size} -> {smaller}"

    def process(self, frames: list[Frame]) -> list[Frame]:
        pictures = [self._on_device(frame.small if frame.small is not None else frame.image)
                    for frame in frames]  # fmt: skip
        flow_images = [
            None if frame.flow_image is None else self._on_device(frame.flow_image)
            for frame in frames
        ]
        before = self.predictor.forward_passes
        maps = self.predictor(pictures, flow_images)
        self._passes += self.predictor.forward_passes - before
        threshold = self.options.threshold
        for frame, saliency in zip(frames, maps, strict=True):
            frame.saliency = saliency if threshold is None else (saliency >= threshold).float()
        self.context.stats["calls"] = self._passes
        return frames


_building = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached_predictor(
    checkpoint: str, version: tuple[int, int] | None, size: int | None, device: str,
    precision: str, batch: int,
) -> Predictor:  # fmt: skip
    return Predictor(checkpoint, size=size, device=device, precision=precision, batch_size=batch)


def shared_predictor(
    checkpoint: str, version: tuple[int, int] | None, size: int | None, device: str,
    precision: str, batch: int,
) -> Predictor:  # fmt: skip
    """The process's predictor for these settings, built on first use (``version``: the
    checkpoint file's modification time and size, so a rewritten file is read again)."""
    with _building:
        return _cached_predictor(checkpoint, version, size, device, precision, batch)


def _file_version(checkpoint: str) -> tuple[int, int] | None:
    try:
        status = os.stat(checkpoint)
    except OSError:
        return None  # builtin:NAME, or a missing file (read_checkpoint names the problem)
    return status.st_mtime_ns, status.st_size
