"""``ianet-stream test``: saliency maps of every row of triplet lists, as the reference test."""

from __future__ import annotations

import argparse
from pathlib import Path

from ianet.train.config import default_workers
from ianet_stream.console import console


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "test",
        help="write test-set saliency maps for triplet lists",
        description=(
            "Run a checkpoint on every row of triplet lists and write "
            "DIR/<dataset>/<sequence>/<gt basename> PNGs at each frame's original size, as "
            "the reference test procedure does. Rows may lack GT ('img - flow'): their map "
            "is named after the image. Score the maps with 'ianet-stream eval'."
        ),
    )
    parser.add_argument(
        "--list",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        dest="lists",
        help="a triplet list (repeat for several)",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="PATH", help="a checkpoint file or builtin:NAME"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument(
        "--size",
        type=int,
        help="network input size (default: the size the weights were trained at, as 'run' "
        "uses: 160 for the built-in model, 512 for the published weights)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:N")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per model call (8)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
        help="auto: bf16 on a GPU that has it, else fp32; int8: CPU only, calibrated on the "
        "first 8 frames",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="decoding processes (default: one per core, at most 4)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    parser.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out (and list) unusable rows"
    )
    parser.set_defaults(run=run)
    return parser


def _write_maps(args: argparse.Namespace, samples: list, device: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ianet import Predictor
    from ianet.inference import write_test_maps

    predictor = Predictor(
        args.checkpoint,
        size=args.size,
        device=device,
        precision=args.precision,
        batch_size=args.batch_size,
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("test", total=len(samples))
        write_test_maps(
            samples,
            predictor,
            args.out,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=lambda count: progress.advance(task, count),
        )


def run(args: argparse.Namespace) -> int:
    import torch

    from ianet.data.lists import load_lists
    from ianet.device import resolve_device
    from ianet.inference import check_outputs
    from ianet_stream.errors import ConfigError

    if args.batch_size < 1 or args.workers < 0 or (args.size is not None and args.size < 32):
        raise ConfigError("--batch-size must be >= 1, --workers >= 0 and --size >= 32")
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads must be >= 1")
    device = resolve_device(args.device)
    samples, skipped = load_lists(args.lists, require_gt=False, skip_bad_rows=args.skip_bad_rows)
    if not args.quiet:
        for problem in skipped:
            console.print(f"skipped {problem}", highlight=False, markup=False)
    check_outputs(samples, args.out)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        _write_maps(args, samples, device)
    finally:
        torch.set_num_threads(threads)
    if not args.quiet:
        datasets = sorted({sample.dataset for sample in samples})
        console.print(
            f"wrote {len(samples)} maps to {args.out} ({', '.join(datasets)})", highlight=False
        )
    return 0
