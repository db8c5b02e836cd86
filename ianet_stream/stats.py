"""Figures of a run: per-stage frames, frames/s, time per frame, queue depth, drops and
counters, and the end-to-end latency (capture to leaving the last stage); the live status
line, the end-of-run table and the JSON summary."""

from __future__ import annotations

import json
import math
import platform
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from ianet.atomic import write_text
from ianet.device import describe_cpu
from ianet_stream import __version__
from ianet_stream.admission import StreamsHealth
from ianet_stream.errors import InputError
from ianet_stream.stage import Liveness
from ianet_stream.uris import redact

if TYPE_CHECKING:
    from ianet_stream.config import PipelineSpec

Status = Literal["done", "interrupted", "aborted", "failed"]

_LOG_BASE_S = 1e-6  # the smallest latency told apart (1 us)
_LOG_RATIO = 1.02  # bucket width: a percentile is within 1 % of the true value
_LOG_BUCKETS = math.ceil(math.log(1e4 / _LOG_BASE_S) / math.log(_LOG_RATIO))  # up to ~3 hours


class LatencyLog:
    """A distribution of durations in seconds, in constant memory (a run may last for days).

    Durations go into logarithmic buckets 2 % wide; a percentile is the middle of its
    bucket (within 1 % of the exact value), clamped to the smallest and largest seen.
    ``snapshot()`` and ``percentile_ms(q, since=snapshot)`` give the figures of the
    durations recorded after the snapshot (a window of time). Written by one thread, read by
    any (copies are taken whole under the GIL).
    """

    def __init__(self) -> None:
        self._counts = array("q", bytes(8 * _LOG_BUCKETS))
        self.count = 0
        self.total = 0.0
        self.lowest = math.inf
        self.highest = 0.0

    def record(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        bucket = 0 if seconds <= _LOG_BASE_S else int(math.log(seconds / _LOG_BASE_S, _LOG_RATIO))
        self._counts[min(bucket, _LOG_BUCKETS - 1)] += 1
        self.count += 1
        self.total += seconds
        self.lowest = min(self.lowest, seconds)
        self.highest = max(self.highest, seconds)

    def snapshot(self) -> array:
        """The bucket counts now, for ``percentile_ms(q, since=...)`` later."""
        return self._counts[:]

    def percentile_ms(self, q: float, since: array | None = None) -> float:
        """The ``q``-th percentile (nearest rank) in milliseconds; 0 when nothing was recorded."""
        counts = self._counts[:]
        if since is not None:
            counts = array("q", (now - then for now, then in zip(counts, since, strict=True)))
        recorded = sum(counts)
        if not recorded:
            return 0.0
        rank, seen = max(1, math.ceil(q / 100 * recorded)), 0
        for bucket, count in enumerate(counts):
            seen += count
            if seen >= rank:
                middle = _LOG_BASE_S * _LOG_RATIO ** (bucket + 0.5)
                return 1000 * min(max(middle, self.lowest), self.highest)
        return 1000 * self.highest

    @property
    def mean_ms(self) -> float:
        return 1000 * self.total / self.count if self.count else 0.0


class QueueView(Protocol):
    """What the figures read of the queue in front of a stage (``runner.MessageQueue``)."""

    peak: int

    def __len__(self) -> int: ...


class StageStats:
    """What one stage did. Updated by the stage's thread only; read by the others.

    ``busy`` is the time spent in the stage's own calls; ``frames/s`` is frames over
    ``busy`` (the stage's throughput when it has input); each frame of a batch is charged
    the call's time divided by the batch size. ``inbox`` is the queue in front of the stage
    (``None`` for the source). ``stale`` counts the frames the stage dropped as stale after
    a stall (live inputs); for the source, ``not_admitted`` counts the frames dropped at the
    door of a live pipeline (``ianet_stream.admission``); ``drops`` adds those the stage
    counted itself. ``counters`` is the stage's ``context.stats`` (``drops``,
    ``reconnects``, ``degraded``, ...).
    """

    def __init__(
        self, name: str, label: str, counters: dict[str, Any], inbox: QueueView | None = None
    ) -> None:
        self.name = name
        self.label = label
        self.counters = counters
        self.inbox = inbox
        self.frames = 0
        self.busy = 0.0
        self.stale = 0
        self.settings: dict[str, Any] = {}  # what the stage resolved (``Stage.describe``)
        self.not_admitted: Callable[[], int] = lambda: 0
        self.times = LatencyLog()

    def record(self, seconds: float, frames: int) -> None:
        """One call took ``seconds`` and handled ``frames`` frames (0 for stream markers)."""
        self.busy += seconds
        for _ in range(frames):
            self.times.record(seconds / frames)
        self.frames += frames

    @property
    def fps(self) -> float:
        return self.frames / self.busy if self.busy > 0 else 0.0

    @property
    def drops(self) -> int:
        return self.not_admitted() + self.stale + int(self.counters.get("drops", 0))

    @property
    def queue_depth(self) -> int:
        return len(self.inbox) if self.inbox is not None else 0

    @property
    def queue_max(self) -> int:
        return self.inbox.peak if self.inbox is not None else 0

    def as_dict(self, seconds: float) -> dict[str, Any]:
        return {
            "stage": self.label,
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "mean_ms": round(self.times.mean_ms, 3),
            "p50_ms": round(self.times.percentile_ms(50), 3),
            "p95_ms": round(self.times.percentile_ms(95), 3),
            "busy": round(self.busy / seconds, 3) if seconds > 0 else 0.0,
            "drops": self.drops,
            "queue_max": self.queue_max,
            "counters": dict(self.counters),
            "settings": dict(self.settings),
        }


@dataclass
class RunStats:
    """The live figures of a run, read by the status line and the metrics endpoint while
    the stages update them: one ``StageStats`` per stage and the end-to-end ``latency``
    (capture to leaving the last stage) of every frame that got through."""

    stages: list[StageStats]
    latency: LatencyLog = field(default_factory=LatencyLog)
    liveness: Liveness | None = None  # the source's, once it is open
    health: StreamsHealth = field(default_factory=StreamsHealth)
    degradations: list[str] = field(default_factory=list)

    def watch_door(self, admission: Any) -> None:
        """Count the frames dropped at ``admission`` (a live input's door) as the
        source's drops."""
        if self.stages:
            self.stages[0].not_admitted = lambda: admission.dropped

    @property
    def frames(self) -> int:
        """Frames that went through the whole pipeline."""
        return self.stages[-1].frames if self.stages else 0

    @property
    def drops(self) -> int:
        return sum(stage.drops for stage in self.stages)

    @property
    def reconnects(self) -> int:
        return sum(int(stage.counters.get("reconnects", 0)) for stage in self.stages)


@dataclass
class RunSummary:
    """The outcome of one pipeline run on one input.

    ``status``: ``done``; ``interrupted`` (stopped by a signal, the frames in flight
    finished, outputs kept); ``aborted`` (stopped at once: outputs discarded, except a live
    input's, which keep what was written); ``failed`` (``error`` says why).
    """

    input: str
    status: Status
    seconds: float
    stats: RunStats = field(default_factory=lambda: RunStats([]))
    error: str | None = None
    exception: Exception | None = field(default=None, repr=False)
    device: str = "cpu"

    @property
    def stages(self) -> list[StageStats]:
        return self.stats.stages

    @property
    def frames(self) -> int:
        return self.stats.frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        latency = self.stats.latency
        return {
            "input": self.input,
            "status": self.status,
            "error": self.error,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "drops": self.stats.drops,
            "reconnects": self.stats.reconnects,
            "policy": None if self.stats.liveness is None else self.stats.liveness.policy,
            "policy_reason": None if self.stats.liveness is None else self.stats.liveness.reason,
            "latency_ms": {
                "p50": round(latency.percentile_ms(50), 3),
                "p95": round(latency.percentile_ms(95), 3),
            },
            "stages": [stage.as_dict(self.seconds) for stage in self.stages],
            "streams": self.stats.health.as_list(),
            "degradations": list(self.stats.degradations),
        }


def status_line(stats: RunStats, seconds: float) -> str:
    """The live line: frames per stage, end-to-end frames/s and latency, drops, elapsed time."""
    counts = " > ".join(f"{stage.name} {stage.frames}" for stage in stats.stages)
    fps = stats.frames / seconds if seconds > 0 else 0.0
    line = f"{counts}  |  {fps:.1f} frames/s"
    if stats.latency.count:
        line += f"  |  latency p95 {stats.latency.percentile_ms(95):.0f} ms"
    if drops := stats.drops:
        line += f"  |  {drops} dropped"
    return f"{line}  |  {seconds:.1f} s"


def stats_table(summary: RunSummary) -> Group:
    """The end-of-run tables: one row per stage with the totals above and below it; for
    live inputs and several streams, one row per stream; what was degraded, if anything."""
    parts: list[Any] = [_stages_table(summary)]
    if summary.stats.liveness is not None and (
        summary.stats.liveness.options is not None or len(summary.stats.health.streams) > 1
    ):
        parts.append(streams_table(summary.stats.health.as_list()))
    parts += [f"degraded: {change}" for change in summary.stats.degradations]
    return Group(*parts)


def streams_table(streams: list[dict[str, Any]]) -> Table:
    """One row per stream: state, frames in and out, rates, drops, age of the last frame."""
    table = Table(box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    columns = ["stream", "state", "in", "out", "in/s", "out/s", "drops", "last frame"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("stream", "state") else "right")
    for stream in streams:
        age = stream["last_frame_age_s"]
        table.add_row(
            escape(stream["stream"]),
            stream["state"],
            str(stream["frames_in"]),
            str(stream["frames_out"]),
            f"{stream['input_fps']:.1f}",
            f"{stream['processed_fps']:.1f}",
            str(stream["drops"]),
            "" if age is None else f"{age:.1f} s ago",
        )
    return table


def _stages_table(summary: RunSummary) -> Table:
    """One row per stage; the totals above and below it."""
    latency, totals = summary.stats.latency, summary.stats
    caption = f"drops {totals.drops}, reconnects {totals.reconnects}"
    if totals.liveness is not None:
        caption += f"; policy {totals.liveness.policy} ({totals.liveness.reason})"
    if latency.count:
        caption = (
            f"latency (capture to last stage) p50 {latency.percentile_ms(50):.1f} ms, "
            f"p95 {latency.percentile_ms(95):.1f} ms; {caption}"
        )
    table = Table(
        title=f"{summary.input}: {summary.frames} frames in {summary.seconds:.1f} s "
        f"({summary.fps:.1f} frames/s, {summary.status})",
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    counters = [{k: v for k, v in s.counters.items() if k != "drops"} for s in summary.stages]
    columns = ["stage", "frames", "frames/s", "mean ms", "p95 ms", "busy", "queue", "drops"]
    for column in columns + (["counters"] if any(counters) else []):
        left = column in ("stage", "counters")
        table.add_column(column, justify="left" if left else "right", no_wrap=column == "stage")
    for number, (stage, own) in enumerate(zip(summary.stages, counters, strict=True), 1):
        row = stage.as_dict(summary.seconds)
        cells = [
            f"{number} {stage.name}",
            str(stage.frames),
            f"{stage.fps:.1f}",
            f"{row['mean_ms']:.1f}",
            f"{row['p95_ms']:.1f}",
            f"{100 * row['busy']:.0f}%",
            str(stage.queue_max) if stage.inbox is not None else "",
            str(stage.drops),
        ]
        if any(counters):
            cells.append(" ".join(f"{key}={value}" for key, value in own.items()))
        table.add_row(*cells)
    return table


def run_report(
    spec: PipelineSpec, summary: RunSummary, started: datetime, outputs: list[str]
) -> dict[str, Any]:
    """The ``--json`` document of one run: the summary, the inputs and outputs (credentials
    hidden), the resolved pipeline, the model and the flow as the stages resolved them,
    the device, the versions of the software and the timing."""
    stages = {stage.name: stage.settings for stage in summary.stages}
    report = summary.as_dict()
    report.update(
        inputs=[redact(uri) for uri in spec.inputs],
        outputs=[redact(output) for output in outputs],
        pipeline={
            "device": spec.device,
            "batch": spec.batch,
            "stages": [{stage.name: _redacted(asdict(stage.options))} for stage in spec.stages],
        },
        model=stages.get("saliency"),
        flow=stages.get("flow"),
        device=summary.device,
        versions=versions(),
        timing={
            "started": started.isoformat(timespec="seconds"),
            "seconds": round(summary.seconds, 3),
        },
    )
    return report


def _redacted(value: Any) -> Any:
    """Options as JSON values, every URL's credentials hidden."""
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return str(value)


def versions() -> dict[str, str]:
    """The versions of what ran: ianet-stream, Python, the libraries, FFmpeg; the machine
    and its CPU (name, cores, vector extensions)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"ianet-stream": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "av", "numpy", "kornia", "pillow"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    try:
        import av

        found["ffmpeg"] = ".".join(map(str, av.library_versions["libavcodec"])) + " (libavcodec)"
    except (ImportError, KeyError):
        pass
    found["machine"] = f"{platform.machine()} {platform.system()}"
    found["cpu"] = describe_cpu()
    return found


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` through a temporary name (never a half-written file);
    ``InputError`` names the file when it cannot be written."""
    try:
        write_text(path, json.dumps(document, indent=2) + "\n")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InputError(f"{path}: cannot write the summary ({reason})") from None
