"""``ianet-stream weights FILE``: check a weights file and say what it is.

Loads the file as ``run`` and ``test`` would (``torch.load(weights_only=True)``, every
tensor checked against the network it describes with ``strict=True``, none NaN or
infinite) and prints its SHA-256, its form, the IANet variant, the parameter count, the
input size it was trained at and the flow it expects, so that a downloaded file can be
compared with what others have.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "weights",
        help="check a weights file (loads it strictly) and print what it is and its SHA-256",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("weights", metavar="FILE", help="a .pth file, or builtin:NAME")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout instead")
    parser.set_defaults(run=run)
    return parser


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(source: str) -> dict[str, Any]:
    """What the weights at ``source`` are; raises ``InputError`` when they do not load."""
    from ianet.checkpoints import (
        FORMAT,
        builtin_path,
        input_size,
        load_checkpoint,
        read_checkpoint,
    )
    from ianet.weights import BUILTIN_PREFIX, builtin, for_variant

    shipped = source.startswith(BUILTIN_PREFIX)
    path = builtin_path(source[len(BUILTIN_PREFIX) :]) if shipped else Path(source)
    checkpoint = read_checkpoint(source)
    model = load_checkpoint(checkpoint, name=source)
    variant = model.options["variant"]
    known = builtin(source) if shipped else None
    ours = checkpoint.get("format") == FORMAT
    if known is None and not ours:
        known = for_variant(variant)
    return {
        "file": str(path),
        "sha256": sha256(path),
        "megabytes": round(path.stat().st_size / 1e6, 1),
        "form": "ianet-stream checkpoint" if ours else "plain state dict (the reference form)",
        "variant": variant,
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_size": input_size(checkpoint, source),
        "flow": known.info.flow_method if known is not None else None,
        "like": known.info.name if known is not None else None,
    }


def run(args: argparse.Namespace) -> int:
    found = describe(args.weights)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    lines = [
        f"{found['file']}: loads strictly; {found['megabytes']} MB",
        f"  sha256       {found['sha256']}",
        f"  form         {found['form']}",
        f"  variant      {found['variant']} ({found['parameters']:,} parameters)",
        f"  input size   {found['input_size']}x{found['input_size']}",
    ]
    if found["like"]:
        lines.append(f"  like         {found['like']} (trained on {found['flow']} flow)")
    print("\n".join(lines))
    return 0
