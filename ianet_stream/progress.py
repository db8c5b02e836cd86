"""What a run shows while it lasts, on a terminal, and the one line it ends with elsewhere.

On a terminal (``console.is_terminal``) a run shows, refreshed four times a second, a
progress bar per stream for inputs of known length (percent, frames, frames/s, time
left) or, for live inputs and inputs of unknown length, the status line (frames per
stage, frames/s, latency, drops). Elsewhere (a pipe, a log file) nothing is shown while
the run lasts; ``summary_line`` is the one line it ends with, never wrapped.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ianet_stream.console import console
from ianet_stream.stats import RunStats, RunSummary, status_line


def frames_progress(label: str = "{task.description}") -> Progress:
    """A progress display of frames: bar, percent, frames done of all, frames/s, time left.

    Not started: its ``get_renderable()`` goes into the runner's live display.
    """
    return Progress(
        TextColumn(label),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("frames, {task.fields[fps]:.1f} frames/s"),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=False,
    )


class RunDisplay:
    """The renderable a running pipeline shows: bars for streams of known length, the
    status line otherwise; ``header`` (e.g. a folder run's overall bar) above them."""

    def __init__(self, stats: RunStats, header: RenderableType | None = None) -> None:
        self.stats = stats
        self.header = header
        self._progress = frames_progress()
        self._tasks: dict[str, TaskID] = {}

    def render(self, seconds: float, stopping: bool) -> RenderableType:
        streams = list(self.stats.health.streams.items())
        known = streams and self.stats.liveness is not None
        known = known and self.stats.liveness.options is None
        known = known and all(health.expected for _, health in streams)
        if known:
            for stream, health in streams:
                if stream not in self._tasks:
                    name = escape(health.name)
                    self._tasks[stream] = self._progress.add_task(
                        name, total=health.expected, fps=0.0
                    )
                fps = health.frames_out / seconds if seconds > 0 else 0.0
                total = max(health.expected, health.frames_out)
                self._progress.update(
                    self._tasks[stream], completed=health.frames_out, total=total, fps=fps
                )
            body: RenderableType = self._progress.get_renderable()
        else:
            line = status_line(self.stats, seconds)
            body = Text(line + ("  |  stopping (again to quit at once)" if stopping else ""))
        return body if self.header is None else Group(self.header, body)


def summary_line(summary: RunSummary) -> str:
    """The one line a run ends with when there is no terminal."""
    line = (
        f"{summary.input}: {summary.frames} frames in {summary.seconds:.1f} s "
        f"({summary.fps:.1f} frames/s), {summary.status}"
    )
    latency = summary.stats.latency
    if latency.count:
        line += f"; latency p95 {latency.percentile_ms(95):.0f} ms"
    if summary.stats.drops:
        line += f"; {summary.stats.drops} dropped"
    return line
