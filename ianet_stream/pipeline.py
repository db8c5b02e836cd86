"""Folder runs: one pipeline run per clip of a folder, in worker processes when asked.

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from rich.markup import escape
from rich.table import Table

from ianet.errors import InputError
from ianet_stream.cli import ConfigError
from ianet_stream.config import PipelineSpec, load_pipeline
from ianet_stream.runner import STOP_SIGNALS, handling_signals, run_pipeline
from ianet_stream.uris import VIDEO_EXTENSIONS, list_videos

ClipStatus = Literal["done", "failed", "skipped", "interrupted", "not run"]


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
        return bool(self.done) and all(Path(path).exists() for path in self.done)


@dataclass
class ClipResult:
    clip: str
    status: ClipStatus
    frames: int = 0
    seconds: float = 0.0
    reason: str = ""
    summary: dict[str, Any] | None = field(default=None, repr=False)


def plan_folder(
    pipeline: str, sets: Sequence[str], spec: PipelineSpec, folder: Path
) -> list[ClipJob]:
    """The clips of ``folder`` (video files, sorted) and where each one's outputs go.

    ``spec`` is the pipeline as loaded for the run (with ``--output``): each sink's
    ``path`` is the folder its clips' outputs go into; the folders are created.
    """
    clips = list_videos(folder)
    if not clips:
        raise InputError(f"{folder}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    targets = []
    for sink in spec.sinks:
        target = getattr(sink.options, "path", None)
        if target is None:
            continue
        target = str(target)
        if target == "-" or Path(target).suffix.lower().lstrip(".") in VIDEO_EXTENSIONS:
            raise ConfigError(
                f"{sink.path}.path: a folder run writes one output per clip into a folder, "
                f"got {target!r} (give --output DIR)"
            )
        if Path(target).is_file():
            raise ConfigError(f"{sink.path}.path: {target} is a file, not a folder")
        Path(target).mkdir(parents=True, exist_ok=True)
        targets.append((sink, target))
    jobs, writers = [], {}
    for clip in clips:
        outputs = [
            (f"stages.{sink.index}.path", *sink.cls.clip_output(sink.options, target, clip.stem))
            for sink, target in targets
        ]
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
    return jobs


def run_folder(
    jobs: Sequence[ClipJob],
    *,
    workers: int = 1,
    skip_existing: bool = False,
    quiet: bool = False,
    report: Callable[[ClipResult], None] | None = None,
) -> list[ClipResult]:
    """Run every clip (``workers`` processes at a time); one result per job, in order.

    ``report`` is called as each clip finishes. A signal stops the run: the clips being
    processed are aborted (their outputs discarded) and the others are not started.
    """
    results: dict[str, ClipResult] = {}
    pending = []
    for job in jobs:
        if skip_existing and job.is_complete():
            results[job.clip] = ClipResult(job.clip, "skipped", reason="output exists")
        else:
            pending.append(job)
    finished = (
        _run_here(pending, quiet=quiet) if workers == 1 else _run_in_workers(pending, workers)
    )
    for result in finished:
        results[result.clip] = result
        if report is not None:
            report(result)
    return [
        results.get(job.clip, ClipResult(job.clip, "not run", reason="interrupted")) for job in jobs
    ]


def run_clip(
    job: ClipJob, *, quiet: bool, signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> ClipResult:
    """One clip, in this process."""
    try:
        spec = load_pipeline(job.pipeline, job.sets, input=job.clip, values=job.paths)
        summary = run_pipeline(spec, quiet=quiet, keep_interrupted=False, signals=signals)
    except InputError as error:
        return ClipResult(job.clip, "failed", reason=str(error))
    status: ClipStatus = summary.status if summary.status in ("done", "failed") else "interrupted"
    return ClipResult(
        job.clip, status, summary.frames, summary.seconds, summary.error or "", summary.as_dict()
    )


def _run_here(jobs: Sequence[ClipJob], *, quiet: bool) -> Iterator[ClipResult]:
    for job in jobs:
        result = run_clip(job, quiet=quiet)
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


def clips_table(results: Sequence[ClipResult]) -> Table:
    """The end-of-run table of a folder run."""
    table = Table(title="clips", title_justify="left")
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


def folder_summary(results: Sequence[ClipResult]) -> dict[str, Any]:
    """The ``--json`` document of a folder run."""
    counts = {status: sum(r.status == status for r in results) for status in get_args(ClipStatus)}
    return {"clips": [asdict(result) for result in results], "counts": counts}
