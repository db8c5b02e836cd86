"""The masks sink: one 8-bit greyscale PNG per frame, ``<path>/<stream name>/<index:05d>.png``.

It writes ``frame.saliency`` (HxW in [0, 1], stored as ``round(x * 255)``), or the
ground-truth ``frame.mask`` when a frame has no saliency, so ``decode synthetic: -> masks``
dumps the generator's ground truth. Each stream's folder is written under a temporary name
and renamed when the run succeeds. Frames pass through, so other sinks can follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image

from ianet_stream.errors import ConfigError
from ianet_stream.frame import Frame, StreamInfo, to_numpy
from ianet_stream.outputs import PendingOutputs
from ianet_stream.stage import Context, PlannedOutput, Stage


def mask_image(values: Any, size: tuple[int, int] | None = None) -> np.ndarray:
    """HxW uint8 from a saliency map (float in [0, 1] -> round(x * 255)) or a uint8 mask;
    a map of another size than ``size`` (the picture's) is resized to it first.

    ``values`` is a numpy array or a tensor on any device, HxW or 1xHxW.
    """
    array = to_numpy(values)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"masks: expected an HxW map, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if size is not None and array.shape != tuple(size):
        import torch

        from ianet.transforms import map_to_uint8

        return map_to_uint8(torch.from_numpy(np.ascontiguousarray(array)), size).numpy()
    return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


@dataclass
class MasksOptions:
    """Options of the masks sink."""

    path: str = field(
        metadata={
            "help": "folder of <stream name>/<frame index>.png: the saliency maps, or the "
            "ground-truth masks of frames without one (decode synthetic: -> masks)"
        }
    )

    def __post_init__(self) -> None:
        if not self.path.strip() or self.path == "-":
            raise ValueError("path: expected a folder")


WRITER = "the masks sink"  # marks its folders: a later run replaces them, no other folder


class Masks(Stage):
    """Writes each frame's saliency map (or ground-truth mask) as an 8-bit PNG."""

    name: ClassVar[str] = "masks"
    help: ClassVar[str] = (
        "write saliency maps as PNGs, <path>/<stream>/<index>.png (ground-truth masks of "
        "frames without saliency, e.g. from synthetic:)"
    )
    kind: ClassVar[Literal["source", "transform", "sink"]] = "sink"
    Options: ClassVar[type] = MasksOptions
    requires: ClassVar[tuple[str, ...]] = ("saliency|mask",)
    output_option: ClassVar[str | None] = "path"

    def __init__(self, options: MasksOptions, context: Context) -> None:
        super().__init__(options, context)
        self._folders: dict[str, Path] = {}
        self._outputs = PendingOutputs()

    @classmethod
    def outputs(cls, options: MasksOptions, streams: Sequence[str]) -> list[PlannedOutput]:
        return [PlannedOutput(Path(options.path) / name, WRITER) for name in streams]

    def start_stream(self, info: StreamInfo) -> None:
        final = Path(self.options.path) / info.name
        folder = self._outputs.reserve(final, writer=WRITER)
        folder.mkdir()
        self._folders[info.id] = folder

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            values = frame.saliency if frame.saliency is not None else frame.mask
            if values is None:
                raise ConfigError(
                    "masks: the frames have no saliency (put a saliency stage before masks) "
                    "and no ground-truth mask"
                )
            path = self._folders[frame.stream] / f"{frame.index:05d}.png"
            size = tuple(frame.image.shape[:2])
            Image.fromarray(mask_image(values, size)).save(path, format="PNG")
        return frames

    def end_stream(self, stream: str) -> list[Frame]:
        folder = self._folders.pop(stream, None)
        if folder is not None:
            self._outputs.complete(folder)
        return []

    def close(self) -> None:
        self._folders.clear()
        self._outputs.finish(failed=self.context.failed)
