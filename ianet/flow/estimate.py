"""Optical flow between uint8 RGB frames, and the flow IANet reads.

See ``docs/architecture.md``, "Flow convention".

``estimate_flow(prev, next)`` is ordinary optical flow: for each pixel of ``prev``, where it
went in ``next``. ``motion_flow(prev, current)`` is the flow the model reads for ``current``:
with ``alignment="current"`` (the default) the motion of each pixel of ``current`` since
``prev``, on ``current``'s grid (``-estimate_flow(current, prev)``); with
``alignment="previous"`` the ordinary flow on ``prev``'s grid (``estimate_flow(prev, current)``).
``flow_input`` colour-codes it; ``FlowEstimator`` does the same for a stream, frame after frame,
and ``estimate_streams`` for the next frames of several streams in one batched estimation.

Methods: ``tvl1`` (weight-free, options: ``preset`` = ``fast`` | ``balanced`` | ``accurate``
and any field of ``TVL1Options``), ``raft_small`` and ``raft_large`` (options: ``weights`` =
``auto`` | PATH | ``none``, ``iterations``, default 12).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ianet.flow.colour import flow_to_image
from ianet.flow.raft import RAFT_METHODS, load_raft, raft_flow
from ianet.flow.tvl1 import tvl1, tvl1_options
from ianet.transforms import resize_uint8

METHODS = ("tvl1", *RAFT_METHODS)
ALIGNMENTS = ("current", "previous")
Alignment = Literal["current", "previous"]


def _check_frames(name: str, frames: Tensor) -> None:
    if not isinstance(frames, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{name}: expected uint8 RGB frames shaped BxHxWx3, "
            f"got {frames.dtype} {tuple(frames.shape)}"
        )


def _check_pair(prev: Tensor, next: Tensor) -> None:
    _check_frames("prev", prev)
    _check_frames("next", next)
    if prev.shape != next.shape or prev.device != next.device:
        raise ValueError(
            f"prev and next differ: {tuple(prev.shape)} on {prev.device} "
            f"vs {tuple(next.shape)} on {next.device}"
        )


def check_options(method: str, options: dict[str, object]) -> None:
    """Raise ValueError if ``method`` is unknown or does not take these options."""
    if method == "tvl1":
        tvl1_options(**options)  # type: ignore[arg-type]
    elif method in RAFT_METHODS:
        unknown = sorted(set(options) - {"weights", "iterations"})
        if unknown:
            raise ValueError(f"unknown {method} option(s) {', '.join(unknown)}")
        iterations = options.get("iterations", 12)
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"{method} iterations: expected an integer >= 1, got {iterations!r}")
    else:
        raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(METHODS)}")


def estimate_flow(
    prev: Tensor,
    next: Tensor,
    method: str = "tvl1",
    *,
    init: Tensor | None = None,
    **options: object,
) -> Tensor:
    """Optical flow from ``prev`` to ``next``.

    Args:
        prev, next: BxHxWx3 uint8 RGB tensors on one device (CPU or CUDA), any size.
        method: ``tvl1``, ``raft_small`` or ``raft_large``.
        init: optional Bx2xHxW flow to start from (a warm start, e.g. the previous pair's).
        **options: the method's options (see the module's docstring).

    Returns:
        Bx2xHxW float32 flow in pixels (x then y displacement) from prev to next, on prev's
        grid, on the input's device.
    """
    _check_pair(prev, next)
    check_options(method, options)
    expected = (prev.shape[0], 2, *prev.shape[1:3])
    if init is not None and tuple(init.shape) != expected:
        raise ValueError(f"init: expected a flow shaped {expected}, got {tuple(init.shape)}")
    with torch.no_grad():
        if method == "tvl1":
            return tvl1(prev, next, tvl1_options(**options), init)  # type: ignore[arg-type]
        model = load_raft(method, options.get("weights", "auto"), prev.device)  # type: ignore[arg-type]
        return raft_flow(model, prev, next, options.get("iterations", 12), init)  # type: ignore[arg-type]


def motion_flow(
    prev: Tensor,
    current: Tensor,
    method: str = "tvl1",
    alignment: Alignment = "current",
    *,
    init: Tensor | None = None,
    **options: object,
) -> Tensor:
    """The flow IANet reads for ``current``, in pixels, Bx2xHxW.

    Args:
        prev, current: BxHxWx3 uint8 RGB, each ``prev`` the frame before its ``current``.
        alignment: ``current``: the motion of each pixel of ``current`` since ``prev``, on
            ``current``'s grid (``-estimate_flow(current, prev)``); ``previous``: where each
            pixel of ``prev`` went, on ``prev``'s grid (``estimate_flow(prev, current)``).
        init: optional warm start: the previous motion flow of the stream (same convention).
        method, **options: as for ``estimate_flow``.
    """
    if alignment == "current":
        start = None if init is None else -init
        return -estimate_flow(current, prev, method, init=start, **options)
    if alignment == "previous":
        return estimate_flow(prev, current, method, init=init, **options)
    raise ValueError(f"unknown flow alignment {alignment!r}; choose one of {', '.join(ALIGNMENTS)}")


def flow_input(
    prev: Tensor,
    current: Tensor,
    method: str = "tvl1",
    alignment: Alignment = "current",
    **options: object,
) -> Tensor:
    """The colour-coded flow image IANet reads for ``current``: BxHxWx3 uint8 RGB.

    ``flow_to_image(motion_flow(prev, current, method, alignment, **options))``.
    """
    return flow_to_image(motion_flow(prev, current, method, alignment, **options))


class StreamFlow(NamedTuple):
    """The flow of a batch of consecutive frames of one stream.

    Attributes:
        flow: Bx2xHxW float32 motion flow in pixels (``motion_flow``'s convention), zero for
            a frame without a predecessor.
        valid: one bool per frame; False for the first frame of the stream (and the first
            frame after a change of device), which has no predecessor and no flow image.
    """

    flow: Tensor
    valid: tuple[bool, ...]


class FlowEstimator:
    """Motion flow of one stream, frame after frame (``motion_flow`` with memory).

    Keeps the stream's last frame, so that each call needs only the new frames, and (with
    ``warm_start``) its last flow, from which the next pairs' estimates start. A batch of B
    consecutive frames is estimated in one batched call; every pair of a batch starts from
    the last flow of the batch before. ``estimate_streams`` batches several streams' frames.

    Args:
        method: ``tvl1``, ``raft_small`` or ``raft_large``.
        alignment: ``current`` or ``previous``, as for ``motion_flow``.
        warm_start: start each estimate from the stream's previous flow.
        **options: the method's options, checked here.
    """

    def __init__(
        self,
        method: str = "tvl1",
        alignment: Alignment = "current",
        warm_start: bool = True,
        **options: object,
    ) -> None:
        check_options(method, options)
        if alignment not in ALIGNMENTS:
            raise ValueError(
                f"unknown flow alignment {alignment!r}; choose one of {', '.join(ALIGNMENTS)}"
            )
        self.method = method
        self.alignment: Alignment = alignment
        self.warm_start = warm_start
        self.options = options
        self._last_frame: Tensor | None = None
        self._last_flow: Tensor | None = None

    def reset(self) -> None:
        """Forget the stream: the next frame is treated as a first frame."""
        self._last_frame = None
        self._last_flow = None

    def follow(self, previous: Tensor) -> None:
        """The next frames follow ``previous`` (1xHxWx3 uint8), not the last frame given:
        the frames between were skipped. The last flow stays the warm start (when it is of
        that size)."""
        _check_frames("previous", previous)
        self._last_frame = previous[-1:].clone()
        if self._last_flow is not None and self._last_flow.shape[-2:] != previous.shape[1:3]:
            self._last_flow = None

    def __call__(self, frames: Tensor) -> StreamFlow:
        """Motion flow of the next frames of the stream.

        Args:
            frames: BxHxWx3 uint8 RGB, consecutive frames following the previous call's.

        Returns:
            ``StreamFlow`` with Bx2xHxW flow on the frames' device and a validity flag per frame.
        """
        return estimate_streams([(self, frames)])[0]

    def _pairs(self, frames: Tensor) -> _Pairs:
        """The (previous, current) pairs ``frames`` make with the stream's last frame.

        A last frame of another size (the working size changed) is resized to the new one,
        without its flow as a warm start; the stream is forgotten when ``frames`` are on
        another device.
        """
        if frames.shape[0] == 0:
            return _Pairs(frames, frames, None, True)
        last = self._last_frame
        if last is not None and last.device == frames.device and last.shape[1:] != frames.shape[1:]:
            last = self._last_frame = resize_uint8(last, tuple(frames.shape[1:3]))
            self._last_flow = None
        continues = last is not None and last.device == frames.device
        if not continues:
            self.reset()
        previous = torch.cat((last, frames[:-1])) if last is not None and continues else frames[:-1]
        current = frames[frames.shape[0] - previous.shape[0] :]
        init = None
        if self.warm_start and self._last_flow is not None and previous.shape[0] > 0:
            init = self._last_flow.expand(previous.shape[0], -1, -1, -1)
        return _Pairs(previous, current, init, continues)

    def _advance(self, frames: Tensor, pairs: _Pairs, estimated: Tensor) -> StreamFlow:
        """Remember the stream's last frame and flow; ``estimated``: the pairs' flow."""
        height, width = frames.shape[1:3]
        flow = frames.new_zeros((frames.shape[0], 2, height, width), dtype=torch.float32)
        if estimated.shape[0] > 0:
            flow[frames.shape[0] - estimated.shape[0] :] = estimated
            self._last_flow = estimated[-1:]
        if frames.shape[0] > 0:
            self._last_frame = frames[-1:].clone()
        valid = (pairs.continues,) + (True,) * (frames.shape[0] - 1) if frames.shape[0] else ()
        return StreamFlow(flow, valid)


class _Pairs(NamedTuple):
    """What one stream adds to a batched estimation (``FlowEstimator._pairs``)."""

    previous: Tensor
    current: Tensor
    init: Tensor | None
    continues: bool


def estimate_streams(requests: Sequence[tuple[FlowEstimator, Tensor]]) -> list[StreamFlow]:
    """Motion flow of the next frames of several streams, in one batched estimation.

    Each stream keeps its own state in its ``FlowEstimator`` (last frame, and last flow as
    a warm start): the result for a stream equals ``estimator(frames)`` called alone.

    Args:
        requests: (estimator, frames) per stream; frames BxHxWx3 uint8 RGB (B may differ
            between streams) of one size and device for all; the estimators share method,
            alignment and options, and each appears once.

    Returns:
        One ``StreamFlow`` per request, in order.
    """
    if not requests:
        return []
    for _, frames in requests:
        _check_frames("frames", frames)
    first, frames = requests[0]
    estimators = [estimator for estimator, _ in requests]
    if len({id(estimator) for estimator in estimators}) != len(estimators):
        raise ValueError("estimate_streams: an estimator appears twice; a stream goes in once")
    for estimator, other in requests[1:]:
        same = (estimator.method, estimator.alignment, estimator.options) == (
            first.method,
            first.alignment,
            first.options,
        )
        if not same:
            raise ValueError("estimate_streams: the estimators differ in method or options")
        if other.shape[1:] != frames.shape[1:] or other.device != frames.device:
            raise ValueError(
                f"estimate_streams: frames differ: {tuple(frames.shape[1:])} on {frames.device} "
                f"vs {tuple(other.shape[1:])} on {other.device}"
            )
    pairs = [estimator._pairs(frames) for estimator, frames in requests]
    previous = torch.cat([p.previous for p in pairs])
    estimated = previous.new_zeros((0, 2, *previous.shape[1:3]), dtype=torch.float32)
    if previous.shape[0] > 0:
        init = None
        if any(p.init is not None for p in pairs):  # a zero start is the cold start
            init = torch.cat([_start(p) for p in pairs])
        current = torch.cat([p.current for p in pairs])
        estimated = motion_flow(
            previous, current, first.method, first.alignment, init=init, **first.options
        )
    counts = [p.previous.shape[0] for p in pairs]
    return [
        estimator._advance(frames, p, flow)
        for (estimator, frames), p, flow in zip(
            requests, pairs, estimated.split(counts), strict=True
        )
    ]


def _start(pairs: _Pairs) -> Tensor:
    """The pairs' warm start, zeros where the stream has none."""
    if pairs.init is not None:
        return pairs.init
    height, width = pairs.previous.shape[1:3]
    return pairs.previous.new_zeros(
        (pairs.previous.shape[0], 2, height, width), dtype=torch.float32
    )
