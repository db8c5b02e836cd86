"""Per-frame saliency measures, vectorised in torch over a batch of maps.

Every measure of a frame follows from a few sums over its pixels grouped into eight
cells: the four quadrants around the GT centroid (S-measure's region term) times GT
foreground / background. A float map is summed pixel by pixel. An 8-bit map has at most
256 values, so it is first reduced to a histogram over (cell, byte value), one pass over
its pixels, and every sum is then taken over the 2,048 histogram bins instead.

Threshold curves have 256 points, index ``k`` for threshold ``k / 255``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Protocol = Literal["davsod", "pysod"]
PROTOCOLS: tuple[Protocol, ...] = ("davsod", "pysod")
EPS = float(np.spacing(1))  # MATLAB's eps, which both toolboxes add to denominators
ALPHA = 0.5  # S-measure: weight of the object term
BETA2 = 0.3  # F-measure: beta^2
LEVELS = 256  # thresholds k / 255, k = 0..255
_CELLS = 8  # quadrant * 2 + gt
_F64 = torch.float64


@dataclass(frozen=True)
class FrameScores:
    """The measures of B frames; curves are (B, 256), index k for threshold k / 255."""

    s_measure: Tensor
    mae: Tensor
    adaptive_f: Tensor
    adaptive_e: Tensor
    precision: Tensor
    recall: Tensor
    f_curve: Tensor
    e_curve: Tensor

    def packed(self) -> Tensor:
        """(B, 4 + 4 * 256) float64: S, MAE, adaptive F, adaptive E, then P, R, F, E curves."""
        scalars = torch.stack([self.s_measure, self.mae, self.adaptive_f, self.adaptive_e], 1)
        curves = [self.precision, self.recall, self.f_curve, self.e_curve]
        return torch.cat([scalars, *curves], 1)


@dataclass(frozen=True)
class _Samples:
    """Weighted prediction values of B frames, each in one cell; all tensors (B, M).

    ``passed``: how many thresholds ``k / 255`` the value reaches (value >= threshold);
    ``passed_strict``: how many it exceeds (value > threshold). ``adaptive``, when known
    exactly: whether the value reaches ``min(2 * mean, 1)`` and exceeds ``2 * mean``.
    """

    value: Tensor
    weight: Tensor | None  # None: 1 for every sample
    cell: Tensor
    passed: Tensor
    passed_strict: Tensor
    adaptive: tuple[Tensor, Tensor] | None = None


def _as_batch(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    if pred.dim() == 2:
        pred, gt = pred.unsqueeze(0), gt.unsqueeze(0)
    if pred.dim() != 3 or pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)}: expected BxHxW")
    if gt.dtype != torch.bool:
        gt = gt > 128 if gt.dtype == torch.uint8 else gt > 0.5
    return pred, gt.to(pred.device)


def split_from_profiles(rows: Tensor, cols: Tensor, protocol: Protocol) -> tuple[Tensor, Tensor]:
    """Rows above and columns left of the GT centroid, (B,) int64 each.

    Args:
        rows, cols: (B, H) and (B, W) foreground pixel counts per GT row and column.

    PySODMetrics rounds the 0-based centroid half to even and adds one; the MATLAB code
    rounds the 1-based centroid half away from zero. Without foreground any split does
    (the region term is not used then).
    """
    rows, cols = rows.long(), cols.long()
    area = rows.sum(1)
    safe_area = area.clamp(min=1)
    row_sum = (rows * torch.arange(rows.shape[1], device=rows.device)).sum(1)
    col_sum = (cols * torch.arange(cols.shape[1], device=cols.device)).sum(1)
    if protocol == "pysod":
        split_y = torch.round(row_sum.to(_F64) / safe_area).long() + 1
        split_x = torch.round(col_sum.to(_F64) / safe_area).long() + 1
    else:
        split_y = (2 * (row_sum + area) + area) // (2 * safe_area)
        split_x = (2 * (col_sum + area) + area) // (2 * safe_area)
    return split_y, split_x


@dataclass(frozen=True)
class ByteHistograms:
    """What the measures need of B 8-bit frames: pixel counts per cell and byte value.

    ``counts`` (B, 8, 256): cell = quadrant * 2 + GT (quadrants LT, RT, LB, RB around the
    GT centroid: rows ``< split_y`` are top, columns ``< split_x`` left). The other fields
    are (B,) int64.
    """

    counts: Tensor
    split_y: Tensor
    split_x: Tensor
    height: Tensor
    width: Tensor

    def tensors(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, item.name) for item in fields(self))

    @staticmethod
    def cat(parts: Sequence[ByteHistograms]) -> ByteHistograms:
        """The frames of several histograms, in order."""
        columns = zip(*(part.tensors() for part in parts), strict=True)
        return ByteHistograms(*(torch.cat(column) for column in columns))


def byte_histograms(pred: Tensor, gt: Tensor, protocol: Protocol) -> ByteHistograms:
    """Histograms of BxHxW uint8 maps against BxHxW bool GT, on their device (for a GPU;
    ``byte_histogram_numpy`` is the faster way on a CPU)."""
    batch, height, width = pred.shape
    device = pred.device
    split_y, split_x = split_from_profiles(gt.sum(2), gt.sum(1), protocol)
    bottom = (torch.arange(height, device=device) >= split_y[:, None]).to(torch.int16)
    right = (torch.arange(width, device=device) >= split_x[:, None]).to(torch.int16)
    cell = bottom[:, :, None] * 4 + right[:, None, :] * 2 + gt
    code = (cell * LEVELS + pred).reshape(batch, -1).long()
    counts = torch.zeros(batch, _CELLS * LEVELS, dtype=torch.int64, device=device)
    counts.scatter_add_(1, code, torch.ones((), dtype=torch.int64, device=device).expand_as(code))
    size = torch.tensor([height, width], device=device).expand(batch, 2)
    return ByteHistograms(counts.view(batch, _CELLS, LEVELS), split_y, split_x, *size.unbind(1))


def byte_histogram_numpy(pred: np.ndarray, gt: np.ndarray, protocol: Protocol) -> ByteHistograms:
    """``byte_histograms`` of one HxW uint8 map and HxW bool GT, computed with NumPy.

    The same counts; NumPy's integer reductions are several times faster than torch's on
    a CPU, and release the GIL, so reading threads can each reduce their own frames.
    """
    height, width = gt.shape
    gt_bytes = gt.view(np.uint8)
    small = np.uint16 if max(height, width) < 2**16 else np.int64  # sums several times faster
    rows = torch.from_numpy(gt_bytes.sum(1, dtype=small).astype(np.int64))[None]
    cols = torch.from_numpy(gt_bytes.sum(0, dtype=small).astype(np.int64))[None]
    split_y, split_x = split_from_profiles(rows, cols, protocol)
    top, left = int(split_y), int(split_x)
    code = gt_bytes.astype(np.uint16)
    code <<= 8
    code[top:] += 4 * LEVELS
    code[:, left:] += 2 * LEVELS
    code |= pred
    counts = np.bincount(code.ravel(), minlength=_CELLS * LEVELS)
    size = torch.tensor([[height], [width]])
    return ByteHistograms(torch.from_numpy(counts).view(1, _CELLS, LEVELS), split_y, split_x, *size)


def _pixel_samples(pred: Tensor, gt: Tensor, split_y: Tensor, split_x: Tensor, protocol: Protocol):
    """Samples of float maps: one per pixel, weight 1."""
    batch, height, width = pred.shape
    rows = torch.arange(height, device=pred.device)
    cols = torch.arange(width, device=pred.device)
    bottom = (rows >= split_y[:, None]).long()
    right = (cols >= split_x[:, None]).long()
    cell = (bottom[:, :, None] * 4 + right[:, None, :] * 2 + gt).reshape(batch, -1)
    value = pred.to(_F64).reshape(batch, -1)
    if protocol == "pysod":
        # numpy's (pred * 255).astype(uint8): 8-bit bins, threshold k reached from bin k
        passed = ((value * 255).long() + 1).clamp(0, LEVELS)
        passed_strict = passed
    else:
        thresholds = torch.arange(LEVELS, dtype=_F64, device=pred.device) / 255
        passed = torch.bucketize(value, thresholds, right=True)
        passed_strict = torch.bucketize(value, thresholds)
    return _Samples(value, None, cell, passed, passed_strict)


def _level_samples(counts: Tensor, protocol: Protocol) -> _Samples:
    """Samples of 8-bit maps: one per (cell, byte value), weighted by its pixel count.

    The map is normalised as both toolboxes do: ``v / 255``, then min-max scaled to [0, 1]
    unless it is constant; in PySODMetrics' floating-point steps for ``pysod``, exactly for
    ``davsod`` (whose thresholds, adaptive ones included, are compared in integers).
    """
    batch = counts.shape[0]
    device = counts.device
    present = counts.sum(1) > 0
    byte = torch.arange(LEVELS, device=device)
    low = torch.where(present, byte, LEVELS).amin(1, keepdim=True)
    high = torch.where(present, byte, -1).amax(1, keepdim=True)
    constant = high == low
    cell = torch.arange(_CELLS, device=device).repeat_interleave(LEVELS).expand(batch, -1)
    weight = counts.reshape(batch, -1).to(_F64)
    if protocol == "pysod":
        scaled = byte.to(_F64) / 255
        low_f, high_f = low.to(_F64) / 255, high.to(_F64) / 255
        span = torch.where(constant, 1.0, high_f - low_f)
        value = torch.where(constant, scaled, (scaled - low_f) / span)
        passed = ((value * 255).long() + 1).clamp(0, LEVELS)
        return _Samples(value.repeat(1, _CELLS), weight, cell, *(passed.repeat(1, _CELLS),) * 2)
    # exact: value = key / scale, every threshold compared in integers
    key = torch.where(constant, byte, byte - low).clamp(min=0)
    scale = torch.where(constant, 255, high - low)
    value = key.to(_F64) / scale
    passed = (255 * key // scale + 1).clamp(max=LEVELS)
    passed_strict = ((255 * key + scale - 1) // scale).clamp(max=LEVELS)
    # value >= min(2 * mean, 1) and value > 2 * mean, times pixels * scale
    pixels = counts.sum((1, 2))[:, None]
    doubled_mean = 2 * (counts.sum(1) * key).sum(1, keepdim=True)
    at_least = pixels * key >= torch.minimum(doubled_mean, pixels * scale)
    above = pixels * key > doubled_mean
    return _Samples(
        value.repeat(1, _CELLS),
        weight,
        cell,
        passed.repeat(1, _CELLS),
        passed_strict.repeat(1, _CELLS),
        (at_least.repeat(1, _CELLS), above.repeat(1, _CELLS)),
    )


@lru_cache(maxsize=256)
def _numpy_mean_is_exact(
    height: int, width: int, rows: tuple[int, int], cols: tuple[int, int], value: float
) -> bool:
    """Whether NumPy's mean of a constant block of a (height, width) float64 array is exact.

    PySODMetrics scores a quadrant where prediction and GT are both constant 1 when the
    prediction's deviation from its NumPy mean is exactly zero, else 0; the mean's rounding
    decides, so we ask NumPy the same question.
    """
    block = np.full((height, width), value)[rows[0] : rows[1], cols[0] : cols[1]]
    return bool(np.mean(block) == value)


def _f_measure(true_pos: Tensor, pred_pos: Tensor, fg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    precision = true_pos / pred_pos.clamp(min=1)
    recall = true_pos / fg.clamp(min=1)
    numerator = (1 + BETA2) * precision * recall
    denominator = torch.where(numerator == 0, 1.0, BETA2 * precision + recall)
    return precision, recall, numerator / denominator


def _e_measure(true_pos: Tensor, pred_pos: Tensor, fg: Tensor, area: Tensor) -> Tensor:
    """Enhanced-alignment measure of binary maps from their pixel counts."""
    false_neg = fg - true_pos
    false_pos = pred_pos - true_pos
    true_neg = area - pred_pos - false_neg
    pred_mean, gt_mean = pred_pos / area, fg / area

    def enhanced(pred_value: Tensor, gt_value: Tensor) -> Tensor:
        align = 2 * pred_value * gt_value / (pred_value**2 + gt_value**2 + EPS)
        return (align + 1) ** 2 / 4

    total = (
        true_pos * enhanced(1 - pred_mean, 1 - gt_mean)
        + false_pos * enhanced(1 - pred_mean, -gt_mean)
        + false_neg * enhanced(-pred_mean, 1 - gt_mean)
        + true_neg * enhanced(-pred_mean, -gt_mean)
    )
    total = torch.where(fg == 0, area - pred_pos, torch.where(fg == area, pred_pos, total))
    return total / (area - 1 + EPS)


def _scores(
    samples: _Samples,
    split_y: Tensor,
    split_x: Tensor,
    height: Tensor,
    width: Tensor,
    protocol: Protocol,
) -> FrameScores:
    """All measures from the samples; split and size are (B,) int64."""
    value, weight, cell = samples.value, samples.weight, samples.cell
    batch = value.shape[0]
    device = value.device
    area = (height * width).to(_F64)

    def cell_sum(values: Tensor, index: Tensor = cell, cells: int = _CELLS) -> Tensor:
        return torch.zeros(batch, cells, dtype=_F64, device=device).scatter_add_(1, index, values)

    def weighted(values: Tensor) -> Tensor:
        return values if weight is None else weight * values

    def cell_extreme(reduce: str, empty: float) -> Tensor:
        start = torch.full((batch, _CELLS), empty, dtype=_F64, device=device)
        values = value if weight is None else torch.where(weight > 0, value, empty)
        return start.scatter_reduce_(1, cell, values, reduce).view(batch, 4, 2)

    ones = torch.ones((), dtype=_F64, device=device).expand_as(value)
    count = cell_sum(weighted(ones)).view(batch, 4, 2)
    total = cell_sum(weighted(value)).view(batch, 4, 2)
    cell_mean = total / count.clamp(min=1)
    deviation = value - cell_mean.view(batch, _CELLS).gather(1, cell)
    spread = cell_sum(weighted(deviation**2)).view(batch, 4, 2)  # about each cell's mean
    low, high = cell_extreme("amin", float("inf")), cell_extreme("amax", float("-inf"))

    def pooled(dim: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Cells pooled over ``dim`` (2: per quadrant, 1: per GT class): count, sum, mean,
        sum of squared deviations from that mean (exactly 0 if constant), constant."""
        pool_count, pool_total = count.sum(dim), total.sum(dim)
        pool_mean = pool_total / pool_count.clamp(min=1)
        between = count * (cell_mean - pool_mean.unsqueeze(dim)) ** 2
        constant = low.amin(dim) == high.amax(dim)
        squares = torch.where(constant, 0.0, (spread + between).sum(dim))
        return pool_count, pool_total, pool_mean, squares, constant

    # per quadrant: the region term's SSIM
    q_count, _, q_mean, sxx, q_constant = pooled(2)
    q_fg = count[:, :, 1]
    q_gt_mean = q_fg / q_count.clamp(min=1)
    first = total - count * q_mean[:, :, None]  # sum of (pred - quadrant mean) per cell
    sxy = torch.where(
        q_constant, 0.0, (1 - q_gt_mean) * first[:, :, 1] - q_gt_mean * first[:, :, 0]
    )
    syy = q_fg * (1 - q_gt_mean) ** 2 + (q_count - q_fg) * q_gt_mean**2
    denominator = q_count - 1 + EPS
    alpha = 4 * q_mean * q_gt_mean * (sxy / denominator)
    beta = (q_mean**2 + q_gt_mean**2) * (sxx / denominator + syy / denominator)
    ssim = torch.where(alpha != 0, alpha / (beta + EPS), (beta == 0).to(_F64))
    if protocol == "pysod":
        flagged = q_constant & (q_count > 0) & ((q_fg == 0) | (q_fg == q_count))
        if bool(flagged.any()):
            geometry = torch.stack([split_y, split_x, height, width], 1)
            ssim = _pysod_constant_blocks(ssim, flagged, low.amin(2), geometry)
    ssim = torch.where(q_count > 0, ssim, 0.0)
    top, left = split_y.to(_F64), split_x.to(_F64)
    w_lt = left * top / area
    w_rt = top * (width - left) / area
    w_lb = (height - top) * left / area
    w_rb = 1 - w_lt - w_rt - w_lb
    region = (ssim * torch.stack([w_lt, w_rt, w_lb, w_rb], 1)).sum(1)

    # per GT class: the object term
    c_count, c_total, c_mean, c_sxx, _ = pooled(1)
    c_std = (c_sxx / (c_count - 1).clamp(min=1)).sqrt()
    fg, bg = c_count[:, 1], c_count[:, 0]
    fg_mean = c_mean[:, 1]
    bg_mean = (bg - c_total[:, 0]) / bg.clamp(min=1)  # of 1 - prediction
    fg_score = 2 * fg_mean / (fg_mean**2 + 1 + c_std[:, 1] + EPS)
    bg_score = 2 * bg_mean / (bg_mean**2 + 1 + c_std[:, 0] + EPS)
    gt_mean = fg / area
    objects = fg_score * gt_mean + bg_score * (1 - gt_mean)

    mean = c_total.sum(1) / area
    combined = (ALPHA * objects + (1 - ALPHA) * region).clamp(min=0)
    s_measure = torch.where(fg == 0, 1 - mean, torch.where(fg == area, mean, combined))
    mae = (c_total[:, 0] + fg - c_total[:, 1]) / area

    # thresholds: counts of foreground / background pixels reaching each
    gt_class = cell % 2

    def reached(passed: Tensor) -> Tensor:
        bins = cell_sum(weighted(ones), gt_class * (LEVELS + 1) + passed, 2 * (LEVELS + 1))
        from_top = bins.view(batch, 2, LEVELS + 1).flip(2).cumsum(2).flip(2)
        return from_top[:, :, 1:]  # (B, 2, 256): pixels of each GT class reaching k / 255

    ge = reached(samples.passed)
    precision, recall, f_curve = _f_measure(ge[:, 1], ge.sum(1), fg[:, None])
    gt_strict = ge if protocol == "pysod" else reached(samples.passed_strict)
    e_curve = _e_measure(gt_strict[:, 1], gt_strict.sum(1), fg[:, None], area[:, None])

    def selected(hit: Tensor) -> Tensor:
        return cell_sum(weighted(hit.to(_F64)), gt_class, 2)

    # PySODMetrics binarises E like F; the MATLAB code uses value > 2 * mean, uncapped
    if samples.adaptive is None:
        threshold = 2 * mean[:, None]
        at_least, above = value >= threshold.clamp(max=1), value > threshold
    else:
        at_least, above = samples.adaptive
    adaptive_ge = selected(at_least)
    adaptive_f = _f_measure(adaptive_ge[:, 1], adaptive_ge.sum(1), fg)[2]
    adaptive_e_hits = adaptive_ge if protocol == "pysod" else selected(above)
    adaptive_e = _e_measure(adaptive_e_hits[:, 1], adaptive_e_hits.sum(1), fg, area)
    return FrameScores(s_measure, mae, adaptive_f, adaptive_e, precision, recall, f_curve, e_curve)


def _pysod_constant_blocks(
    ssim: Tensor, flagged: Tensor, values: Tensor, geometry: Tensor
) -> Tensor:
    """Replay PySODMetrics' rounding on quadrants where prediction and GT are constant.

    Args:
        ssim, flagged, values: (B, 4) scores, which quadrants to replay, their value.
        geometry: (B, 4) split_y, split_x, height, width.
    """
    ssim = ssim.clone()
    geometry = geometry.tolist()
    for b, q in flagged.nonzero().tolist():
        top, left, height, width = geometry[b]
        rows = (0, top) if q < 2 else (top, height)
        cols = (0, left) if q % 2 == 0 else (left, width)
        exact = _numpy_mean_is_exact(height, width, rows, cols, float(values[b, q]))
        ssim[b, q] = 1.0 if exact else 0.0
    return ssim


def scores_from_histograms(histograms: ByteHistograms, protocol: Protocol) -> FrameScores:
    """All measures of 8-bit frames from their histograms (see ``byte_histograms``)."""
    samples = _level_samples(histograms.counts, protocol)
    return _scores(samples, *histograms.tensors()[1:], protocol)


def frame_scores(pred: Tensor, gt: Tensor, protocol: Protocol = "pysod") -> FrameScores:
    """All measures of a batch of frames.

    Args:
        pred: BxHxW (or HxW) saliency maps: uint8 (normalised as the protocol does:
            ``v / 255`` then min-max scaled unless constant) or float in [0, 1] (used as
            they are, like PySODMetrics' ``normalize=False``).
        gt: BxHxW ground truth, bool (uint8 is binarised at > 128).
        protocol: ``"pysod"`` or ``"davsod"`` (see ``ianet.metrics``).

    Returns:
        FrameScores of float64 tensors on pred's device.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    pred, gt = _as_batch(pred, gt)
    if pred.dtype == torch.uint8 and pred.device.type == "cpu":
        frames = zip(pred.numpy(), gt.numpy(), strict=True)
        parts = [byte_histogram_numpy(map_, truth, protocol) for map_, truth in frames]
        return scores_from_histograms(ByteHistograms.cat(parts), protocol)
    if pred.dtype == torch.uint8:
        return scores_from_histograms(byte_histograms(pred, gt, protocol), protocol)
    if not pred.is_floating_point():
        raise ValueError(f"pred dtype {pred.dtype}: expected uint8 or a float type")
    batch, height, width = pred.shape
    split_y, split_x = split_from_profiles(gt.sum(2), gt.sum(1), protocol)
    samples = _pixel_samples(pred, gt, split_y, split_x, protocol)
    size = torch.tensor([height, width], device=pred.device).expand(batch, 2)
    return _scores(samples, split_y, split_x, *size.unbind(1), protocol)


def s_measure(pred: Tensor, gt: Tensor, protocol: Protocol = "pysod") -> Tensor:
    """Structure measure (alpha 0.5) of each frame, (B,)."""
    return frame_scores(pred, gt, protocol).s_measure


def f_measure_curve(
    pred: Tensor, gt: Tensor, protocol: Protocol = "pysod"
) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F-measure (beta^2 0.3) at thresholds k / 255, each (B, 256)."""
    scores = frame_scores(pred, gt, protocol)
    return scores.precision, scores.recall, scores.f_curve


def e_measure_curve(pred: Tensor, gt: Tensor, protocol: Protocol = "pysod") -> Tensor:
    """Enhanced-alignment measure at thresholds k / 255, (B, 256)."""
    return frame_scores(pred, gt, protocol).e_curve


def mae(pred: Tensor, gt: Tensor, protocol: Protocol = "pysod") -> Tensor:
    """Mean absolute error of each frame, (B,)."""
    return frame_scores(pred, gt, protocol).mae
