"""Per-stage statistics of a run: frames, frames/s, latency, counters; the live line and
the end-of-run table."""

from __future__ import annotations

import json
import math
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

Status = Literal["done", "interrupted", "aborted", "failed"]


class StageStats:
    """What one stage did. Updated by the stage's thread only; read by the others.

    ``busy`` is the time spent in the stage's own calls; ``frames/s`` is frames over
    ``busy`` (the stage's throughput when it has input); each frame of a batch is charged
    the call's time divided by the batch size. ``counters`` is the stage's
    ``context.stats`` (``drops``, ``reconnects``, ...).
    """

    def __init__(self, name: str, label: str, counters: dict[str, Any]) -> None:
        self.name = name
        self.label = label
        self.counters = counters
        self.frames = 0
        self.busy = 0.0
        self._latencies = array("d")

    def record(self, seconds: float, frames: int) -> None:
        """One call took ``seconds`` and handled ``frames`` frames (0 for stream markers)."""
        self.busy += seconds
        if frames:
            self.frames += frames
            self._latencies.extend([seconds / frames] * frames)

    @property
    def fps(self) -> float:
        return self.frames / self.busy if self.busy > 0 else 0.0

    @property
    def mean_ms(self) -> float:
        return 1000 * sum(self._latencies) / len(self._latencies) if self._latencies else 0.0

    @property
    def p95_ms(self) -> float:
        if not self._latencies:
            return 0.0
        ordered = sorted(self._latencies)
        return 1000 * ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    def as_dict(self, seconds: float) -> dict[str, Any]:
        return {
            "stage": self.label,
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "mean_ms": round(self.mean_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "busy": round(self.busy / seconds, 3) if seconds > 0 else 0.0,
            "counters": dict(self.counters),
        }


@dataclass
class RunSummary:
    """The outcome of one pipeline run on one input.

    ``status``: ``done``; ``interrupted`` (stopped by a signal, outputs flushed and kept);
    ``aborted`` (stopped at once, outputs discarded); ``failed`` (``error`` says why).
    """

    input: str
    status: Status
    seconds: float
    stages: list[StageStats] = field(default_factory=list)
    error: str | None = None
    exception: Exception | None = field(default=None, repr=False)

    @property
    def frames(self) -> int:
        """Frames that went through the whole pipeline."""
        return self.stages[-1].frames if self.stages else 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "status": self.status,
            "error": self.error,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "stages": [stage.as_dict(self.seconds) for stage in self.stages],
        }


def status_line(stages: list[StageStats], seconds: float) -> str:
    """The live line: frames per stage, end-to-end frames/s, elapsed time."""
    counts = " > ".join(f"{stage.name} {stage.frames}" for stage in stages)
    fps = stages[-1].frames / seconds if seconds > 0 else 0.0
    return f"{counts}  |  {fps:.1f} frames/s  |  {seconds:.1f} s"


def stats_table(summary: RunSummary) -> Table:
    """The end-of-run table, one row per stage."""
    table = Table(
        title=f"{summary.input}: {summary.frames} frames in {summary.seconds:.1f} s "
        f"({summary.fps:.1f} frames/s, {summary.status})",
        title_justify="left",
    )
    for column in ("stage", "frames", "frames/s", "mean ms", "p95 ms", "busy", "counters"):
        table.add_column(column, justify="left" if column in ("stage", "counters") else "right")
    for stage in summary.stages:
        row = stage.as_dict(summary.seconds)
        table.add_row(
            stage.label,
            str(stage.frames),
            f"{stage.fps:.1f}",
            f"{stage.mean_ms:.1f}",
            f"{stage.p95_ms:.1f}",
            f"{100 * row['busy']:.0f}%",
            " ".join(f"{key}={value}" for key, value in stage.counters.items()),
        )
    return table


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` through a temporary name (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
