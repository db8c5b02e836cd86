"""The ``flow`` stage: each frame's motion flow and the colour-coded image the model reads.

One ``ianet.flow.FlowEstimator`` per stream keeps the stream's last frame, so a frame's
flow is its motion since the frame before (``docs/architecture.md``, "Flow convention"); a
stream's first frame gets zero flow and no flow image. Each picture is reduced once, in
uint8, to the working size (the short side scaled down to ``size``, or a ``WxH`` grid for
every stream): ``frame.small``, which the saliency stage reads too; flow and flow image
stay at that size (``frame.flow`` in pixels of that grid). On a GPU the picture is
uploaded once here (``frame.image`` becomes a tensor on the device) and stays there.

The frames of a batch that share a working size are estimated in one batched call, whatever
their streams (``ianet.flow.estimate.estimate_streams``; each stream keeps its own state):
with ``size: WxH`` that is one call per batch. ``context.stats["calls"]`` counts the calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ianet.flow import FlowEstimator, flow_to_image
from ianet.flow.estimate import estimate_streams
from ianet.flow.raft import load_raft
from ianet.transforms import resize_uint8, working_size
from ianet_stream.config import parse_size
from ianet_stream.frame import Frame, StreamInfo, in_rounds
from ianet_stream.stage import Context, Stage

_MIN_SIZE = 16
_DEGRADED_SIZE = 96  # degrade never takes the working size's short side below this


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
        default=True,
        metadata={
            "help": "start each estimate from the stream's previous flow (a stream's frames "
            "are then estimated one after another; false batches them, e.g. for RAFT on a GPU)"
        },
    )
    weights: str = field(
        default="auto",
        metadata={"help": "raft: 'auto' (torchvision's cache or download) or a weights file"},
    )
    reference: Literal["preceding", "processed"] = field(
        default="preceding",
        metadata={
            "help": "live inputs that drop frames: preceding: flow against the frame just "
            "before, also when it was dropped (the motion the model learnt); processed: "
            "against the previous frame that went through (motion across the gap)"
        },
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
        self._preset = options.preset
        self._reuse = 1  # estimate every frame (degrade: every second one, reusing flow)
        self._reused: dict[str, tuple[int, Frame]] = {}  # a stream's last estimated frame

    def open(self) -> None:
        if self.options.method != "tvl1":  # load the weights now: a missing file fails early
            load_raft(self.options.method, self.options.weights, self.device)

    def start_stream(self, info: StreamInfo) -> None:
        self._estimators[info.id] = self._new_estimator()

    def _new_estimator(self) -> FlowEstimator:
        options = self.options
        method_options = (
            {"weights": options.weights} if options.method != "tvl1" else {"preset": self._preset}
        )
        return FlowEstimator(
            options.method, options.alignment, options.warm_start, **method_options
        )

    def end_stream(self, stream: str) -> list[Frame]:
        self._estimators.pop(stream, None)
        self._reused.pop(stream, None)
        return []

    def describe(self) -> dict[str, Any]:
        options, grid = self.options, self._grid
        if isinstance(grid, tuple):
            working = f"{grid[1]}x{grid[0]}"
        else:
            working = "the frame's" if grid is None else f"short side {grid}"
        settings = {
            "method": options.method,
            "working_size": working,
            "alignment": options.alignment,
            "warm_start": options.warm_start,
            "reference": options.reference,
        }
        if options.method == "tvl1":
            settings["preset"] = self._preset
        return settings

    def degrade(self) -> str | None:
        """Cheaper, in steps: TV-L1's fast preset; the working size down by a quarter (not
        below 96 pixels); then flow estimated for every second frame, reused between."""
        if self.options.method == "tvl1" and self._preset != "fast":
            before, self._preset = self._preset, "fast"
            self._estimators = {stream: self._new_estimator() for stream in self._estimators}
            return f"tvl1 preset {before} -> fast"
        if isinstance(self._grid, int) or self._grid is None:
            current = self._grid or 256
            smaller = max(_DEGRADED_SIZE, round(current * 0.75))
            if smaller < current:
                self._grid = smaller
                return f"working size {current} -> {smaller}"
        if self._reuse == 1:
            self._reuse = 2
            return "flow estimated for every second frame, reused in between"
        return None

    def close(self) -> None:
        self._estimators.clear()

    def process(self, frames: list[Frame]) -> list[Frame]:
        estimated, copies = self._plan(frames)
        for runs in stream_runs(estimated, chained=self.options.warm_start):
            groups: dict[tuple[int, int], list[list[Frame]]] = {}
            for run in runs:
                height, width = run[0].image.shape[:2]
                groups.setdefault(working_size(height, width, self._grid), []).append(run)
            for size, group in groups.items():
                self._estimate(size, group)
        for frame, source in copies:
            frame.image = torch.as_tensor(frame.image).to(self.device)
            frame.small = self._reduce(frame.image, tuple(source.small.shape[:2]))
            frame.flow, frame.flow_image = source.flow, source.flow_image
        return frames

    def _plan(self, frames: list[Frame]) -> tuple[list[Frame], list[tuple[Frame, Frame]]]:
        """The frames to estimate, and (frame, estimated frame) pairs of those that reuse
        a flow: after ``degrade`` went that far, a frame whose stream's last estimated frame
        is less than ``_reuse`` frames back. An estimated frame after a reusing one is
        estimated against it (its ``previous``), so its flow spans one frame interval."""
        if self._reuse == 1:
            return frames, []
        estimated, copies = [], []
        skipped: dict[str, Frame] = {}
        for frame in frames:
            last = self._reused.get(frame.stream)
            if last is not None and frame.index - last[0] < self._reuse:
                copies.append((frame, last[1]))
                skipped[frame.stream] = frame
                continue
            before = skipped.pop(frame.stream, None)
            if before is not None and frame.previous is None:
                frame.previous = before.image
            estimated.append(frame)
            self._reused[frame.stream] = (frame.index, frame)
        return estimated, copies

    def _estimate(self, size: tuple[int, int], runs: list[list[Frame]]) -> None:
        """Fill flow and flow image of runs of frames (each of one stream and one size, the
        streams all different) with one batched estimation at ``size`` (height, width)."""
        requests = []
        for run in runs:
            estimator = self._estimator(run[0].stream)
            previous = run[0].previous
            if previous is not None and self.options.reference == "preceding":
                estimator.follow(self._reduce(previous, size)[None])
            for frame in run:
                frame.image = torch.as_tensor(frame.image).to(self.device)
                frame.small = self._reduce(frame.image, size)
            requests.append((estimator, torch.stack([frame.small for frame in run])))
        results = estimate_streams(requests)
        colours = flow_to_image(torch.cat([result.flow for result in results]))
        colours = colours.split([len(run) for run in runs])
        for run, result, colour in zip(runs, results, colours, strict=True):
            for i, frame in enumerate(run):
                frame.flow = result.flow[i]
                frame.flow_image = colour[i] if result.valid[i] else None
        self.context.stats["calls"] = self.context.stats.get("calls", 0) + 1

    def _reduce(self, picture: Any, size: tuple[int, int]) -> Tensor:
        """An HxWx3 uint8 picture on the device at ``size`` (uint8 throughout)."""
        picture = torch.as_tensor(picture).to(self.device)
        return resize_uint8(picture, size)

    def _estimator(self, stream: str) -> FlowEstimator:
        estimator = self._estimators.get(stream)
        if estimator is None:
            raise ValueError(f"flow: a frame of stream {stream!r} came before its start")
        return estimator


def stream_runs(frames: list[Frame], chained: bool = False) -> list[list[list[Frame]]]:
    """A batch's frames as runs (a stream's consecutive frames of one size), in rounds.

    Each stream's frames form one run, in order, unless their size changes or a frame
    follows a dropped one (it carries ``previous``); its later runs go to later rounds, so
    that a round holds at most one run per stream. ``chained``: every frame is a run of
    its own, so that each estimate starts from the flow just before it (a warm start then
    does not depend on how frames were batched; streams are still estimated together).
    """
    by_stream: dict[str, list[list[Frame]]] = {}
    for frame in frames:
        runs = by_stream.setdefault(frame.stream, [])
        same_size = runs and tuple(runs[-1][-1].image.shape) == tuple(frame.image.shape)
        if same_size and frame.previous is None and not chained:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return in_rounds(by_stream)


def parse_working_size(size: int | str | None) -> int | tuple[int, int] | None:
    """The ``size`` option: a short side (int), a ``WxH`` grid as (height, width), or None."""
    if size is None:
        return None
    parsed = parse_size(size, minimum=_MIN_SIZE)
    return parsed[::-1] if isinstance(parsed, tuple) else parsed
