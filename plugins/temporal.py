"""The ``temporal`` stage: steadier saliency maps, each stream's map carried forward with the
flow and fused with the model's new map (``ianet.temporal``).

It goes right after ``saliency`` and replaces each frame's ``saliency`` with the fused map,
at the size the maps are fused at (``size``: the short side; the sinks and compositing scale
it to the picture as they do the model's maps). Each stream keeps its own state
(``start_stream`` / ``end_stream``); the frames of a batch of one size go to
``ianet.temporal.propagate_streams`` together, which fuses each stream's frames in order. A
scene cut (a jump of the grey histogram) resets the stream; a repeated frame gets the
previous map. With ``policy: latest`` a stream's frames may arrive with index gaps: the
frame's flow (the motion since frame ``index - 1``, or since the last frame the flow stage
saw) is scaled by the gap when that explains the picture better, and the carried map is
trusted less the longer the gap (``gap_decay`` per missing frame).
``enabled: false`` passes the maps through untouched: the pipeline's maps are then exactly
those of a pipeline without this stage (the stage does not claim a share of the CPU threads,
``needs_torch`` is False, so the other stages get the threads they get without it).
``context.stats`` counts ``cuts``, ``repeats`` and ``gaps`` (frames after dropped ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import torch

from ianet.temporal import PropagationOptions, Propagator, propagate_streams
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context, Stage

_DEFAULTS = PropagationOptions()


@dataclass
class TemporalOptions:
    """Options of the ``temporal`` stage (the fusion rule: see ``ianet.temporal``)."""

    enabled: bool = field(
        default=True,
        metadata={"help": "false: pass the maps through unchanged (as without this stage)"},
    )
    memory: float = field(
        default=_DEFAULTS.memory,
        metadata={
            "help": "most frames of evidence a pixel keeps: more is steadier, but slower "
            "to let go of a map the model contradicts where the picture does not change"
        },
    )
    floor: float = field(
        default=_DEFAULTS.floor,
        metadata={
            "help": "weight (frames, 0-1) of a new map that contradicts the carried one "
            "where the picture did not change: lower keeps a subject longer once it stops"
        },
    )
    tolerance: float = field(
        default=_DEFAULTS.tolerance,
        metadata={
            "help": "picture change (RGB, 0-1) at which the carried map is trusted at 1/e: "
            "lower follows the new map sooner where the picture changes"
        },
    )
    start_weight: float = field(
        default=_DEFAULTS.start_weight,
        metadata={
            "help": "weight (frames, 0-1) of a stream's first map and of the first after a cut"
        },
    )
    gap_decay: float = field(
        default=_DEFAULTS.gap_decay,
        metadata={"help": "trust (0-1) kept in the carried map per dropped frame"},
    )
    cut_threshold: float = field(
        default=_DEFAULTS.cut_threshold,
        metadata={
            "help": "scene cut: distance (total variation, 0-1) between two frames' grey "
            "histograms above which the stream starts again"
        },
    )
    cut_reliable: float = field(
        default=_DEFAULTS.cut_reliable,
        metadata={"help": "scene cut too: share of the picture the flow explains below this"},
    )
    repeat_threshold: float = field(
        default=_DEFAULTS.repeat_threshold,
        metadata={
            "help": "repeated frame: no pixel changed more than this (RGB, 0-1); it gets "
            "the previous map"
        },
    )
    size: int = field(
        default=_DEFAULTS.size,
        metadata={
            "help": "short side (pixels) the maps are fused at and passed on at (the sinks "
            "scale them to the picture): smaller costs less and keeps less of the model's detail"
        },
    )
    threshold: float | None = field(
        default=None,
        metadata={"help": "binarise the fused map at this value (0-1); none keeps it continuous"},
    )

    def __post_init__(self) -> None:
        self.propagation()
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold: expected a value between 0 and 1, got {self.threshold}")

    def propagation(self) -> PropagationOptions:
        """The fusion parameters as ``ianet.temporal`` takes them (ValueError if impossible)."""
        names = [f.name for f in fields(PropagationOptions)]
        return PropagationOptions(**{name: getattr(self, name) for name in names})


class Temporal(Stage):
    """Flow-guided temporal propagation of the saliency maps, per stream."""

    name: ClassVar[str] = "temporal"
    help: ClassVar[str] = (
        "steadier maps: each stream's saliency carried forward with the flow and fused with "
        "the new one (cuts reset, repeated frames keep the map)"
    )
    Options: ClassVar[type] = TemporalOptions
    needs_torch: ClassVar[bool] = False  # light work: the CPU threads stay with flow and saliency
    requires: ClassVar[tuple[str, ...]] = ("image", "flow", "saliency")
    provides: ClassVar[tuple[str, ...]] = ("saliency",)

    def __init__(self, options: TemporalOptions, context: Context) -> None:
        super().__init__(options, context)
        self._propagation = options.propagation()
        self._streams: dict[str, Propagator] = {}

    def start_stream(self, info: StreamInfo) -> None:
        self._streams[info.id] = Propagator(self._propagation)

    def end_stream(self, stream: str) -> list[Frame]:
        self._streams.pop(stream, None)
        return []

    def close(self) -> None:
        self._streams.clear()

    def process(self, frames: list[Frame]) -> list[Frame]:
        if not self.options.enabled:
            return frames
        groups: dict[tuple[tuple[int, ...], str], list[Frame]] = {}
        for frame in frames:
            saliency = frame.saliency
            groups.setdefault((tuple(saliency.shape), str(saliency.device)), []).append(frame)
        for group in groups.values():
            self._fuse(group)
        return frames

    def _fuse(self, frames: list[Frame]) -> None:
        """Fuse frames, all of one size and device (each stream's in order), in one call."""
        requests = []
        for frame in frames:
            propagator = self._streams.get(frame.stream)
            if propagator is None:
                raise ValueError(
                    f"temporal: a frame of stream {frame.stream!r} came before its start"
                )
            device = frame.saliency.device
            requests.append(
                (
                    propagator,
                    torch.as_tensor(frame.small if frame.small is not None else frame.image).to(
                        device
                    ),
                    frame.saliency,
                    torch.as_tensor(frame.flow).to(device),
                    frame.index,
                )
            )
        threshold = self.options.threshold
        stats = self.context.stats
        for frame, step in zip(frames, propagate_streams(requests), strict=True):
            frame.saliency = (
                step.saliency if threshold is None else (step.saliency >= threshold).float()
            )
            for event, counter in (("cut", "cuts"), ("repeat", "repeats")):
                if step.event == event:
                    stats[counter] = stats.get(counter, 0) + 1
            if step.gap > 1 and step.event != "start":
                stats["gaps"] = stats.get("gaps", 0) + 1
