"""Accuracy and speed of ``ianet.flow`` beside OpenCV's DIS and Farneback, in one run.

    .venv/bin/python benchmarks/flow.py [--clips 8] [--frames 4] [--size 320x192]
        [--threads 2] [--device cpu|cuda] [--raft-weights auto|PATH|none] [--rounds 5]

Accuracy: synthetic clips generated now (``ianet.data.synthetic``: its ``default`` and
``hard`` scenes, and a ``held-out`` kind that no parameter was tuned on; clip seeds differ
from those used in tuning) give pairs with exact flow; every method estimates the flow of
every pair, one pair at a time, and the table gives the mean end-point error (EPE, px), the
outlier rate Fl (% of pixels with an error above 3 px and above 5% of the true magnitude)
and the median wall and CPU time per pair. OpenCV runs on grey images with its presets (DIS
ultrafast / fast / medium) and Farneback with the parameters of OpenCV's tutorial.

Speed: at 640x360 every method runs on the same pair in ``--rounds`` interleaved rounds;
the table gives the median wall and CPU (process) time per pair and their ratios to
Farneback's, so that a shared, noisy machine affects all alike. With ``--device cuda`` the
torch methods also run on the GPU in batches (pairs/s).

RAFT rows need real weights (``--raft-weights auto`` uses torchvision's cache); without
them RAFT is timed with random weights (``--raft-weights none``) and has no accuracy rows.
Tables go to stderr (rich); markdown lines for BENCHMARKS.md go to stdout.

On a machine shared with other work, run it with ``OMP_WAIT_POLICY=PASSIVE``: torch's OpenMP
threads otherwise spin at every one of the solver's many small operations while the other
thread waits for a core, which can make TV-L1 ten times slower.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ianet.data.synthetic import PRESETS, SceneConfig, generate_clip
from ianet.device import describe_cpu
from ianet.errors import InputError
from ianet.flow import estimate_flow
from ianet.flow.raft import load_raft
from ianet_stream.config import parse_size

console = Console(stderr=True)
# The first generator's scene presets (the figures in BENCHMARKS.md), and a held-out kind no
# parameter was tuned on: three fast objects, a fast zooming camera, strong brightness changes.
SCENES = {
    **{name: PRESETS[name] for name in ("default", "hard", "tracking")},
    "held-out": SceneConfig(
        objects=3,
        distractors=5,
        object_size=(0.1, 0.2),
        object_speed=(0.03, 0.07),
        object_spin=0.06,
        camera_speed=(0.02, 0.05),
        zoom_range=(0.7, 1.4),
        brightness_amplitude=0.3,
        occluder_probability=0.7,
        camouflage_probability=0.4,
    ),
}
Pair = tuple[np.ndarray, np.ndarray, np.ndarray]  # prev HxWx3, next HxWx3, exact flow 2xHxW
Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (prev, next) -> 2xHxW


@dataclass
class Method:
    name: str
    estimate: Estimator
    accuracy: bool = True  # False: timing only (random RAFT weights)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def opencv_methods() -> list[Method]:
    methods = []
    for name, preset in (
        ("DIS ultrafast", cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
        ("DIS fast", cv2.DISOPTICAL_FLOW_PRESET_FAST),
        ("DIS medium", cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
    ):
        dis = cv2.DISOpticalFlow_create(preset)
        methods.append(
            Method(name, lambda a, b, dis=dis: dis.calc(grey(a), grey(b), None).transpose(2, 0, 1))
        )

    def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        flow = cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return flow.transpose(2, 0, 1)

    methods.append(Method("Farneback", farneback))
    return methods


def torch_method(name: str, device: torch.device, accuracy: bool = True, **options) -> Method:
    def estimate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        prev = torch.from_numpy(a)[None].to(device)
        next = torch.from_numpy(b)[None].to(device)
        flow = estimate_flow(prev, next, **options)
        return flow[0].cpu().numpy()

    return Method(name, estimate, accuracy)


def ours(device: torch.device, raft_weights: str) -> tuple[list[Method], str | None]:
    """Our methods, and a note when RAFT has no real weights."""
    methods = [
        torch_method(f"tvl1 {preset}", device, method="tvl1", preset=preset)
        for preset in ("fast", "balanced", "accurate")
    ]
    note = None
    for variant in ("raft_small", "raft_large"):
        weights = raft_weights
        try:
            load_raft(variant, weights, device)
        except InputError as error:
            note = note or f"RAFT timed with random weights, no accuracy rows ({error})"
            weights = "none"
        accurate = weights != "none"
        label = variant if accurate else f"{variant} (random weights)"
        methods.append(
            torch_method(label, device, accurate, method=variant, weights=weights, iterations=12)
        )
    return methods, note


def synthetic_pairs(scene: str, clips: int, frames: int, size: tuple[int, int]) -> list[Pair]:
    pairs = []
    for clip in range(clips):
        video = generate_clip(10_000 + clip, size, frames, SCENES[scene])
        for before, after in itertools.pairwise(video):
            assert after.flow is not None
            pairs.append((before.image, after.image, after.flow))
    return pairs


def timed(estimate: Estimator, a: np.ndarray, b: np.ndarray, device: torch.device):
    """(flow, wall seconds, CPU seconds) of one estimate."""
    wall, cpu = time.perf_counter(), time.process_time()
    flow = estimate(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return flow, time.perf_counter() - wall, time.process_time() - cpu


def accuracy(methods: list[Method], pairs: list[Pair], device: torch.device) -> dict[str, tuple]:
    """Per method: (EPE, Fl %, median wall ms, median CPU ms per pair)."""
    methods = [method for method in methods if method.accuracy]
    for method in methods:  # warm up (first-call set-up, model loading)
        method.estimate(pairs[0][0], pairs[0][1])
    results = {}
    for method in methods:
        errors, outliers, walls, cpus = [], [], [], []
        for prev, next, truth in pairs:
            flow, wall, cpu = timed(method.estimate, prev, next, device)
            error = np.sqrt(((flow - truth) ** 2).sum(0))
            magnitude = np.sqrt((truth**2).sum(0))
            errors.append(error.mean())
            outliers.append(((error > 3) & (error > 0.05 * magnitude)).mean())
            walls.append(wall)
            cpus.append(cpu)
        results[method.name] = (
            float(np.mean(errors)),
            100 * float(np.mean(outliers)),
            1000 * statistics.median(walls),
            1000 * statistics.median(cpus),
        )
    return results


def speed(methods: list[Method], pair: Pair, rounds: int, device: torch.device) -> dict:
    """Per method: (median wall ms, median CPU ms), methods interleaved round by round."""
    walls: dict[str, list[float]] = {method.name: [] for method in methods}
    cpus: dict[str, list[float]] = {method.name: [] for method in methods}
    for method in methods:
        method.estimate(pair[0], pair[1])
    for _ in range(rounds):
        for method in methods:
            _, wall, cpu = timed(method.estimate, pair[0], pair[1], device)
            walls[method.name].append(wall)
            cpus[method.name].append(cpu)
    return {
        name: (1000 * statistics.median(walls[name]), 1000 * statistics.median(cpus[name]))
        for name in walls
    }


def gpu_throughput(pair: Pair, device: torch.device, batch: int, rounds: int) -> dict[str, float]:
    """TV-L1 pairs/s on the GPU for each preset, eager and compiled, ``batch`` pairs a call."""
    prev = torch.from_numpy(pair[0])[None].expand(batch, -1, -1, -1).contiguous().to(device)
    next = torch.from_numpy(pair[1])[None].expand(batch, -1, -1, -1).contiguous().to(device)
    results = {}
    for preset in ("fast", "balanced", "accurate"):
        for compile in (False, True):
            for _ in range(2):  # warm up (and compile)
                estimate_flow(prev, next, preset=preset, compile=compile)
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(rounds):
                estimate_flow(prev, next, preset=preset, compile=compile)
            torch.cuda.synchronize(device)
            label = f"tvl1 {preset}" + (" (compile)" if compile else "")
            results[label] = batch * rounds / (time.perf_counter() - start)
    return results


def machine(device: torch.device, threads: int) -> str:
    cpu = describe_cpu()
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    text = (
        f"{cpu}, torch {torch.__version__} with {threads} threads "
        f"(OMP_WAIT_POLICY {wait_policy}), OpenCV {cv2.__version__}"
    )
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8, help="clips per scene kind")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip")
    parser.add_argument(
        "--size",
        type=lambda text: parse_size(text, short_side=False),
        default=(320, 192),
        help="WxH for accuracy",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    parser.add_argument("--device", default="cpu", help="device of the torch methods")
    parser.add_argument("--raft-weights", default="auto", help="auto, a path, or none")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds at 640x360")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    device = torch.device(args.device)

    mine, note = ours(device, args.raft_weights)
    methods = mine + opencv_methods()
    width, height = args.size
    lines = [f"Machine: {machine(device, args.threads)}."]
    if note:
        lines.append(note + ".")

    for scene in SCENES:
        pairs = synthetic_pairs(scene, args.clips, args.frames, args.size)
        results = accuracy(methods, pairs, device)
        table = Table(title=f"{scene} scenes, {len(pairs)} pairs at {width}x{height}")
        for column in ("method", "EPE px", "Fl %", "wall ms", "CPU ms"):
            table.add_column(column, justify="left" if column == "method" else "right")
        lines.append("")
        lines.append(f"Synthetic `{scene}` scenes, {len(pairs)} pairs at {width}x{height}:")
        lines.append("")
        lines.append("| method | EPE (px) | Fl (%) | wall ms / pair | CPU ms / pair |")
        lines.append("| --- | ---: | ---: | ---: | ---: |")
        for name, (epe, fl, wall, cpu) in results.items():
            row = (f"{epe:.3f}", f"{fl:.2f}", f"{wall:.1f}", f"{cpu:.1f}")
            table.add_row(name, *row)
            lines.append(f"| {name} | " + " | ".join(row) + " |")
        console.print(table)

    pair = synthetic_pairs("default", 1, 2, (640, 360))[0]
    timings = speed(methods, pair, args.rounds, device)
    base_wall, base_cpu = timings["Farneback"]
    table = Table(title=f"640x360, median of {args.rounds} interleaved rounds")
    for column in ("method", "wall ms", "x Farneback", "CPU ms", "CPU x Farneback"):
        table.add_column(column, justify="left" if column == "method" else "right")
    lines += [
        "",
        f"One 640x360 pair, median of {args.rounds} interleaved rounds ({device.type}):",
        "",
        "| method | wall ms | x Farneback | CPU ms | CPU x Farneback |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (wall, cpu) in timings.items():
        row = (f"{wall:.1f}", f"{wall / base_wall:.2f}", f"{cpu:.1f}", f"{cpu / base_cpu:.2f}")
        table.add_row(name, *row)
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    console.print(table)

    if device.type == "cuda":
        batch = 32
        throughput = gpu_throughput(pair, device, batch, args.rounds)
        table = Table(title=f"GPU throughput at 640x360, batches of {batch}")
        table.add_column("method")
        table.add_column("pairs/s", justify="right")
        lines += ["", f"GPU, 640x360, batches of {batch}:", "", "| method | pairs/s |"]
        lines.append("| --- | ---: |")
        for name, rate in throughput.items():
            table.add_row(name, f"{rate:.0f}")
            lines.append(f"| {name} | {rate:.0f} |")
        console.print(table)

    print("\n".join(lines))


if __name__ == "__main__":
    main()
