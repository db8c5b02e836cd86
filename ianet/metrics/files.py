"""Scoring saliency-map PNG files against ground-truth PNG files.

Frames are matched by their path relative to a prediction and a ground-truth folder
(``<dataset>/<sequence>/<name>.png``; the reference layout's
``<dataset>/<sequence>/ground-truth/<name>.png`` maps to the prediction
``<dataset>/<sequence>/<name>.png``), or taken from triplet lists. Files are read and
decoded on a thread pool; on a CPU the same threads reduce each frame to its histogram
(``ianet.metrics.measures.ByteHistograms``), on a GPU the maps are batched by size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from itertools import groupby, islice
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ianet.errors import InputError
from ianet.metrics.accumulate import DatasetScores, SODAccumulator
from ianet.metrics.measures import (
    ByteHistograms,
    Protocol,
    byte_histogram_numpy,
    frame_scores,
    scores_from_histograms,
)
from ianet.metrics.temporal import DtSSDAccumulator, normalised_map

if TYPE_CHECKING:
    from ianet.data.lists import Sample

GT_FOLDER = "ground-truth"
T = TypeVar("T")


@dataclass(frozen=True)
class FramePair:
    """One frame to score: its GT file and the prediction file expected for it."""

    dataset: str
    sequence: str
    gt: Path
    pred: Path


def pairs_from_folders(
    pred_root: str | os.PathLike[str], gt_root: str | os.PathLike[str]
) -> list[FramePair]:
    """Every GT PNG under ``gt_root`` with the prediction path it asks for under ``pred_root``.

    The dataset is the first folder under the root, the sequence the folders below it
    (``a/b`` when nested, empty for files directly in the dataset folder). When the tree
    has ``ground-truth`` folders, only the PNGs inside them are GT, and that folder is left
    out of the prediction's path.

    Raises:
        InputError: a root is not a folder, or holds no GT PNG.
    """
    pred_root, gt_root = Path(pred_root), Path(gt_root)
    for role, root in (("ground-truth", gt_root), ("prediction", pred_root)):
        if not root.is_dir():
            raise InputError(f"{root}: no such {role} folder")
    files = sorted(path.relative_to(gt_root) for path in gt_root.rglob("*.[pP][nN][gG]"))
    if any(GT_FOLDER in rel.parts[:-1] for rel in files):
        files = [rel for rel in files if len(rel.parts) > 1 and rel.parts[-2] == GT_FOLDER]
    if not files:
        raise InputError(f"{gt_root}: no ground-truth PNG found")
    pairs = []
    for rel in files:
        folders = rel.parts[:-1]
        if folders and folders[-1] == GT_FOLDER:
            folders = folders[:-1]
        dataset = folders[0] if folders else gt_root.name
        pred = pred_root.joinpath(*folders, rel.name)
        pairs.append(FramePair(dataset, "/".join(folders[1:]), gt_root / rel, pred))
    return pairs


def pairs_from_samples(
    samples: Iterable[Sample], pred_root: str | os.PathLike[str]
) -> list[FramePair]:
    """Frames of triplet-list samples (``ianet.data.lists.Sample``): prediction at
    ``pred_root/<dataset>/<sequence>/<gt basename>``, as ``ianet-stream test`` writes it.

    Raises:
        InputError: a row has no ground truth.
    """
    pred_root = Path(pred_root)
    pairs, without_gt = [], []
    for sample in samples:
        if sample.gt is None:
            without_gt.append(sample.location)
            continue
        pred = pred_root / sample.dataset / sample.sequence / sample.gt.name
        pairs.append(FramePair(sample.dataset, sample.sequence, sample.gt, pred))
    if without_gt:
        raise InputError(
            f"{len(without_gt)} list row(s) without ground truth, which eval needs "
            f"(e.g. {', '.join(without_gt[:3])})"
        )
    return list(dict.fromkeys(pairs))  # a frame listed twice is scored once


def select_frames(pairs: Iterable[FramePair], protocol: Protocol) -> list[FramePair]:
    """The frames a protocol scores: all for ``pysod``; for ``davsod`` all but the first and
    the last (by GT file name) of each sequence, as the DAVSOD toolbox does."""
    pairs = list(pairs)
    if protocol == "pysod":
        return pairs

    def sequence(pair: FramePair) -> tuple[str, str]:
        return pair.dataset, pair.sequence

    ordered = sorted(pairs, key=lambda pair: (sequence(pair), pair.gt.name))
    return [pair for _, group in groupby(ordered, key=sequence) for pair in list(group)[1:-1]]


def missing_predictions(pairs: Iterable[FramePair]) -> list[FramePair]:
    """The frames whose prediction file does not exist."""
    return [pair for pair in pairs if not pair.pred.is_file()]


def read_map(path: str | os.PathLike[str]) -> Tensor:
    """An 8-bit grey HxW uint8 tensor from a PNG (colour and palette PNGs converted to grey
    with ITU-R 601 weights, 16-bit ones keep their high byte).

    Raises:
        InputError: the file cannot be read or is not a PNG.
    """
    try:
        with Image.open(path, formats=["PNG"]) as image:
            if image.mode.startswith("I"):  # 16-bit grey
                return torch.from_numpy((np.array(image).astype(np.uint32) >> 8).astype(np.uint8))
            return torch.from_numpy(np.array(image if image.mode == "L" else image.convert("L")))
    except (FileNotFoundError, PermissionError, IsADirectoryError) as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: not a readable PNG ({error})") from None


def resize_map(pred: Tensor, size: tuple[int, int]) -> Tensor:
    """HxW uint8 map resized to ``size`` (bilinear, antialiased, rounded to 8 bits)."""
    resized = TF.resize(pred[None, None].float(), list(size), antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8)[0, 0]


def load_pair(pair: FramePair) -> tuple[Tensor, Tensor]:
    """(prediction HxW uint8 at the GT's size, GT HxW bool binarised at > 128)."""
    gt = read_map(pair.gt) > 128
    pred = read_map(pair.pred)
    if pred.shape != gt.shape:
        pred = resize_map(pred, (gt.shape[0], gt.shape[1]))
    return pred, gt


def _loaded(
    pairs: Sequence[FramePair], load: Callable[[FramePair], T], workers: int, ahead: int
) -> Iterator[tuple[FramePair, T]]:
    """``load`` of each pair on a thread pool, in order, at most ``ahead`` in flight."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval-read")
    try:
        remaining = iter(pairs)
        pending: deque[tuple[FramePair, Future[T]]] = deque(
            (pair, pool.submit(load, pair)) for pair in islice(remaining, ahead)
        )
        while pending:
            pair, future = pending.popleft()
            for following in islice(remaining, 1):
                pending.append((following, pool.submit(load, following)))
            yield pair, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run with one intra-op torch thread, then restore the setting.

    On a CPU the reading threads already use every core, and torch's parallel regions on
    small tensors are slow (much slower on a busy machine); one torch thread is fastest.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def evaluate(
    pairs: Sequence[FramePair],
    protocol: Protocol = "davsod",
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, DatasetScores]:
    """Score the given frames (all of them: see ``select_frames`` for a protocol's choice).

    On a CPU each reading thread also reduces its frames to histograms (with NumPy) and
    the measures are computed from batches of histograms, with one torch thread (the
    setting is restored on return); on a GPU the maps themselves are batched (by size) and
    reduced there.

    Args:
        pairs: the frames; every prediction file must exist.
        protocol: ``"davsod"`` or ``"pysod"`` (see ``ianet.metrics``).
        device: where the measures are computed; files are decoded on the CPU.
        batch_size: frames scored together.
        workers: reading threads (default: the CPU count, at most 8).
        progress: called with the number of frames scored after each batch.

    Returns:
        Scores per dataset, in the order of their first frame in ``pairs``, with dtSSD
        (``ianet.metrics.temporal``) over each sequence's consecutive frames (ordered by
        GT file name) where a sequence has two or more.

    Raises:
        InputError: no frames, or a file is missing or unreadable.
    """
    if not pairs:
        raise InputError("no frame to score")
    device = torch.device(device)
    workers = workers or min(8, os.cpu_count() or 1)
    accumulator = SODAccumulator(protocol)
    on_cpu = device.type == "cpu"

    def score(batch: list[tuple[FramePair, ByteHistograms | tuple[Tensor, Tensor]]]) -> None:
        items = [item for _, item in batch]
        if on_cpu:
            scores = scores_from_histograms(ByteHistograms.cat(items), protocol)
        else:
            preds = torch.stack([pred for pred, _ in items]).to(device)
            gts = torch.stack([gt for _, gt in items]).to(device)
            scores = frame_scores(preds, gts, protocol)
        sequences = [pair.sequence for pair, _ in batch]
        accumulator.add(scores, sequences, [pair.dataset for pair, _ in batch])
        if progress is not None:
            progress(len(batch))

    def load_with_residual(
        pair: FramePair,
    ) -> tuple[ByteHistograms | tuple[Tensor, Tensor], Tensor]:
        pred, gt = load_pair(pair)
        residual = normalised_map(pred) - gt.float()
        if on_cpu:
            return byte_histogram_numpy(pred.numpy(), gt.numpy(), protocol), residual
        return (pred, gt), residual

    ordered = sorted(pairs, key=lambda pair: (pair.dataset, pair.sequence, pair.gt.name))
    changes = DtSSDAccumulator()
    waiting: dict[tuple[int, ...], list] = {}
    with _one_torch_thread() if on_cpu else nullcontext():
        loaded = _loaded(
            ordered, load_with_residual, workers, ahead=max(2 * batch_size, 2 * workers)
        )
        for pair, (item, residual) in loaded:
            changes.add(pair.dataset, pair.sequence, residual)
            size = () if on_cpu else tuple(item[1].shape)
            batch = waiting.setdefault(size, [])
            batch.append((pair, item))
            if len(batch) == batch_size:
                score(waiting.pop(size))
        for batch in waiting.values():
            score(batch)
    scores = accumulator.result()
    dtssd = changes.result(protocol)
    return {
        name: replace(scores[name], dtssd=dtssd.get(name, float("nan")))
        for name in dict.fromkeys(pair.dataset for pair in pairs)
    }
