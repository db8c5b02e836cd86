"""Throughput of ``ianet.metrics.evaluate`` against PySODMetrics' standard loop.

Generates N saliency maps and ground truths at 854x480 (smooth random blobs, in sequences
of 50 frames), writes them as PNGs to a temporary folder, then scores them from the files
twice in the same run:

- ours: ``evaluate(pairs_from_folders(...), protocol="pysod")``, the whole ``eval`` path
  (threaded PNG decoding, batched torch measures);
- PySODMetrics: ``cv2.imread`` of both files, then ``step`` of Smeasure, Fmeasure,
  Emeasure and MAE, one frame at a time.

The two alternate in chunks of 100 frames, so that both see the same share of a shared
machine. Prints frames/s and CPU time per frame of each, the ratios, and the largest
difference between the two results.

    .venv/bin/python benchmarks/metrics.py [--maps 1000] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ianet.device import describe_cpu
from ianet.metrics import evaluate, pairs_from_folders

SEQUENCE_LENGTH = 50


def smooth_field(generator: torch.Generator, count: int, height: int, width: int) -> torch.Tensor:
    """(count, height, width) smooth random fields in [0, 1]: upsampled coarse noise."""
    coarse = torch.rand(count, 1, 6, 10, generator=generator)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    low = field.amin((2, 3), keepdim=True)
    high = field.amax((2, 3), keepdim=True)
    return ((field - low) / (high - low))[:, 0]


def write_maps(root: Path, maps: int, height: int, width: int, seed: int) -> None:
    """GT and prediction PNGs under ``root/gt`` and ``root/pred`` (dataset ``bench``)."""
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, maps, SEQUENCE_LENGTH):
        count = min(SEQUENCE_LENGTH, maps - start)
        sequence = f"seq{start // SEQUENCE_LENGTH:03d}"
        truth = smooth_field(generator, count, height, width)
        noise = smooth_field(generator, count, height, width)
        gt = (truth > 0.6).to(torch.uint8) * 255
        pred = ((0.75 * truth + 0.25 * noise) * 255).round().to(torch.uint8)
        for folder in ("gt", "pred"):
            (root / folder / "bench" / sequence).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            name = f"{index:05d}.png"
            for kind, image in (("gt", gt[index]), ("pred", pred[index])):
                path = root / kind / "bench" / sequence / name
                Image.fromarray(image.numpy()).save(path, compress_level=1)


def pysod_loop(pairs) -> dict[str, float]:
    """PySODMetrics' standard evaluation loop over the pairs; its summary numbers."""
    import cv2
    import py_sod_metrics

    warnings.filterwarnings("ignore", message="This class will be removed")
    s_measure, f_measure = py_sod_metrics.Smeasure(), py_sod_metrics.Fmeasure()
    e_measure, mae = py_sod_metrics.Emeasure(), py_sod_metrics.MAE()
    for pair in pairs:
        pred = cv2.imread(str(pair.pred), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(str(pair.gt), cv2.IMREAD_GRAYSCALE)
        for measure in (s_measure, f_measure, e_measure, mae):
            measure.step(pred=pred, gt=gt)
    f_results, e_results = f_measure.get_results()["fm"], e_measure.get_results()["em"]
    return {
        "S": float(s_measure.get_results()["sm"]),
        "maxF": float(f_results["curve"].max()),
        "meanF": float(f_results["curve"].mean()),
        "adpF": float(f_results["adp"]),
        "maxE": float(e_results["curve"].max()),
        "meanE": float(e_results["curve"].mean()),
        "adpE": float(e_results["adp"]),
        "MAE": float(mae.get_results()["mae"]),
    }


class Clock:
    """Wall-clock and CPU seconds (all threads of the process) spent inside ``with``."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=1000, help="frames to score (default 1000)")
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--chunk", type=int, default=100, help="frames per alternation")
    parser.add_argument("--device", default="cpu", help="where our measures run (default cpu)")
    parser.add_argument("--workers", type=int, default=None, help="our reading threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ours, reference = Clock(), Clock()
    difference = 0.0
    with tempfile.TemporaryDirectory(prefix="ianet-metrics-bench-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        write_maps(root, args.maps, args.height, args.width, args.seed)
        print(
            f"wrote {args.maps} map pairs at {args.width}x{args.height} in "
            f"{time.perf_counter() - started:.1f} s"
        )
        pairs = pairs_from_folders(root / "pred", root / "gt")
        # alternate the two in chunks, so that both see the same share of a busy machine
        for start in range(0, len(pairs), args.chunk):
            chunk = pairs[start : start + args.chunk]
            with ours:
                scores = evaluate(chunk, "pysod", device=args.device, workers=args.workers)
            with reference:
                expected = pysod_loop(chunk)
            got = scores["bench"].to_json()
            difference = max(difference, *(abs(got[k] - v) for k, v in expected.items()))

    print(f"machine: {describe_cpu()}; our measures on {args.device}")
    for name, clock in (
        ("ours (ianet.metrics.evaluate)", ours),
        ("PySODMetrics (cv2 + step)", reference),
    ):
        print(
            f"{name:30s} {args.maps / clock.wall:7.1f} frames/s, "
            f"{1000 * clock.cpu / args.maps:6.1f} CPU ms/frame"
        )
    print(
        f"speed-up: {reference.wall / ours.wall:.1f}x in frames/s, "
        f"{reference.cpu / ours.cpu:.1f}x in CPU time per frame"
    )
    print(f"largest difference of the summary numbers (per chunk): {difference:.2e}")


if __name__ == "__main__":
    main()
