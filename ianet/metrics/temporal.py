"""Temporal stability of saliency maps: with ground truth (dtSSD) and without it.

Without ground truth, consecutive maps of a clip are compared after carrying the earlier
one onto the later frame with an optical flow computed from the pictures (by default the
project's TV-L1; any estimator can be given, and an estimator other than the one the maps
were propagated with gives an independent measurement):

- **flow-warped IoU**: the IoU of the map of frame t thresholded at ``threshold`` (``>=``)
  and the map of frame t-1 warped onto frame t (``ianet.temporal.warp_previous``) and
  thresholded, over the pixels whose warped point lies inside frame t-1; 1 when both masks
  are empty there. A pair whose IoU is below 0.5 is a *flash*.
- **warping error** (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018):
  the mean squared difference between the map of frame t and the warped map of frame t-1
  over the non-occluded pixels. Lai et al. find occlusions by forward-backward flow
  consistency; here a pixel counts as non-occluded where its warped point lies inside the
  frame and the warped picture matches the current one (mean absolute RGB difference at
  most ``occlusion_tolerance``, 0..1), which needs one flow per pair instead of two.
- **mask area**: the share of pixels at or above ``threshold``, per frame.

With ground truth, **dtSSD** as RobustVideoMatting (Lin et al., WACV 2022, after Erofeev
et al., 2015) computes it for alpha mattes: for each pair of consecutive frames, the square
root of the mean over the pixels of the squared difference between the temporal change of
the prediction (``p_t - p_t-1``) and the temporal change of the ground truth
(``g_t - g_t-1``), times 100; maps in [0, 1]. It is 0 when the prediction changes exactly
as the ground truth does; flicker raises it. A sequence's dtSSD is the mean over its pairs;
``ianet-stream eval`` reads the 8-bit maps as the saliency protocols do (``normalised_map``)
and averages the sequences as the protocol averages its other measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ianet.temporal import warp_previous
from ianet.transforms import resize_flow, resize_uint8, working_size

FLASH_IOU = 0.5  # a pair of consecutive masks whose warped IoU is below this is a flash
MotionFlow = Callable[[Tensor, Tensor], Tensor]


def project_motion(method: str = "tvl1", **options: object) -> MotionFlow:
    """A motion-flow estimator of the project (``ianet.flow.motion_flow``): ``tvl1``
    (``preset`` ``fast`` unless given, as the pipeline's flow stage), ``raft_small`` or
    ``raft_large`` (``weights``). It takes BxHxWx3 uint8 ``previous`` and ``current`` and
    returns the Bx2xHxW motion of ``current`` since ``previous``, on ``current``'s grid."""
    from ianet.flow import motion_flow

    if method == "tvl1":
        options.setdefault("preset", "fast")

    def estimate(previous: Tensor, current: Tensor) -> Tensor:
        return motion_flow(previous, current, method, **options)

    return estimate


def at_working_size(flow: MotionFlow, short_side: int | None) -> MotionFlow:
    """``flow`` estimated on the pictures scaled down so their short side is ``short_side``
    (never enlarged; None: at their size), the flow scaled back to the pictures' grid."""
    if short_side is None:
        return flow

    def estimate(previous: Tensor, current: Tensor) -> Tensor:
        height, width = current.shape[1:3]
        size = working_size(height, width, short_side)
        if size == (height, width):
            return flow(previous, current)
        motion = flow(resize_uint8(previous, size), resize_uint8(current, size))
        return resize_flow(motion, (height, width))

    return estimate


def dtssd(pred: Tensor, previous_pred: Tensor, gt: Tensor, previous_gt: Tensor) -> Tensor:
    """RobustVideoMatting's dtSSD of each pair of frames.

    Args:
        pred, previous_pred: BxHxW (or HxW) predictions in [0, 1] at frames t and t-1.
        gt, previous_gt: the ground truth at t and t-1, in [0, 1] (bool allowed).

    Returns:
        (B,) float64: ``100 * sqrt(mean(((pred - previous_pred) - (gt - previous_gt))^2))``.
    """
    return _residual_change(
        pred.double() - gt.double(), previous_pred.double() - previous_gt.double()
    )


def _residual_change(residual: Tensor, previous: Tensor) -> Tensor:
    """dtSSD from the residuals ``prediction - ground truth`` of frames t and t-1 (...xHxW):
    ``100 * sqrt(mean((residual - previous)^2))`` over the last two dimensions, float64."""
    return ((residual.double() - previous.double()) ** 2).flatten(-2).mean(-1).sqrt() * 100


def normalised_map(pred: Tensor) -> Tensor:
    """An HxW uint8 map as the evaluation protocols read it, float32 in [0, 1]: ``v / 255``,
    min-max scaled unless constant."""
    values = pred.float() / 255
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else values


class DtSSDAccumulator:
    """dtSSD of many sequences, fed frame by frame in each sequence's order.

    ``add(dataset, sequence, residual)`` takes a frame's ``prediction - ground truth`` (HxW,
    the prediction as ``normalised_map`` gives it, the GT 0 or 1): the temporal change of
    the residual is the change of the prediction minus the change of the ground truth. A
    frame is paired with the previous frame added for its sequence (of the same size).
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], Tensor] = {}
        self._values: dict[tuple[str, str], list[float]] = {}

    def add(self, dataset: str, sequence: str, residual: Tensor) -> None:
        key = (dataset, sequence)
        previous = self._last.get(key)
        if previous is not None and previous.shape == residual.shape:
            value = float(_residual_change(residual, previous))
            self._values.setdefault(key, []).append(value)
        self._last[key] = residual

    def result(self, protocol: str) -> dict[str, float]:
        """dtSSD per dataset: with ``davsod`` the mean over sequences of each sequence's mean
        over its pairs, with ``pysod`` the mean over all pairs (as each protocol averages
        its other measures); datasets without a pair are left out."""
        by_dataset: dict[str, list[list[float]]] = {}
        for (dataset, _), values in self._values.items():
            by_dataset.setdefault(dataset, []).append(values)
        if protocol == "davsod":
            return {
                name: float(np.mean([np.mean(v) for v in seqs]))
                for name, seqs in by_dataset.items()
            }
        return {name: float(np.mean(np.concatenate(seqs))) for name, seqs in by_dataset.items()}


def warped_iou(current: Tensor, warped: Tensor, inside: Tensor, threshold: float = 0.5) -> Tensor:
    """IoU of two BxHxW maps thresholded at ``threshold``, over the pixels where ``inside``
    (BxHxW bool); 1 where both masks are empty there."""
    a = (current >= threshold) & inside
    b = (warped >= threshold) & inside
    union = (a | b).flatten(1).sum(1)
    common = (a & b).flatten(1).sum(1)
    return torch.where(union > 0, common / union.clamp(min=1), torch.ones_like(union).double())


@dataclass(frozen=True)
class StabilityScores:
    """The temporal stability of a clip's maps (see the module's docstring).

    Attributes:
        median_iou: median flow-warped IoU over the pairs of consecutive frames.
        flashes: share of pairs whose warped IoU is below 0.5.
        warping_error: mean over the pairs of the warping error.
        mean_area, min_area, max_area: the share of pixels in the mask, over the frames.
        empty, full: share of frames whose mask covers under 0.5 % / over 90 % of the frame.
        frames, pairs: maps read and pairs of consecutive frames compared.
        ious, areas: per pair and per frame, in order.
    """

    median_iou: float
    flashes: float
    warping_error: float
    mean_area: float
    min_area: float
    max_area: float
    empty: float
    full: float
    frames: int
    pairs: int
    ious: tuple[float, ...]
    areas: tuple[float, ...]

    def to_json(self) -> dict[str, float | int]:
        """The summary as written by ``ianet-stream eval --video --json``."""
        return {
            "median_warped_iou": self.median_iou,
            "flashes": self.flashes,
            "warping_error": self.warping_error,
            "mean_area": self.mean_area,
            "min_area": self.min_area,
            "max_area": self.max_area,
            "empty": self.empty,
            "full": self.full,
            "frames": self.frames,
            "pairs": self.pairs,
        }


EMPTY_AREA = 0.005
FULL_AREA = 0.9


class StabilityAccumulator:
    """Temporal stability of one clip's maps, fed frame by frame in order.

    Args:
        flow: the motion-flow estimator, ``flow(previous, current)`` with BxHxWx3 uint8 RGB
            pictures returning Bx2xHxW motion of ``current`` since ``previous`` on
            ``current``'s grid (default ``project_motion()``: the pipeline's TV-L1).
        threshold: the mask threshold.
        occlusion_tolerance: mean absolute RGB difference (0..1) above which a pixel is
            occluded for the warping error.

    Example::

        accumulator = StabilityAccumulator()
        for picture, saliency in clip:  # HxWx3 uint8, HxW float in [0, 1]
            accumulator.update(picture, saliency)
        scores = accumulator.result()
    """

    def __init__(
        self,
        flow: MotionFlow | None = None,
        threshold: float = 0.5,
        occlusion_tolerance: float = 0.05,
    ) -> None:
        self.flow = flow or project_motion()
        self.threshold = threshold
        self.occlusion_tolerance = occlusion_tolerance
        self._previous: tuple[Tensor, Tensor] | None = None
        self._ious: list[float] = []
        self._errors: list[float] = []
        self._areas: list[float] = []

    def skip(self) -> None:
        """The next frame does not follow the last one (a missing map): no pair across."""
        self._previous = None

    def update(self, picture: Tensor, saliency: Tensor) -> None:
        """Add the next frame: HxWx3 uint8 RGB picture and its HxW map in [0, 1]."""
        picture, saliency = picture.unsqueeze(0), saliency.float().unsqueeze(0)
        self._areas.append(float((saliency >= self.threshold).float().mean()))
        if self._previous is not None:
            previous_picture, previous_map = self._previous
            motion = self.flow(previous_picture, picture).float()
            both = torch.cat([previous_map.unsqueeze(1), previous_picture.permute(0, 3, 1, 2)], 1)
            warped, inside = warp_previous(both.float(), motion)
            warped_map, warped_picture = warped[:, 0], warped[:, 1:]
            inside = inside[:, 0]
            self._ious.append(float(warped_iou(saliency, warped_map, inside, self.threshold)[0]))
            current = picture.permute(0, 3, 1, 2).float()
            difference = (current - warped_picture).abs().mean(1) / 255
            visible = inside & (difference <= self.occlusion_tolerance)
            squared = (saliency - warped_map) ** 2
            self._errors.append(float(squared[visible].mean()) if visible.any() else 0.0)
        self._previous = (picture, saliency)

    def result(self) -> StabilityScores:
        """The scores of the frames added so far."""
        ious, areas = np.array(self._ious), np.array(self._areas)
        if not len(areas):
            raise ValueError("no frame to score")
        return StabilityScores(
            median_iou=float(np.median(ious)) if len(ious) else float("nan"),
            flashes=float((ious < FLASH_IOU).mean()) if len(ious) else float("nan"),
            warping_error=float(np.mean(self._errors)) if self._errors else float("nan"),
            mean_area=float(areas.mean()),
            min_area=float(areas.min()),
            max_area=float(areas.max()),
            empty=float((areas < EMPTY_AREA).mean()),
            full=float((areas > FULL_AREA).mean()),
            frames=len(areas),
            pairs=len(ious),
            ious=tuple(ious.tolist()),
            areas=tuple(areas.tolist()),
        )
