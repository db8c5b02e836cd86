"""Averaging per-frame measures into per-dataset scores, as each protocol does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ianet.metrics.measures import LEVELS, PROTOCOLS, FrameScores, Protocol, frame_scores

_SCALARS = 4  # S, MAE, adaptive F, adaptive E: the first columns of FrameScores.packed()


@dataclass(frozen=True)
class DatasetScores:
    """The scores of one dataset; curves have 256 points, index k for threshold k / 255.

    ``dtssd``: RobustVideoMatting's dtSSD (``ianet.metrics.temporal``), NaN when not
    computed (``SODAccumulator`` does not; ``evaluate`` does) or without consecutive frames.
    """

    s_measure: float
    max_f: float
    mean_f: float
    adaptive_f: float
    max_e: float
    mean_e: float
    adaptive_e: float
    mae: float
    frames: int
    sequences: int
    precision: tuple[float, ...] = field(repr=False)
    recall: tuple[float, ...] = field(repr=False)
    f_curve: tuple[float, ...] = field(repr=False)
    e_curve: tuple[float, ...] = field(repr=False)
    dtssd: float = float("nan")

    def to_json(self) -> dict[str, float | int]:
        """The summary as written by ``ianet-stream eval --json`` (``dtSSD`` when known)."""
        dtssd = {} if math.isnan(self.dtssd) else {"dtSSD": self.dtssd}
        return {
            "S": self.s_measure,
            "maxF": self.max_f,
            "meanF": self.mean_f,
            "adpF": self.adaptive_f,
            "maxE": self.max_e,
            "meanE": self.mean_e,
            "adpE": self.adaptive_e,
            "MAE": self.mae,
            **dtssd,
            "frames": self.frames,
        }


def _as_names(names: str | Sequence[str], batch: int, what: str) -> list[str]:
    if isinstance(names, str):
        return [names] * batch
    names = list(names)
    if len(names) != batch:
        raise ValueError(f"{len(names)} {what} names for a batch of {batch}")
    return names


class SODAccumulator:
    """Collects frame measures and averages them per dataset.

    ``protocol="pysod"`` averages over all frames of a dataset; ``"davsod"`` averages the
    frames of each sequence, then the sequences. (Which frames to score, e.g. DAVSOD's
    first/last-frame skipping, is the caller's choice: see ``ianet.metrics.select_frames``.)

    Example (a validation S-measure)::

        accumulator = SODAccumulator("pysod")
        for pred, gt in batches:  # pred BxHxW float in [0, 1], gt BxHxW bool
            accumulator.update(pred, gt)
        score = accumulator.result()["all"].s_measure
    """

    def __init__(self, protocol: Protocol = "davsod") -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        self.protocol: Protocol = protocol
        self._sums: dict[tuple[str, str], Tensor] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._sequences: dict[str, set[str]] = {}

    def update(
        self,
        pred: Tensor,
        gt: Tensor,
        sequence: str | Sequence[str] = "",
        dataset: str | Sequence[str] = "all",
    ) -> FrameScores:
        """Score a batch (see ``frame_scores`` for the inputs) and add it; returns its scores.

        ``sequence`` and ``dataset`` name the group of every frame (one name for the whole
        batch, or one per frame).
        """
        scores = frame_scores(pred, gt, self.protocol)
        self.add(scores, sequence, dataset)
        return scores

    def add(
        self,
        scores: FrameScores,
        sequence: str | Sequence[str] = "",
        dataset: str | Sequence[str] = "all",
    ) -> None:
        """Add frames already scored with this accumulator's protocol."""
        packed = scores.packed()
        batch = packed.shape[0]
        sequences = _as_names(sequence, batch, "sequence")
        datasets = _as_names(dataset, batch, "dataset")
        keys = [
            (name, seq if self.protocol == "davsod" else "")
            for name, seq in zip(datasets, sequences, strict=True)
        ]
        for name, seq in zip(datasets, sequences, strict=True):
            self._sequences.setdefault(name, set()).add(seq)
        for key in dict.fromkeys(keys):
            rows = [i for i, other in enumerate(keys) if other == key]
            part = packed[rows].sum(0)
            self._sums[key] = self._sums[key] + part if key in self._sums else part
            self._counts[key] = self._counts.get(key, 0) + len(rows)

    def result(self) -> dict[str, DatasetScores]:
        """Scores per dataset name, in the order the datasets were first seen."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for key in self._sums:
            groups.setdefault(key[0], []).append(key)
        return {name: self._dataset(name, keys) for name, keys in groups.items()}

    def _dataset(self, name: str, keys: list[tuple[str, str]]) -> DatasetScores:
        means = torch.stack([self._sums[key] / self._counts[key] for key in keys]).mean(0)
        means = means.cpu()
        s_measure, mae, adaptive_f, adaptive_e = means[:_SCALARS].tolist()
        precision, recall, f_curve, e_curve = means[_SCALARS:].view(4, LEVELS)
        return DatasetScores(
            s_measure=s_measure,
            max_f=float(f_curve.max()),
            mean_f=float(f_curve.mean()),
            adaptive_f=adaptive_f,
            max_e=float(e_curve.max()),
            mean_e=float(e_curve.mean()),
            adaptive_e=adaptive_e,
            mae=mae,
            frames=sum(self._counts[key] for key in keys),
            sequences=len(self._sequences[name]),
            precision=tuple(precision.tolist()),
            recall=tuple(recall.tolist()),
            f_curve=tuple(f_curve.tolist()),
            e_curve=tuple(e_curve.tolist()),
        )
