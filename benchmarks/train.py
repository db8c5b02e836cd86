"""Images per second of IANet training steps, and of decoding training samples.

    .venv/bin/python benchmarks/train.py [--device cpu] [--precision fp32|bf16|fp16]
        [--steps 3] [--threads N] [--config lite:192:8 --config lite:256:8 --config ianet:256:2]
        [--data LIST --data-size 512]

A training step is what ``ianet-stream train`` does per batch: forward, the seven
BCE + IoU losses, backward, SGD (Nesterov) step with the two learning-rate groups, on
random inputs. The baseline, measured in the same run on the same inputs, is the forward
pass alone in eval mode without gradients (inference): the ratio step / forward is what
survives a noisy, shared machine. With ``--data``, also the rate at which one process
decodes and preprocesses samples of a triplet list (``TripletDataset``), the figure to
compare with the step rate when choosing ``--workers``.
"""

from __future__ import annotations

import argparse
import time

import torch
from timing import median_seconds

from ianet import IANet
from ianet.data.dataset import TripletDataset
from ianet.data.lists import read_list
from ianet.train.config import TrainConfig
from ianet.train.loss import deep_supervision_losses
from ianet.train.optim import build_optimizer
from ianet.train.precision import autocast, resolve_precision


def measure(variant: str, size: int, batch: int, args: argparse.Namespace) -> dict[str, float]:
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    model = IANet(variant).to(device)
    optimizer = build_optimizer(model, TrainConfig(variant=variant))
    image = torch.randn(batch, 3, size, size, device=device)
    flow = torch.randn(batch, 3, size, size, device=device)
    gt = (torch.rand(batch, 1, size, size, device=device) > 0.7).float()

    def step() -> None:
        model.train()
        with autocast(device, precision):
            outputs = model(image, flow)
        loss = deep_supervision_losses(outputs, gt).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def forward() -> None:
        model.eval()
        with torch.no_grad(), autocast(device, precision):
            model(image, flow)

    step_seconds = median_seconds(step, args.steps, device)
    forward_seconds = median_seconds(forward, args.steps, device)
    return {
        "train_images_per_s": batch / step_seconds,
        "forward_images_per_s": batch / forward_seconds,
        "step_over_forward": step_seconds / forward_seconds,
        "precision": precision,
    }


def data_rate(list_path: str, size: int, count: int) -> float:
    """Samples per second one process decodes and preprocesses (``TripletDataset``)."""
    samples = read_list(list_path)
    dataset = TripletDataset(samples, size=size)
    indices = [i % len(samples) for i in range(count)]
    dataset[indices[0]]
    start = time.perf_counter()
    for index in indices:
        dataset[index]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--config", action="append", metavar="VARIANT:SIZE:BATCH",
        help="default: lite:192:8, lite:256:8, ianet:256:2",
    )  # fmt: skip
    parser.add_argument("--data", metavar="LIST", help="also time decoding this triplet list")
    parser.add_argument("--data-size", type=int, default=512)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for spec in args.config or ["lite:192:8", "lite:256:8", "ianet:256:2"]:
        variant, size, batch = spec.split(":")
        result = measure(variant, int(size), int(batch), args)
        print(
            f"{variant:5s} {size}x{size} batch {batch} ({result['precision']}): "
            f"train {result['train_images_per_s']:.2f} img/s, "
            f"forward {result['forward_images_per_s']:.2f} img/s, "
            f"step/forward {result['step_over_forward']:.2f}x"
        )
    if args.data:
        rate = data_rate(args.data, args.data_size, 16)
        print(f"decode + preprocess at {args.data_size}: {rate:.1f} samples/s per process")


if __name__ == "__main__":
    main()
