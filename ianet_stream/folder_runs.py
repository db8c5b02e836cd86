"""Folder runs: one pipeline run per clip of a folder or of a clip list, in worker processes
(or on a Ray cluster, see ``ray_executor``) when asked.

A clip list is a text file (``.txt``, ``.list``, ``.lst``) naming one clip per line; blank
lines and lines starting with ``#`` are skipped, relative paths resolve against the list's
folder.

Each clip gets its own outputs: every sink with a ``path`` option is given, for the clip,
what its class's ``clip_output`` says (``OUTDIR/<clip stem>.mp4`` for the encoder,
``OUTDIR`` for the masks sink, which writes ``OUTDIR/<clip stem>/...``). A clip's failure
is reported and the others go on; an interrupted clip's outputs are discarded, so
``--skip-existing`` can resume a run by skipping the clips whose outputs all exist.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from rich.console import RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ianet_stream.config import PipelineSpec, load_pipeline
from ianet_stream.console import console
from ianet_stream.errors import ConfigError, InputError
from ianet_stream.outputs import check_paths, is_complete
from ianet_stream.runner import STOP_SIGNALS, handling_signals, run_pipeline
from ianet_stream.stage import PlannedOutput
from ianet_stream.uris import VIDEO_EXTENSIONS, list_videos, parse_uri

ClipStatus = Literal["done", "failed", "skipped", "interrupted", "not run"]
LIST_EXTENSIONS = frozenset({"txt", "list", "lst"})


@dataclass(frozen=True)
class ClipJob:
    """One clip of a folder run: the pipeline file, ``--set`` assignments, the sinks'
    paths for this clip (``(key, value)`` pairs) and what exists once it is complete."""

    clip: str
    pipeline: str
    sets: tuple[str, ...]
    paths: tuple[tuple[str, str], ...]
    done: tuple[str, ...]

    def is_complete(self) -> bool:
        """Whether every output is there and whole (``outputs.is_complete``)."""
        return bool(self.done) and all(is_complete(Path(path)) for path in self.done)


@dataclass
class ClipResult:
    clip: str
    status: ClipStatus
    frames: int = 0
    seconds: float = 0.0
    reason: str = ""
    summary: dict[str, Any] | None = field(default=None, repr=False)
    attempts: int = 1


# Runs clips somewhere (the Ray executor is one): yields one result per job as each finishes.
Executor = Callable[[Sequence[ClipJob]], Iterator[ClipResult]]


def is_clip_list(path: Path) -> bool:
    """Whether ``path`` is a clip list: a file with a list's extension."""
    return path.is_file() and path.suffix.lower().lstrip(".") in LIST_EXTENSIONS


def is_batch_input(uri: str) -> bool:
    """Whether an input runs one pipeline per clip: a folder or a clip list."""
    kind = parse_uri(uri).kind
    return kind == "folder" or (kind == "file" and is_clip_list(Path(uri)))


def read_clip_list(path: Path) -> list[Path]:
    """The clips a list names, in its order (relative paths against the list's folder)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the clip list ({error})") from None
    names = [line.strip() for line in lines]
    clips = [path.parent / name for name in names if name and not name.startswith("#")]
    if not clips:
        raise InputError(f"{path}: the clip list names no clip")
    return clips


def batch_clips(batch: Path) -> list[Path]:
    """The clips of a folder (video files, sorted by name) or of a clip list."""
    if is_clip_list(batch):
        return read_clip_list(batch)
    clips = list_videos(batch)
    if not clips:
        raise InputError(f"{batch}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    return clips


def plan_folder(
    pipeline: str,
    sets: Sequence[str],
    spec: PipelineSpec,
    batch: Path,
    summary: Path | None = None,
) -> list[ClipJob]:
    """The clips of ``batch`` (a folder or a clip list) and where each one's outputs go.

    ``spec`` is the pipeline as loaded for the run (with ``--output``): each sink's
    ``path`` is the folder its clips' outputs go into; the folders are created once every
    output is checked (``outputs.check_paths``: no output is a clip, the pipeline file or
    the ``summary`` JSON, or replaces what its writer did not make).
    """
    clips = batch_clips(batch)
    targets = []
    for sink in spec.sinks:
        if sink.output is None:
            continue
        target, where = str(sink.output), f"{sink.path}.{sink.cls.output_option}"
        if target == "-" or Path(target).suffix.lower().lstrip(".") in VIDEO_EXTENSIONS:
            raise ConfigError(
                f"{where}: a folder run writes one output per clip into a folder, "
                f"got {target!r} (give --output DIR)"
            )
        if Path(target).is_file():
            raise ConfigError(f"{where}: {target} is a file, not a folder")
        targets.append((sink, target))
    jobs, writers = [], {}
    planned = [] if summary is None else [PlannedOutput(summary)]
    for clip in clips:
        outputs = [
            (
                f"stages.{sink.index}.{sink.cls.output_option}",
                *sink.cls.clip_output(sink.options, target, clip.stem),
            )
            for sink, target in targets
        ]
        for (sink, _), (_, path, _) in zip(targets, outputs, strict=True):
            options = replace(sink.options, **{sink.cls.output_option: path})
            planned += sink.cls.outputs(options, [clip.stem])
        for _, _, done in outputs:
            if done in writers:
                raise InputError(f"{writers[done].name} and {clip.name} would both write {done}")
            writers[done] = clip
        jobs.append(
            ClipJob(
                clip=str(clip),
                pipeline=pipeline,
                sets=tuple(sets),
                paths=tuple((key, path) for key, path, _ in outputs),
                done=tuple(done for _, _, done in outputs),
            )
        )
    check_paths([*clips, pipeline], planned)
    for _, target in targets:
        Path(target).mkdir(parents=True, exist_ok=True)
    return jobs


def run_folder(
    jobs: Sequence[ClipJob],
    *,
    workers: int = 1,
    skip_existing: bool = False,
    quiet: bool = False,
    report: Callable[[ClipResult], None] | None = None,
    executor: Executor | None = None,
) -> list[ClipResult]:
    """Run every clip (``workers`` processes at a time, or by ``executor``); one result per
    job, in order.

    ``report`` is called as each clip finishes. On a terminal, unless ``quiet``, a bar
    counts the clips and frames done (frames/s, time left); clips run in this process show
    their own bar under it. A signal stops the run: the clips being processed are aborted
    (their outputs discarded) and the others are not started.
    """
    results: dict[str, ClipResult] = {}
    pending = []
    for job in jobs:
        if skip_existing and job.is_complete():
            results[job.clip] = ClipResult(job.clip, "skipped", reason="output exists")
        else:
            pending.append(job)
    overall = _ClipsProgress(len(pending))
    in_process = executor is None and workers == 1
    if not pending:
        finished: Iterator[ClipResult] = iter(())
    elif executor is not None:
        finished = executor(pending)
    elif in_process:
        finished = _run_here(pending, quiet=quiet, header=overall.renderable)
    else:
        finished = _run_in_workers(pending, workers)
    shown = pending and not quiet and console.is_terminal and not in_process
    live = Live(overall.renderable, console=console, transient=True, refresh_per_second=4)
    with live if shown else nullcontext():
        for result in finished:
            results[result.clip] = result
            overall.done(result)
            if report is not None:
                report(result)
    return [
        results.get(job.clip, ClipResult(job.clip, "not run", reason="interrupted")) for job in jobs
    ]


def run_clip(
    job: ClipJob,
    *,
    quiet: bool,
    signals: Sequence[signal.Signals] = STOP_SIGNALS,
    header: RenderableType | None = None,
) -> ClipResult:
    """One clip, in this process (``header``: shown above its progress on a terminal)."""
    try:
        spec = load_pipeline(job.pipeline, job.sets, input=job.clip, values=job.paths)
        summary = run_pipeline(
            spec, quiet=quiet, keep_interrupted=False, signals=signals, header=header
        )
    except InputError as error:
        return ClipResult(job.clip, "failed", reason=str(error))
    status: ClipStatus = summary.status if summary.status in ("done", "failed") else "interrupted"
    reason = summary.error or ""
    if status == "done" and summary.frames == 0:
        status, reason = "failed", "no frame came through; nothing was written"
    return ClipResult(job.clip, status, summary.frames, summary.seconds, reason, summary.as_dict())


def _run_here(
    jobs: Sequence[ClipJob], *, quiet: bool, header: RenderableType
) -> Iterator[ClipResult]:
    for job in jobs:
        result = run_clip(job, quiet=quiet, header=header)
        yield result
        if result.status == "interrupted":
            return


def _run_in_workers(jobs: Sequence[ClipJob], workers: int) -> Iterator[ClipResult]:
    stopping = False
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_sigint) as pool:
        futures: dict[Future[ClipResult], ClipJob] = {
            pool.submit(_run_clip_in_worker, job): job for job in jobs
        }

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True
            for future in futures:
                future.cancel()
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGTERM)

        with handling_signals(STOP_SIGNALS, stop):
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    yield future.result()
                except Exception as error:
                    status: ClipStatus = "interrupted" if stopping else "failed"
                    yield ClipResult(futures[future].clip, status, reason=f"worker: {error}")


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops them with SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_clip_in_worker(job: ClipJob) -> ClipResult:
    return run_clip(job, quiet=True, signals=(signal.SIGTERM,))


class _ClipsProgress:
    """The overall bar of a folder run: clips done of all, frames, frames/s, time left."""

    def __init__(self, total: int) -> None:
        self._progress = Progress(
            TextColumn("clips"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[frames]} frames, {task.fields[fps]:.1f} frames/s"),
            TimeRemainingColumn(),
            console=console,
            auto_refresh=False,
        )
        self._task = self._progress.add_task("clips", total=total, frames=0, fps=0.0)
        self._started, self._frames = time.perf_counter(), 0

    @property
    def renderable(self) -> RenderableType:
        """What to show: drawn afresh each time it is rendered."""
        return self._progress

    def done(self, result: ClipResult) -> None:
        self._frames += result.frames
        fps = self._frames / max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(self._task, advance=1, frames=self._frames, fps=fps)


def clips_table(results: Sequence[ClipResult], seconds: float | None = None) -> Table:
    """The end-of-run table of a folder run; ``seconds``, the run's wall time, adds the
    overall frames/s to the title."""
    title = "clips"
    if seconds is not None:
        totals = folder_totals(results, seconds)
        counts = ", ".join(f"{n} {status}" for status, n in totals["counts"].items() if n)
        title += (
            f": {counts}; {totals['frames']} frames in {seconds:.1f} s "
            f"({totals['fps']:.1f} frames/s)"
        )
    table = Table(title=title, title_justify="left", min_width=len(title))
    for column in ("clip", "frames", "seconds", "status", "reason"):
        table.add_column(column, justify="right" if column in ("frames", "seconds") else "left")
    colours = {"done": "green", "skipped": "cyan", "failed": "red"}
    for result in results:
        colour = colours.get(result.status, "yellow")
        table.add_row(
            escape(Path(result.clip).name),
            str(result.frames),
            f"{result.seconds:.1f}",
            f"[{colour}]{result.status}[/]",
            escape(result.reason),
        )
    return table


def status_counts(results: Sequence[ClipResult]) -> dict[str, int]:
    """How many clips ended with each status."""
    return {status: sum(r.status == status for r in results) for status in get_args(ClipStatus)}


def folder_totals(results: Sequence[ClipResult], seconds: float) -> dict[str, Any]:
    """Clips per status, the frames the clips' pipelines processed, frames/s over ``seconds``
    (the run's wall time)."""
    frames = sum(result.frames for result in results)
    fps = frames / seconds if seconds > 0 else 0.0
    return {
        "counts": status_counts(results),
        "frames": frames,
        "seconds": round(seconds, 3),
        "fps": round(fps, 2),
    }


def folder_summary(results: Sequence[ClipResult], seconds: float | None = None) -> dict[str, Any]:
    """The ``--json`` document of a folder run (with the totals when ``seconds`` is given)."""
    clips = [asdict(result) for result in results]
    if seconds is None:
        return {"clips": clips, "counts": status_counts(results)}
    return {"clips": clips, **folder_totals(results, seconds)}
