"""``ianet-stream eval``: score saliency-map PNGs against ground truth, per dataset."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ianet import atomic

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.table import Table

    from ianet.metrics import DatasetScores, FramePair
    from ianet.metrics.temporal import MotionFlow, StabilityScores

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
    ("dtSSD", "dtssd"),
)
FLOWS = ("tvl1", "raft_small", "raft_large", "dis")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="score saliency maps: S-measure, F-measure, E-measure, MAE, dtSSD per dataset; "
        "or their temporal stability on the video they came from",
        description="Score prediction PNGs against ground-truth PNGs and report, per dataset "
        "folder, S-measure, max/mean/adaptive F-measure, max/mean/adaptive E-measure, MAE and "
        "dtSSD (RobustVideoMatting's temporal-coherence error: 100 x the root mean square of "
        "the change of the prediction between consecutive frames minus the change of the "
        "ground truth; lower is steadier). "
        "With --gt, files are matched by their path relative to each folder "
        "(<dataset>/<sequence>/<name>.png; GT in <dataset>/<sequence>/ground-truth/ "
        "is matched to <dataset>/<sequence>/<name>.png). With --list, the ground truth of "
        "each row is matched to PRED/<dataset>/<sequence>/<gt basename>, as "
        "'ianet-stream test' writes it. A prediction of another size than its GT is "
        "resized to the GT's size (bilinear, antialiased), as the DAVSOD toolbox resizes "
        "it (with MATLAB's imresize). "
        "With --video instead, no ground truth is needed: the maps of a clip "
        "(PRED/<clip name>/<frame index>.png as the masks stage writes them, or PRED/<index>.png "
        "for one clip) are scored for temporal stability against the clip's frames: each map "
        "is carried onto the next frame with an optical flow (--flow) and compared with that "
        "frame's map: median flow-warped IoU of the masks (>= --threshold), share of flashes "
        "(pairs with IoU < 0.5), warping error (mean squared difference where the flow "
        "explains the picture) and the masks' area (share of the frame).",
    )
    parser.add_argument("--pred", required=True, type=Path, metavar="DIR", help="prediction PNGs")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth PNGs")
    source.add_argument(
        "--video",
        type=Path,
        metavar="CLIP",
        help="score the maps' temporal stability on this clip (or on every clip of a folder)",
    )
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
    parser.add_argument(
        "--flow",
        choices=FLOWS,
        default="tvl1",
        help="with --video: the flow that carries a map onto the next frame: tvl1 (the "
        "pipeline's TV-L1, default), raft_small or raft_large (torchvision's weights), dis "
        "(OpenCV's DIS, medium preset: independent of the pipeline's flow; needs "
        "opencv-python-headless)",
    )
    parser.add_argument(
        "--flow-size",
        type=int,
        default=256,
        metavar="N",
        help="with --video: the flow is estimated with the frames' short side scaled down "
        "to N (0: at the frames' size)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="with --video: the maps are masks at and above this value (0-1)",
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


def _score_table(title: str, first_column: str) -> Table:
    """An empty table of scores: ``first_column`` names what each row scores."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column(first_column, overflow="fold")
    return table


def _table(scores: dict[str, DatasetScores], protocol: str) -> Table:
    table = _score_table(f"saliency scores ({protocol} protocol)", "dataset")
    for title in [title for title, _ in COLUMNS] + ["frames", "seqs"]:
        table.add_column(title, justify="right", no_wrap=True, min_width=len(title))
    for name, result in scores.items():
        values = [_number(getattr(result, attribute)) for _, attribute in COLUMNS]
        table.add_row(name, *values, str(result.frames), str(result.sequences))
    return table


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


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
        with atomic.atomic_output(path) as temporary:
            figure.savefig(temporary, format="png")
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
    if args.video is not None:
        if args.plot is not None:
            raise ConfigError("--plot draws the curves of --gt or --list scores, not of --video")
        return _run_video(args, device)
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
        atomic.write_text(args.json, text)
    if args.plot is not None:
        written = _plot(scores, args.plot, args.protocol)
        if not args.quiet:
            console.print(f"curves: {', '.join(str(path) for path in written)}", highlight=False)
    return 0


def _clips(video: Path, pred: Path) -> list[tuple[Path, Path]]:
    """(clip, folder of its maps) for a clip or a folder of clips."""
    from ianet_stream.errors import InputError
    from ianet_stream.uris import list_videos

    if not pred.is_dir():
        raise InputError(f"{pred}: no such prediction folder")
    if video.is_dir():
        clips = list_videos(video)
        if not clips:
            raise InputError(f"{video}: no video files")
        return [(clip, pred / clip.stem) for clip in clips]
    if not video.is_file():
        raise InputError(f"{video}: no such video file or folder")
    return [(video, pred / video.stem if (pred / video.stem).is_dir() else pred)]


def _dis_motion() -> MotionFlow:
    """OpenCV's DIS (medium preset) as a motion-flow estimator (``ianet.metrics.temporal``)."""
    import numpy as np
    import torch

    from ianet_stream.errors import ConfigError

    try:
        import cv2
    except ImportError:
        raise ConfigError("--flow dis needs OpenCV: pip install opencv-python-headless") from None
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def estimate(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        grey = [
            cv2.cvtColor(np.ascontiguousarray(p[0].cpu().numpy()), cv2.COLOR_RGB2GRAY)
            for p in (previous, current)
        ]
        backward = dis.calc(grey[1], grey[0], None)  # each pixel of current, where it was
        return -torch.from_numpy(backward).permute(2, 0, 1)[None].to(current.device)

    return estimate


def _stability(
    args: argparse.Namespace, device: str, clip: Path, maps: Path, progress: Callable[[], None]
) -> StabilityScores:
    """The temporal stability of one clip's maps."""
    import av
    import torch

    from ianet.metrics import read_map
    from ianet.metrics.temporal import StabilityAccumulator, at_working_size, project_motion
    from ianet_stream.errors import InputError

    flow = _dis_motion() if args.flow == "dis" else project_motion(args.flow)
    accumulator = StabilityAccumulator(
        at_working_size(flow, args.flow_size or None), threshold=args.threshold
    )
    try:
        container = av.open(str(clip))
    except av.error.FFmpegError as error:
        raise InputError(f"{clip}: cannot read ({error})") from None
    found = 0
    with container:
        for index, frame in enumerate(container.decode(video=0)):
            path = maps / f"{index:05d}.png"
            if not path.is_file():
                accumulator.skip()
                continue
            picture = torch.from_numpy(frame.to_ndarray(format="rgb24")).to(device)
            saliency = read_map(path).to(device).float() / 255
            if saliency.shape != picture.shape[:2]:
                size = tuple(picture.shape[:2])
                saliency = torch.nn.functional.interpolate(
                    saliency[None, None], size=size, mode="bilinear", align_corners=False
                )[0, 0]
            accumulator.update(picture, saliency)
            found += 1
            progress()
    if not found:
        raise InputError(f"{maps}: no map <frame index>.png of {clip.name} (e.g. 00000.png)")
    return accumulator.result()


def _run_video(args: argparse.Namespace, device: str) -> int:
    from rich.progress import Progress, TextColumn

    from ianet_stream.console import console
    from ianet_stream.errors import ConfigError

    if not 0 < args.threshold < 1:
        raise ConfigError(f"--threshold {args.threshold}: expected a value between 0 and 1")
    if args.flow_size < 0:
        raise ConfigError(f"--flow-size {args.flow_size}: expected 0 or a positive integer")
    clips = _clips(args.video, args.pred)
    progress = Progress(
        TextColumn("scoring {task.description}: {task.completed} frames"),
        console=console,
        transient=True,
        disable=args.quiet,
    )
    results = {}
    with progress:
        for clip, maps in clips:
            task = progress.add_task(clip.name)
            results[clip.stem] = _stability(
                args, device, clip, maps, lambda task=task: progress.advance(task)
            )
    if not args.quiet:
        title = f"temporal stability ({args.flow} flow, masks >= {args.threshold:g})"
        table = _score_table(title, "clip")
        titles = ("warped IoU", "flashes", "warp err", "area", "min area", "max area", "frames")
        for title in titles:
            table.add_column(title, justify="right", no_wrap=True)
        for name, result in results.items():
            table.add_row(
                name,
                _number(result.median_iou),
                f"{100 * result.flashes:.1f} %",
                f"{result.warping_error:.4f}",
                f"{result.mean_area:.3f}",
                f"{result.min_area:.3f}",
                f"{result.max_area:.3f}",
                str(result.frames),
            )
        console.print(table)
    if args.json is not None:
        document = {name: result.to_json() for name, result in results.items()}
        text = json.dumps(document, indent=2) + "\n"
        atomic.write_text(args.json, text)
    return 0
