"""Test-set saliency maps: every row of triplet lists through a ``Predictor``, as PNGs.

Each map is written to ``out/<dataset>/<sequence>/<name>`` at its frame's original size,
``<name>`` being the GT's basename (or, for rows without GT, the image's stem + ``.png``),
computed as the reference test procedure does (``ianet.Predictor``: resize, normalise,
sigmoid, per-frame min-max, bilinear resize back), as 8-bit grey.

Frames are decoded by DataLoader workers while the model runs; a batch may mix frame sizes
and rows with and without flow (the predictor resizes every frame to its input size); PNGs
are encoded on a thread pool and written under a temporary name, then renamed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader

from ianet.atomic import atomic_output
from ianet.data.dataset import FrameDataset
from ianet.data.lists import Sample
from ianet.errors import InputError

Item = dict[str, Tensor | int | None]


def map_path(out: Path, sample: Sample) -> Path:
    """Where the map of ``sample`` goes: ``out/<dataset>/<sequence>/<output name>``."""
    return out / sample.dataset / sample.sequence / sample.output_name


def check_outputs(samples: Sequence[Sample], out: Path) -> list[Path]:
    """The map path of every sample, in order.

    Raises:
        InputError: two rows would write the same file (naming one such file and its rows).
    """
    paths = [map_path(out, sample) for sample in samples]
    repeated = [path for path, count in Counter(paths).items() if count > 1]
    if repeated:
        clashing = [s.location for s, p in zip(samples, paths, strict=True) if p == repeated[0]]
        raise InputError(
            f"{len(repeated)} output file(s) written by more than one row, e.g. {repeated[0]} "
            f"by {', '.join(clashing)}"
        )
    return paths


def to_8bit(saliency: Tensor) -> np.ndarray:
    """HxW float in [0, 1] -> HxW uint8 (x255, rounded)."""
    return (saliency.float() * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def _write_png(path: Path, array: np.ndarray) -> None:
    with atomic_output(path, durable=False) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


def write_test_maps(
    samples: Sequence[Sample],
    predictor: Callable[[list[Tensor], list[Tensor | None]], list[Tensor]],
    out: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write the saliency map of every sample; returns the paths in list order.

    Args:
        samples: rows of triplet lists (GT optional).
        predictor: an ``ianet.Predictor``: lists of HxWx3 uint8 frames and flow images (None:
            no flow) -> list of HxW saliency maps in [0, 1].
        out: the output root.
        batch_size: most frames per predictor call.
        workers: decoding processes (0: decode in this process).
        progress: called with the number of frames of each finished batch.

    Raises:
        InputError: two rows would write the same file (``check_outputs``).
    """
    out = Path(out)
    paths = check_outputs(samples, out)
    loader = DataLoader(FrameDataset(samples), batch_size=None, num_workers=workers)
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=2) as writers:
        items = iter(loader)
        while batch := list(islice(items, batch_size)):
            frames = [item["frame"] for item in batch]
            flows = [item["flow"] for item in batch]
            with torch.inference_mode():
                maps = predictor(frames, flows)
            for item, saliency in zip(batch, maps, strict=True):
                path = paths[int(item["index"])]  # type: ignore[arg-type]
                pending.append(writers.submit(_write_png, path, to_8bit(saliency)))
            if progress is not None:
                progress(len(batch))
        for future in pending:
            future.result()
    return paths
