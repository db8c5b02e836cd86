"""``ianet-stream eval``: score saliency-map PNGs against ground truth, per dataset."""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.table import Table

    from ianet.metrics import DatasetScores, FramePair

EXAMPLES = 3  # file names shown in an error message
COLUMNS = (  # (title, DatasetScores attribute), the paper's three first
    ("S", "s_measure"),
    ("maxF", "max_f"),
    ("MAE", "mae"),
    ("meanF", "mean_f"),
    ("adpF", "adaptive_f"),
    ("maxE", "max_e"),
    ("meanE", "mean_e"),
    ("adpE", "adaptive_e"),
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="score saliency maps: S-measure, F-measure, E-measure, MAE per dataset",
        description="Score prediction PNGs against ground-truth PNGs and report, per dataset "
        "folder, S-measure, max/mean/adaptive F-measure, max/mean/adaptive E-measure and MAE. "
        "With --gt, files are matched by their path relative to each folder "
        "(<dataset>/<sequence>/<name>.png; GT in <dataset>/<sequence>/ground-truth/ "
        "is matched to <dataset>/<sequence>/<name>.png). With --list, the ground truth of "
        "each row is matched to PRED/<dataset>/<sequence>/<gt basename>, as "
        "'ianet-stream test' writes it. A prediction of another size than its GT is "
        "resized to the GT's size (bilinear, antialiased), as the DAVSOD toolbox resizes "
        "it (with MATLAB's imresize).",
    )
    parser.add_argument("--pred", required=True, type=Path, metavar="DIR", help="prediction PNGs")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth PNGs")
    source.add_argument(
        "--list",
        type=Path,
        action="append",
        metavar="FILE",
        help="triplet list naming the ground truth (repeatable)",
    )
    parser.add_argument(
        "--protocol",
        choices=("davsod", "pysod"),
        default="davsod",
        help="davsod (default): the DAVSOD toolbox, per-sequence averages, first and last "
        "frame of each sequence skipped, exact thresholds; pysod: PySODMetrics' numbers, "
        "averaged over all frames",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the scores as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="draw PR and F-threshold curves, one PNG per dataset (needs matplotlib)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the frames that have a prediction instead of failing",
    )
    parser.add_argument("--workers", type=int, default=None, help="reading threads")
    parser.add_argument("--batch-size", type=int, default=16, help="frames scored together")
    parser.set_defaults(run=run)
    return parser


def _device(name: str) -> str:
    from ianet.device import resolve_device
    from ianet_stream.errors import ConfigError, InputError

    try:
        return str(resolve_device(name))
    except InputError as error:
        raise ConfigError(f"--{error}") from None


def _frames(args: argparse.Namespace) -> list[FramePair]:
    """The frames the protocol scores, with a prediction (or an error naming the missing)."""
    from ianet.metrics import (
        missing_predictions,
        pairs_from_folders,
        pairs_from_samples,
        select_frames,
    )
    from ianet_stream.console import console
    from ianet_stream.errors import InputError

    if args.gt is not None:
        pairs = pairs_from_folders(args.pred, args.gt)
    else:
        from ianet.data.lists import read_list

        if not args.pred.is_dir():
            raise InputError(f"{args.pred}: no such prediction folder")
        pairs = pairs_from_samples([s for path in args.list for s in read_list(path)], args.pred)
    frames = select_frames(pairs, args.protocol)
    if not frames:
        raise InputError(
            "no frame to score: the davsod protocol skips the first and last frame of each "
            "sequence, and no sequence has more than two"
        )
    missing = missing_predictions(frames)
    if missing:
        examples = ", ".join(str(pair.pred.relative_to(args.pred)) for pair in missing[:EXAMPLES])
        summary = (
            f"{len(missing)} of {len(frames)} predictions missing under {args.pred} "
            f"(e.g. {examples})"
        )
        if not args.allow_missing or len(missing) == len(frames):
            hint = "" if args.allow_missing else "; --allow-missing scores the others"
            raise InputError(summary + hint)
        if not args.quiet:
            console.print(f"[yellow]warning:[/] {summary}; scoring the others", highlight=False)
        absent = set(missing)
        frames = [pair for pair in frames if pair not in absent]
    return frames


def _table(scores: dict[str, DatasetScores], protocol: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"saliency scores ({protocol} protocol)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("dataset", overflow="fold")
    for title in [title for title, _ in COLUMNS] + ["frames", "seqs"]:
        table.add_column(title, justify="right", no_wrap=True, min_width=len(title))
    for name, result in scores.items():
        values = [f"{getattr(result, attribute):.3f}" for _, attribute in COLUMNS]
        table.add_row(name, *values, str(result.frames), str(result.sequences))
    return table


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary_path)``, then rename the file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _plot(scores: dict[str, DatasetScores], folder: Path, protocol: str) -> list[Path]:
    """One PNG per dataset: precision-recall and F-measure-threshold curves."""
    from matplotlib.figure import Figure

    written = []
    thresholds = [k / 255 for k in range(256)]
    for name, result in scores.items():
        figure = Figure(figsize=(10, 4.2), layout="constrained")
        pr_axes, f_axes = figure.subplots(1, 2)
        pr_axes.plot(result.recall, result.precision)
        pr_axes.set(xlabel="recall", ylabel="precision", title="precision-recall")
        f_axes.plot(thresholds, result.f_curve)
        f_axes.set(xlabel="threshold", ylabel="F-measure", title=f"max F {result.max_f:.3f}")
        for axes in (pr_axes, f_axes):
            axes.set(xlim=(0, 1.01), ylim=(0, 1.01))
            axes.grid(alpha=0.3)
        figure.suptitle(f"{name} ({protocol} protocol, {result.frames} frames)")
        path = folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name) or 'dataset'}.png"
        _write_atomically(path, partial(figure.savefig, format="png"))
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ianet.metrics import evaluate
    from ianet_stream.console import console
    from ianet_stream.errors import ConfigError

    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--plot needs matplotlib: pip install 'ianet-stream[plot]'") from None
    for option, value in (("--workers", args.workers), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} {value}: expected a positive integer")
    device = _device(args.device)
    frames = _frames(args)

    progress = Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=args.quiet,
    )
    with progress:
        task = progress.add_task("scoring", total=len(frames))
        scores = evaluate(
            frames,
            args.protocol,
            device=device,
            batch_size=args.batch_size,
            workers=args.workers,
            progress=lambda done: progress.advance(task, done),
        )
    if not args.quiet:
        console.print(_table(scores, args.protocol))
    if args.json is not None:
        document = {name: result.to_json() for name, result in scores.items()}
        text = json.dumps(document, indent=2) + "\n"
        _write_atomically(args.json, lambda temporary: temporary.write_text(text))
    if args.plot is not None:
        written = _plot(scores, args.plot, args.protocol)
        if not args.quiet:
            console.print(f"curves: {', '.join(str(path) for path in written)}", highlight=False)
    return 0
