"""Predictor speed against the plain eager fp32 reference procedure, in one run.

    .venv/bin/python benchmarks/predictor.py [--quick] [--device cpu|cuda] [--variant ianet|lite]
        [--threads 2] [--sizes 512,256] [--batches 1,4] [--rounds 3] [--compile]
        [--checkpoint PATH] [--json FILE]
        CUDA only: [--precisions fp32,fp16,bf16] [--compile-modes eager,compiled,cudagraphs]
        [--iterations 10] [--peak-tflops X]

CPU (default): frames of 360x640 (and their flow images) through
- ``reference``: the reference test procedure done plainly: PIL bilinear resize to the
  network size, normalisation, eager fp32 forward of the unmodified network (NCHW),
  sigmoid, per-frame min-max, PIL resize back;
- ``bare forward``: the eager fp32 forward alone on ready inputs;
- ``Predictor`` modes: fp32 (BatchNorm folded, channels-last), fp32 without channels-last,
  bf16, int8 (calibrated beforehand on ``CALIBRATION_FRAMES`` other frames), and with
  ``--compile`` fp32 through ``torch.compile`` (inductor, frozen weights).
All share the thread count (``torch.set_num_threads``). Each round times every mode once,
in turn, so that load from other processes falls on all of them alike; the table gives the
best round's frames/s, its ratio to the reference procedure (by wall-clock time, and by the
process's CPU time, steadier on a shared machine), and how far the mode's maps are from the
reference's (mean / max absolute difference of the [0, 1] saliency).

CUDA (``--device cuda``): frames already on the GPU; Predictor at fp32/fp16/bf16
(``--precisions``), batch 1/8/32 (``--batches``), eager, ``torch.compile`` and
``torch.compile(mode="reduce-overhead")`` (CUDA graphs) (``--compile-modes``), each timing
``--iterations`` calls, against the eager fp32 forward of the unmodified network; frames/s and the
share of the GPU's peak (GFLOPs per frame x frames/s over ``--peak-tflops``, else a table of
known GPUs; fp32 convolutions run as TF32 when cuDNN allows it, as PyTorch does by default).

Without ``--checkpoint`` the network has random weights at PyTorch's default scale (not
the reference's N(0, 0.01), whose maps are flat), so the map differences are meaningful.
``--quick``: 512x512, two rounds; CPU batch 1 (about a minute on 2 idle cores), CUDA
batch 8 at bf16, eager and with CUDA graphs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ianet.checkpoints import load_checkpoint
from ianet.device import describe_cpu
from ianet.model import VARIANTS, IANet
from ianet.predictor import Predictor, cpu_has_fast_bf16
from ianet.transforms import IMAGENET_MEAN, IMAGENET_STD, normalise, resize_pictures

FRAME_SIZE = (360, 640)
CALIBRATION_FRAMES = 8
# Dense peak TFLOP/s by GPU name fragment: (fp32 as TF32, fp16, bf16).
GPU_PEAKS = {
    "H200": (494.7, 989.4, 989.4),
    "H100 SXM": (494.7, 989.4, 989.4),
    "H100": (378.0, 756.0, 756.0),
    "A100": (156.0, 312.0, 312.0),
    "L40S": (183.0, 366.0, 366.0),
    "A10": (62.5, 125.0, 125.0),
    "RTX 4090": (82.6, 165.2, 165.2),
    "RTX 3090": (35.6, 71.0, 71.0),
    "T4": (8.1, 65.0, 0.0),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--variant", default="ianet", choices=sorted(VARIANTS))
    parser.add_argument("--checkpoint", help="weights to use (default: random)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (2)")
    parser.add_argument("--sizes", default="512,256", help="network sizes (512,256)")
    parser.add_argument("--batches", help="batch sizes (CPU 1,4; CUDA 1,8,32)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per mode (3)")
    parser.add_argument("--compile", action="store_true", help="CPU: add torch.compile")
    parser.add_argument("--quick", action="store_true", help="512, batch 1, 2 rounds")
    parser.add_argument("--peak-tflops", type=float, help="CUDA: the GPU's peak for the share")
    parser.add_argument("--precisions", default="fp32,fp16,bf16", help="CUDA: precisions")
    parser.add_argument(
        "--compile-modes",
        default="eager,compiled,cudagraphs",
        help="CUDA: eager, compiled (torch.compile), cudagraphs (mode reduce-overhead)",
    )
    parser.add_argument("--iterations", type=int, default=10, help="CUDA: calls per timing")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    default_batches = "1,4" if args.device == "cpu" else "1,8,32"
    args.batches = [int(b) for b in (args.batches or default_batches).split(",")]
    args.precisions = args.precisions.split(",")
    args.compile_modes = args.compile_modes.split(",")
    if args.quick:
        args.sizes, args.rounds = [512], 2
        args.batches = [1] if args.device == "cpu" else [8]
        if args.device == "cuda":
            args.precisions, args.compile_modes = ["bf16"], ["eager", "cudagraphs"]
    return args


def machine(device: str) -> str:
    """One line naming the processor (or GPU), the threads and the torch version."""
    bf16 = "native bf16" if cpu_has_fast_bf16() else "no AMX/AVX512-BF16"
    line = f"{describe_cpu()}, {bf16}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if device == "cuda":
        line += f", GPU {torch.cuda.get_device_name()}"
    return line


def network_cost(variant: str, size: int) -> tuple[int, float]:
    """(parameters, GFLOPs per frame at size x size), counted on the meta device."""
    with torch.device("meta"):
        model = IANet(variant).eval()
        image = torch.empty(1, 3, size, size)
        with FlopCounterMode(display=False) as counter:
            model(image, image)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9


def default_scale_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """PyTorch's default initialisation of every layer and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.reset_parameters()
        elif isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.8, 1.2)
    return model.eval()


def smooth_frames(count: int, seed: int) -> torch.Tensor:
    """uint8 BxHxWx3 frames with large smooth structures, FRAME_SIZE each."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 9, 16, generator=generator)
    frames = torch.nn.functional.interpolate(coarse, size=FRAME_SIZE, mode="bicubic")
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def reference_procedure(model: nn.Module, size: int) -> Callable:
    """The reference test procedure, done plainly (PIL, numpy, eager fp32 forward)."""
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)

    def load(picture: np.ndarray) -> torch.Tensor:
        resized = np.asarray(Image.fromarray(picture).resize((size, size), Image.BILINEAR))
        array = ((resized / 255 - mean) / std).astype(np.float32)
        return torch.from_numpy(array).permute(2, 0, 1)

    def run(frames: torch.Tensor, flows: torch.Tensor) -> np.ndarray:
        images = torch.stack([load(p) for p in frames.numpy()])
        flow_images = torch.stack([load(p) for p in flows.numpy()])
        with torch.no_grad():
            pred = model(images, flow_images).pred[:, 0].numpy()
        height, width = frames.shape[1:3]
        maps = []
        for logits in pred:
            s = 1 / (1 + np.exp(-logits))
            s = (s - s.min()) / (s.max() - s.min() + 1e-8)
            back = Image.fromarray(s, mode="F").resize((width, height), Image.BILINEAR)
            maps.append(np.asarray(back))
        return np.stack(maps)

    return run


def interleaved(
    runs: dict[str, Callable[[], object]], rounds: int, sync: Callable
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process CPU seconds of each run over ``rounds`` rounds (after one
    warm-up each), the runs taking turns within a round."""
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():
        run()
        sync()
        print(f"  warmed up {name}", file=sys.stderr, flush=True)
    for _ in range(rounds):
        for name, run in runs.items():
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            sync()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def cpu_rows(args: argparse.Namespace, model: nn.Module) -> list[dict]:
    rows = []
    for size in args.sizes:
        for batch in args.batches:
            frames, flows = smooth_frames(batch, seed=1), smooth_frames(batch, seed=2)
            reference = reference_procedure(model, size)
            expected = reference(frames, flows)
            inputs = (
                normalise(resize_pictures(frames, (size, size))),
                normalise(resize_pictures(flows, (size, size))),
            )
            modes: dict[str, Predictor | None] = {"reference": None, "bare forward": None}
            modes["fp32"] = Predictor(model, size=size, device="cpu", batch_size=batch)
            modes["fp32, NCHW"] = Predictor(
                model, size=size, device="cpu", batch_size=batch, channels_last=False
            )
            if not args.quick or cpu_has_fast_bf16():
                modes["bf16"] = Predictor(
                    model, size=size, device="cpu", precision="bf16", batch_size=batch
                )
            modes["int8"] = calibrated_int8(model, size, batch)
            if args.compile:
                modes["fp32, compiled"] = Predictor(
                    model, size=size, device="cpu", batch_size=batch, compile=True
                )
            runs = {
                "reference": lambda r=reference, a=frames, b=flows: r(a, b),
                "bare forward": lambda i=inputs: _bare(model, i),
            }
            for name, predictor in modes.items():
                if predictor is not None:
                    runs[name] = lambda p=predictor, a=frames, b=flows: p(a, b)
            print(f"size {size}, batch {batch}", file=sys.stderr, flush=True)
            seconds, cpu_seconds = interleaved(runs, args.rounds, sync=lambda: None)
            for name in runs:
                maps = None
                if modes.get(name) is not None:
                    maps = modes[name](frames, flows).numpy()
                row = _row(name, size, batch, seconds, expected, maps)
                row["vs_reference_cpu_time"] = min(cpu_seconds["reference"]) / min(
                    cpu_seconds[name]
                )
                rows.append(row)
    return rows


def calibrated_int8(model: nn.Module, size: int, batch: int) -> Predictor:
    """An int8 Predictor calibrated on frames other than the timed ones."""
    predictor = Predictor(
        model,
        size=size,
        device="cpu",
        precision="int8",
        batch_size=batch,
        calibration_frames=CALIBRATION_FRAMES,
    )
    predictor(
        smooth_frames(CALIBRATION_FRAMES, seed=10), smooth_frames(CALIBRATION_FRAMES, seed=11)
    )
    return predictor


def _bare(model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    with torch.no_grad():
        model(*inputs)


def _row(name, size, batch, seconds, expected, maps) -> dict:
    best = min(seconds[name])
    reference_best = min(seconds["reference"])
    row = {
        "mode": name,
        "size": size,
        "batch": batch,
        "fps": batch / best,
        "fps_median": batch / statistics.median(seconds[name]),
        "vs_reference": reference_best / best,
    }
    if maps is not None:
        difference = np.abs(maps - expected)
        row["mean_abs_diff"], row["max_abs_diff"] = (
            float(difference.mean()),
            float(difference.max()),
        )
    return row


COMPILE_MODES = {"eager": False, "compiled": True, "cudagraphs": "reduce-overhead"}


def cuda_rows(args: argparse.Namespace, model: nn.Module) -> list[dict]:
    rows = []
    model = model.cuda()
    name = torch.cuda.get_device_name()
    known = next((v for k, v in GPU_PEAKS.items() if k in name), None)

    def sync() -> None:
        torch.cuda.synchronize()

    def repeated(run: Callable[[], object]) -> Callable[[], None]:
        def many() -> None:
            for _ in range(args.iterations):
                run()

        return many

    for size in args.sizes:
        _, gflops = network_cost(args.variant, size)
        predictors = {
            f"{precision}, {mode}": Predictor(
                model,
                size=size,
                device="cuda",
                precision=precision,
                batch_size=max(args.batches),
                compile=COMPILE_MODES[mode],
            )
            for precision in args.precisions
            for mode in args.compile_modes
        }
        for batch in args.batches:
            frames = smooth_frames(batch, seed=1).cuda()
            flows = smooth_frames(batch, seed=2).cuda()
            inputs = (
                normalise(resize_pictures(frames, (size, size))),
                normalise(resize_pictures(flows, (size, size))),
            )
            runs = {"bare forward, fp32": repeated(lambda i=inputs: _bare(model, i))}
            for label, predictor in predictors.items():
                runs[label] = repeated(lambda p=predictor, a=frames, b=flows: p(a, b))
            print(f"size {size}, batch {batch}", file=sys.stderr, flush=True)
            seconds, _ = interleaved(runs, args.rounds, sync=sync)
            bare = min(seconds["bare forward, fp32"])
            for label, times in seconds.items():
                fps = batch * args.iterations / min(times)
                index = {"fp32": 0, "fp16": 1, "bf16": 2}.get(label.split(",")[0], 0)
                peak = args.peak_tflops or (known[index] if known else None)
                rows.append(
                    {
                        "mode": label,
                        "size": size,
                        "batch": batch,
                        "fps": fps,
                        "vs_bare_fp32": bare / min(times),
                        "share_of_peak": gflops * fps / (peak * 1e3) if peak else None,
                    }
                )
    return rows


def print_rows(rows: list[dict], header: str) -> None:
    """A markdown table (pasteable into BENCHMARKS.md)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(header)
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key)
            if isinstance(value, float):
                cells.append(f"{value:.4f}" if "diff" in key or "share" in key else f"{value:.2f}")
            else:
                cells.append("" if value is None else str(value))
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
    else:
        model = default_scale_weights(IANet(args.variant))
    parameters, gflops = network_cost(model.options["variant"], 512)
    header = (
        f"IANet {model.options['variant']}: {parameters:,} parameters, "
        f"{gflops:.1f} GFLOPs per frame at 512x512; frames {FRAME_SIZE[0]}x{FRAME_SIZE[1]}\n"
        f"machine: {machine(args.device)}"
    )
    print(header, file=sys.stderr, flush=True)
    rows = cpu_rows(args, model) if args.device == "cpu" else cuda_rows(args, model)
    print_rows(rows, header)
    if args.json:
        args.json.write_text(json.dumps({"machine": header, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
