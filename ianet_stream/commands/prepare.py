"""``ianet-stream prepare``: videos (and masks) -> a dataset in the reference layout with lists.

For each video ``VIDEOS/<stem>.<ext>`` it writes, under ``OUT/<DATASET>/<stem>/``:

- ``Imgs/NNNNN.jpg``: the kept frames (every ``--every``-th, optionally resized), JPEG
  quality 95, ``NNNNN`` being the frame's index in the video;
- ``flow/NNNNN.png``: the flow image the model reads for that frame, computed from the kept
  frame before it by ``ianet.flow.FlowEstimator`` (the code the streaming flow stage runs,
  ``docs/architecture.md``, "Flow convention"); the first kept frame has none (its flow
  input is zero);
- ``ground-truth/NNNNN.png``: with ``--masks``, the video's masks ``MASKS/<stem>/*.png`` in
  name order, the i-th mask belonging to the i-th frame of the video (resized bilinearly
  with the frames).

and beside them the lists, rows relative to ``OUT/<DATASET>``:

- ``test.txt``, always: ``img gt flow`` rows, or without masks ``img - flow`` rows (``-``:
  no GT; ``ianet-stream test`` then names each map after its image);
- ``train.txt``, with masks only (training needs GT): the same rows.

The first kept frame of a video has a two-column row (``img gt``, or ``img -``). Each video
folder is written under a temporary name and renamed when complete (replacing the folder an
earlier ``prepare`` wrote, never another one); a video that fails is reported and the
others go on (exit code 3).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from ianet_stream.console import console

if TYPE_CHECKING:
    import numpy as np

WRITER = "ianet-stream prepare"  # marks each video's folder: a later run replaces it
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts"}
BATCH = 8  # frames per flow-estimator call
DESCRIPTION = """\
Turn a folder of videos (and, with --masks, a folder per video of frame masks,
MASKS/<video stem>/*.png in frame order) into OUT/<DATASET>/<video stem>/{Imgs,
ground-truth,flow}/NNNNN.{jpg,png,png} (NNNNN: the frame's index in the video) with the
lists test.txt (always; rows 'img - flow' without masks) and train.txt (with masks).
Flow images are the model's flow input, computed like the streaming flow stage does; the
first kept frame of a video has none (a two-column row)."""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prepare",
        help="turn videos (and masks) into a triplet-list dataset",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--videos", required=True, type=Path, metavar="DIR")
    parser.add_argument("--masks", type=Path, metavar="DIR", help="MASKS/<video stem>/*.png")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--name", metavar="DATASET", help="dataset folder (default: videos')")
    parser.add_argument(
        "--flow", default="tvl1", metavar="METHOD", help="tvl1 (default), raft_small or raft_large"
    )
    parser.add_argument("--every", type=int, default=1, metavar="N", help="keep every Nth frame")
    parser.add_argument("--size", metavar="WxH", help="resize frames (and masks) to WxH")
    parser.add_argument("--device", default="auto", help="where flow runs: auto, cpu, cuda:N")
    parser.set_defaults(run=run)
    return parser


def _videos(folder: Path) -> list[Path]:
    from ianet_stream.errors import InputError

    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of videos")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise InputError(f"{folder}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return videos


class _Video:
    """Writes one video's folder (under a temporary name) and collects its list rows."""

    def __init__(self, video: Path, dataset: Path, masks: list[Path] | None, args) -> None:
        from ianet.flow import FlowEstimator
        from ianet_stream.commands.synth import frame_size

        self.video = video
        self.stem = video.stem
        self.final = dataset / self.stem
        self.partial = self.final
        self.masks = masks
        self.size = frame_size(args.size) if args.size else None
        self.every = args.every
        self.device = args.device
        self.estimator = FlowEstimator(args.flow)
        self.rows: list[str] = []
        self.decoded = 0

    def _frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index in the video, HxWx3 uint8 RGB) of every ``every``-th frame."""
        from ianet_stream.video import VideoReader

        with VideoReader(str(self.video), str(self.video), is_file=True, max_pixels=None) as reader:
            for index, frame in enumerate(reader.frames()):
                self.decoded = index + 1
                if index % self.every == 0:
                    yield index, reader.to_rgb(frame)

    def write(self, advance) -> None:
        """Write the video's folder, replacing an earlier ``prepare`` output of it (and
        refusing any other folder there)."""
        from ianet.atomic import atomic_output

        with atomic_output(self.final, writer=WRITER) as self.partial:
            for kind in ("Imgs", "flow", *(("ground-truth",) if self.masks else ())):
                (self.partial / kind).mkdir(parents=True)
            self._write_frames(advance)

    def _write_frames(self, advance) -> None:
        import numpy as np
        import torch

        from ianet.flow import flow_to_image

        count = 0
        frames = self._frames()
        while batch := list(islice(frames, BATCH)):
            pictures = [self._resize(picture) for _, picture in batch]
            motion = self.estimator(torch.from_numpy(np.stack(pictures)).to(self.device))
            images = flow_to_image(motion.flow).cpu().numpy()
            for (index, _), picture, flow, valid in zip(
                batch, pictures, images, motion.valid, strict=True
            ):
                self._write_frame(index, picture, flow if valid else None)
            count += len(batch)
            advance(len(batch))
        if count == 0:
            raise ValueError("no frames decoded")
        if self.masks is not None and len(self.masks) != self.decoded:
            raise ValueError(f"{len(self.masks)} masks for {self.decoded} frames")

    def _resize(self, picture: np.ndarray) -> np.ndarray:
        import numpy as np
        from PIL import Image

        if self.size is None or picture.shape[1::-1] == self.size:
            return picture
        resized = Image.fromarray(picture).resize(self.size, Image.Resampling.BILINEAR)
        return np.asarray(resized)

    def _write_frame(self, index: int, picture: np.ndarray, flow: np.ndarray | None) -> None:
        import numpy as np
        from PIL import Image

        stem = f"{index:05d}"
        Image.fromarray(picture).save(self.partial / "Imgs" / f"{stem}.jpg", quality=95)
        row = [f"{self.stem}/Imgs/{stem}.jpg"]
        if self.masks is None:
            row.append("-")
        else:
            if index >= len(self.masks):
                raise ValueError(f"no mask for frame {index} ({len(self.masks)} masks)")
            with Image.open(self.masks[index]) as mask:
                grey = mask.convert("L")
            if grey.size != (picture.shape[1], picture.shape[0]):
                grey = grey.resize((picture.shape[1], picture.shape[0]), Image.Resampling.BILINEAR)
            grey.save(self.partial / "ground-truth" / f"{stem}.png")
            row.append(f"{self.stem}/ground-truth/{stem}.png")
        if flow is not None:
            Image.fromarray(np.ascontiguousarray(flow)).save(self.partial / "flow" / f"{stem}.png")
            row.append(f"{self.stem}/flow/{stem}.png")
        self.rows.append(" ".join(row))


def _write_list(path: Path, rows: list[str]) -> None:
    from ianet.atomic import write_text

    write_text(path, "".join(f"{row}\n" for row in rows))


def _mask_files(masks: Path | None, stem: str) -> list[Path] | None:
    from ianet_stream.errors import InputError

    if masks is None:
        return None
    folder = masks / stem
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        raise InputError(f"{folder}: no masks (*.png) for video {stem}")
    return files


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn

    from ianet.device import resolve_device
    from ianet.flow import METHODS
    from ianet_stream.cli import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
    from ianet_stream.errors import ConfigError

    if args.every < 1:
        raise ConfigError(f"--every: expected an integer >= 1, got {args.every}")
    if args.flow not in METHODS:
        raise ConfigError(f"--flow: choose one of {', '.join(METHODS)}, got {args.flow!r}")
    args.device = resolve_device(args.device)
    videos = _videos(args.videos)
    name = args.name or args.videos.resolve().name
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"--name: expected a plain folder name, got {name!r}")
    dataset = args.out / name
    dataset.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    failed: list[str] = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} frames"))
    with Progress(*columns, console=console, disable=args.quiet) as progress:
        for video in videos:
            task = progress.add_task(video.name, total=None)
            try:
                job = _Video(video, dataset, _mask_files(args.masks, video.stem), args)
                job.write(lambda count, task=task: progress.advance(task, count))
            except Exception as error:  # one bad video is reported, the others go on
                failed.append(video.name)
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                console.print(f"[red]failed:[/] {escape(video.name)}: {escape(message)}")
                continue
            finally:
                progress.update(task, total=progress.tasks[task].completed)
            rows += job.rows
    if rows:
        _write_list(dataset / "test.txt", rows)
        if args.masks is not None:
            _write_list(dataset / "train.txt", rows)
    if not args.quiet and rows:
        lists = "train.txt and test.txt" if args.masks is not None else "test.txt"
        done = len(videos) - len(failed)
        console.print(
            f"wrote {escape(str(dataset))}: {done} video{'s' * (done != 1)}, "
            f"{len(rows)} frames; {lists}",
            highlight=False,
        )
    if failed:
        return EXIT_FAILED if len(failed) == len(videos) else EXIT_PARTIAL
    return EXIT_OK
