"""The ``flow`` stage: each frame's motion flow and the colour-coded image the model reads.

One ``ianet.flow.FlowEstimator`` per stream keeps the stream's last frame, so a frame's
flow is its motion since the frame before (``docs/architecture.md``, "Flow convention"); a
stream's first frame gets zero flow and no flow image. The stage moves the pictures to the
pipeline's device (``frame.image`` becomes an HxWx3 uint8 tensor there), so flow, saliency and
compositing never leave it. Flow is estimated at a working size (the short side scaled
down to ``size``, or a ``WxH`` grid for every stream) and scaled back to the frame's size.

The frames of a batch that share a working size are estimated in one batched call, whatever
their streams (``ianet.flow.estimate.estimate_streams``; each stream keeps its own state):
with ``size: WxH`` that is one call per batch. ``context.stats["calls"]`` counts the calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ianet.flow import FlowEstimator, flow_to_image
from ianet.flow.estimate import estimate_streams
from ianet.flow.raft import load_raft
from ianet.transforms import resize_flow
from ianet_stream.config import parse_size
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context, Stage

_MIN_SIZE = 16


@dataclass
class FlowOptions:
    """Options of the ``flow`` stage."""

    method: Literal["tvl1", "raft_small", "raft_large"] = field(
        default="tvl1",
        metadata={"help": "tvl1 (weight-free), raft_small or raft_large (torchvision weights)"},
    )
    preset: Literal["fast", "balanced", "accurate"] = field(
        default="fast", metadata={"help": "tvl1: speed against accuracy"}
    )
    size: int | str | None = field(
        default=256,
        metadata={
            "help": "working size: the short side the frames are scaled down to for "
            "estimation (flow scaled back), or WxH: every stream at that grid (one batched "
            "estimation for streams of any size); none: the frame's size"
        },
    )
    alignment: Literal["current", "previous"] = field(
        default="current",
        metadata={
            "help": "current: each pixel's motion since the previous frame, on this frame's "
            "grid; previous: on the previous frame's grid"
        },
    )
    warm_start: bool = field(
        default=True, metadata={"help": "start each estimate from the stream's previous flow"}
    )
    weights: str = field(
        default="auto",
        metadata={"help": "raft: 'auto' (torchvision's cache or download) or a weights file"},
    )

    def __post_init__(self) -> None:
        parse_working_size(self.size)


class Flow(Stage):
    """Optical flow per stream, on the pipeline's device."""

    name: ClassVar[str] = "flow"
    help: ClassVar[str] = (
        "optical flow of each frame since the previous one (TV-L1 or RAFT) and its colour image"
    )
    Options: ClassVar[type] = FlowOptions
    needs_torch: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("image",)
    provides: ClassVar[tuple[str, ...]] = ("flow", "flow_image")

    def __init__(self, options: FlowOptions, context: Context) -> None:
        super().__init__(options, context)
        self.device = torch.device(context.device)
        self._estimators: dict[str, FlowEstimator] = {}
        self._grid = parse_working_size(options.size)
        is_raft = options.method != "tvl1"
        self._method_options = (
            {"weights": options.weights} if is_raft else {"preset": options.preset}
        )

    def open(self) -> None:
        if self.options.method != "tvl1":  # load the weights now: a missing file fails early
            load_raft(self.options.method, self.options.weights, self.device)

    def start_stream(self, info: StreamInfo) -> None:
        self._estimators[info.id] = FlowEstimator(
            self.options.method,
            self.options.alignment,
            self.options.warm_start,
            **self._method_options,
        )

    def end_stream(self, stream: str) -> list[Frame]:
        self._estimators.pop(stream, None)
        return []

    def close(self) -> None:
        self._estimators.clear()

    def process(self, frames: list[Frame]) -> list[Frame]:
        for runs in stream_runs(frames):
            groups: dict[tuple[int, int], list[list[Frame]]] = {}
            for run in runs:
                height, width = run[0].image.shape[:2]
                groups.setdefault(working_size(height, width, self._grid), []).append(run)
            for size, group in groups.items():
                self._estimate(size, group)
        return frames

    def _estimate(self, size: tuple[int, int], runs: list[list[Frame]]) -> None:
        """Fill flow and flow image of runs of frames (each of one stream and one size, the
        streams all different) with one batched estimation at ``size`` (height, width)."""
        images = [
            torch.stack([torch.as_tensor(f.image) for f in run]).to(self.device) for run in runs
        ]
        requests = [
            (self._estimator(run[0].stream), resize_images(pictures, size))
            for run, pictures in zip(runs, images, strict=True)
        ]
        results = estimate_streams(requests)
        colours = flow_to_image(torch.cat([result.flow for result in results]))
        colours = colours.split([len(run) for run in runs])
        for run, pictures, result, colour in zip(runs, images, results, colours, strict=True):
            height, width = pictures.shape[1:3]
            flow = resize_flow(result.flow, (height, width))
            flow_images = resize_images(colour, (height, width))
            for i, frame in enumerate(run):
                frame.image = pictures[i]
                frame.flow = flow[i]
                frame.flow_image = flow_images[i] if result.valid[i] else None
        self.context.stats["calls"] = self.context.stats.get("calls", 0) + 1

    def _estimator(self, stream: str) -> FlowEstimator:
        estimator = self._estimators.get(stream)
        if estimator is None:
            raise ValueError(f"flow: a frame of stream {stream!r} came before its start")
        return estimator


def stream_runs(frames: list[Frame]) -> list[list[list[Frame]]]:
    """A batch's frames as runs (a stream's consecutive frames of one size), in rounds.

    Each stream's frames form one run, in order, unless their size changes; its later runs
    go to later rounds, so that a round holds at most one run per stream.
    """
    by_stream: dict[str, list[list[Frame]]] = {}
    for frame in frames:
        runs = by_stream.setdefault(frame.stream, [])
        if runs and tuple(runs[-1][-1].image.shape) == tuple(frame.image.shape):
            runs[-1].append(frame)
        else:
            runs.append([frame])
    depth = max((len(runs) for runs in by_stream.values()), default=0)
    return [[runs[k] for runs in by_stream.values() if k < len(runs)] for k in range(depth)]


def parse_working_size(size: int | str | None) -> int | tuple[int, int] | None:
    """The ``size`` option: a short side (int), a ``WxH`` grid as (height, width), or None."""
    if size is None:
        return None
    parsed = parse_size(size, minimum=_MIN_SIZE)
    return parsed[::-1] if isinstance(parsed, tuple) else parsed


def working_size(
    height: int, width: int, short_side: int | tuple[int, int] | None
) -> tuple[int, int]:
    """``(height, width)`` scaled so the short side is ``short_side``, never enlarged; a
    ``(height, width)`` grid as it is."""
    if isinstance(short_side, tuple):
        return short_side
    if short_side is None or min(height, width) <= short_side:
        return height, width
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_images(images: Tensor, size: tuple[int, int]) -> Tensor:
    """BxHxWx3 uint8 resized to ``size`` (antialiased bilinear, uint8 throughout);
    unchanged at that size."""
    if tuple(images.shape[1:3]) == size:
        return images
    resized = TF.resize(images.permute(0, 3, 1, 2), list(size), antialias=True)
    return resized.permute(0, 2, 3, 1).contiguous()
