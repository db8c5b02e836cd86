"""``ianet-stream export``: a checkpoint as an ONNX or TorchScript file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ianet_stream.console import console


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX, TorchScript or compact fp16 weights",
        description=(
            "Write the inference network of a checkpoint (BatchNorm folded) as ONNX or "
            "TorchScript. Inputs 'image' and 'flow' are ImageNet-normalised Bx3xSxS fp32 "
            "tensors; the one output 'pred' is the Bx1xSxS saliency logits (apply sigmoid, "
            "per-frame min-max and resize back, as the Predictor does). ONNX needs "
            "pip install 'ianet-stream[onnx]'. --format weights writes a checkpoint with the "
            "model's fp16 weights, options and metadata only (how builtin weights ship)."
        ),
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="PATH", help="checkpoint file or builtin:NAME"
    )
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript", "weights"))
    parser.add_argument("--out", required=True, type=Path, metavar="FILE")
    parser.add_argument(
        "--size",
        type=int,
        help="input side in pixels (default: the size the weights were trained at)",
    )
    parser.add_argument(
        "--dynamic-batch", action="store_true", help="ONNX: let the batch dimension vary"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ianet.checkpoints import input_size, load_checkpoint, read_checkpoint, save_weights
    from ianet.export import export_model, require_onnx
    from ianet_stream.errors import ConfigError

    if args.size is not None and args.size < 32:
        raise ConfigError(f"--size {args.size}: must be at least 32")
    if args.format == "weights":
        out = save_weights(args.checkpoint, args.out)
        if not args.quiet:
            console.print(f"wrote {out} (fp16 weights, {out.stat().st_size / 1e6:.1f} MB)")
        return 0
    if args.format == "onnx":
        require_onnx()
    checkpoint = read_checkpoint(args.checkpoint)
    model = load_checkpoint(checkpoint, name=args.checkpoint)
    size = args.size or input_size(checkpoint, args.checkpoint)
    out = export_model(
        model, args.out, format=args.format, size=size, dynamic_batch=args.dynamic_batch
    )
    if not args.quiet:
        console.print(f"wrote {out} ({args.format}, input {size}x{size})")
    return 0
