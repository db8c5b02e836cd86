"""What flows through a pipeline: frames, and the markers that open and close a stream."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

Item = TypeVar("Item")


@dataclass(frozen=True)
class StreamInfo:
    """A stream announced by a source before its first frame.

    ``id`` is unique within a run; ``name`` is what outputs are named after (the input
    file's stem, ``webcam0``, ...). ``audio`` is the path of a file whose audio belongs to
    the stream (sinks may copy it); ``None`` for inputs read once (pipes, cameras).
    ``frames`` is how many frames the stream will have, when the source knows it (a file:
    progress bars show it).
    """

    id: str
    name: str
    uri: str
    width: int
    height: int
    rate: Fraction | None = None
    time_base: Fraction | None = None
    live: bool = False
    audio: str | None = None
    frames: int | None = None


@dataclass(eq=False)
class Frame:
    """A decoded picture and the fields the stages add to it.

    Shapes (H, W of the picture; h, w of the working size the model stages use, the
    picture reduced once by the flow stage, or H, W when the picture is small enough):
        image: HxWx3 uint8 RGB; a numpy array from decode, a torch tensor once a stage
            has moved it to the pipeline's device (it stays there until a sink downloads it).
            Only compositing and the sinks touch it at full resolution.
        mask: HxW uint8 ground truth (0/255), from the synthetic source only.
        small: hxwx3 uint8 tensor, the picture at the working size (flow stage).
        flow: 2xhxw float32 tensor in pixels of the working grid, the motion of each pixel
            of this frame since the previous one (x then y), on this frame's grid; zeros for
            a stream's first frame.
        flow_image: hxwx3 uint8 tensor, the colour-coded flow the model reads; ``None`` for
            a stream's first frame (the model then sees zero flow, as still images in training).
        saliency: float32 tensor in [0, 1]: hxw from the saliency stage, smaller after the
            temporal stage (its own working size); ``ianet.transforms.map_to_uint8`` makes
            an 8-bit map of the picture's size.
        output: HxWx3 or HxWx4 (with alpha) uint8, the composited picture; sinks write
            ``output`` when it is set and ``image`` otherwise.
        previous: HxWx3 uint8, the picture of the frame just before this one in its stream
            when that frame was not let into the pipeline (live inputs): flow is estimated
            against it, so the motion the model sees is that of one frame interval.
    """

    image: Any
    index: int
    stream: str
    pts: int | None = None
    time_base: Fraction | None = None
    captured: float = field(default_factory=time.monotonic)
    mask: Any = None
    small: Any = None
    flow: Any = None
    flow_image: Any = None
    saliency: Any = None
    output: Any = None
    previous: Any = None

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, when the source gave a timestamp."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class StreamStart:
    """Sent through the pipeline before a stream's first frame."""

    info: StreamInfo


@dataclass(frozen=True)
class StreamEnd:
    """Sent after a stream's last frame; stages flush that stream's state on it."""

    stream: str


def to_numpy(picture: Any) -> np.ndarray:
    """A picture or map as a numpy array: numpy as it is, a tensor (any device) downloaded.

    Tensors are recognised by their ``cpu`` method, so this module never imports torch.
    """
    if hasattr(picture, "cpu"):
        picture = picture.cpu().numpy()
    return np.asarray(picture)


def in_rounds(by_stream: dict[str, list[Item]]) -> list[list[Item]]:
    """Each stream's items in rounds: round k holds the k-th item of every stream that has
    one (streams in the dict's order), so that a round has at most one item per stream."""
    depth = max((len(items) for items in by_stream.values()), default=0)
    return [[items[k] for items in by_stream.values() if k < len(items)] for k in range(depth)]
