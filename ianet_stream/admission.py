"""Live inputs at full capacity: frames are let in at the door, and streams are watched.

``Admission`` is the runner's door for live inputs with ``policy: latest`` (the idea of
MediaPipe's FlowLimiter): at most ``in_flight`` frames of each stream are in the pipeline.
A frame that arrives while its stream is full waits in a one-frame slot; a newer frame
replaces it, and the replaced one is dropped there, counted, before any stage has worked
on it. When a frame leaves the pipeline, the waiting frame of its stream goes in. So every
frame let in is finished, and the next one in is always the freshest. A frame let in after
a dropped one carries the dropped frame's picture (``Frame.previous``): its flow is then
estimated against the frame just before it, as the model was trained.

``StreamHealth`` follows each stream: its state (starting, running, reconnecting, stalled,
ended, failed), the rates of frames coming in and going out, drops and the age of its last
frame; the run's table, ``--json`` and the Prometheus endpoint show it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ianet_stream.frame import Frame

log = logging.getLogger(__name__)

State = Literal["starting", "running", "reconnecting", "stalled", "ended", "failed"]
STALLED_AFTER_S = 2.0  # a stream with no new frame for this long (while open) is stalled
_RATE_WINDOW_S = 5.0  # rates are measured over the last seconds


class _Rate:
    """Events per second over the last ``_RATE_WINDOW_S`` seconds."""

    def __init__(self) -> None:
        self._times: list[float] = []

    def add(self, now: float) -> None:
        self._times.append(now)
        if len(self._times) > 4096 or now - self._times[0] > 2 * _RATE_WINDOW_S:
            self._times = [t for t in self._times if now - t <= _RATE_WINDOW_S]

    def per_second(self, now: float) -> float:
        recent = [t for t in self._times if now - t <= _RATE_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], 1e-6)
        return len(recent) / span


@dataclass
class StreamHealth:
    """What one stream is doing (read by any thread; written by the runner)."""

    name: str
    state: State = "starting"
    expected: int | None = None  # frames the source announced
    frames_in: int = 0
    frames_out: int = 0
    drops: int = 0
    last_capture: float | None = None
    _in: _Rate = field(default_factory=_Rate, repr=False)
    _out: _Rate = field(default_factory=_Rate, repr=False)

    def arrived(self, frame: Frame) -> None:
        self.frames_in += 1
        self.last_capture = frame.captured
        self._in.add(frame.captured)
        if self.state in ("stalled", "reconnecting"):
            self.state = "running"

    def end(self) -> None:
        """The stream ended (a stream that failed stays failed)."""
        if self.state != "failed":
            self.state = "ended"

    def finished(self, now: float) -> None:
        self.frames_out += 1
        self._out.add(now)
        if self.state == "starting":
            self.state = "running"

    def current_state(self, now: float) -> State:
        """The state, with ``stalled`` for an open stream whose frames stopped coming."""
        waiting = self.last_capture is not None and now - self.last_capture > STALLED_AFTER_S
        if self.state in ("starting", "running") and waiting:
            return "stalled"
        return self.state

    def as_dict(self, now: float) -> dict[str, Any]:
        age = None if self.last_capture is None else now - self.last_capture
        return {
            "stream": self.name,
            "state": self.current_state(now),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "input_fps": round(self._in.per_second(now), 2),
            "processed_fps": round(self._out.per_second(now), 2),
            "drops": self.drops,
            "last_frame_age_s": None if age is None else round(age, 3),
        }


class StreamsHealth:
    """Every stream's ``StreamHealth``, by stream id."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamHealth] = {}
        self._lock = threading.Lock()

    def get(
        self, stream: str, name: str | None = None, expected: int | None = None
    ) -> StreamHealth:
        with self._lock:
            health = self.streams.get(stream)
            if health is None:
                health = self.streams[stream] = StreamHealth(name or stream, expected=expected)
            return health

    def report(self, stream: str, state: str) -> None:
        """A source's word on one of its streams (``reconnecting``, ``running``)."""
        self.get(stream).state = state  # type: ignore[assignment]

    def finished(self, frames: Iterable[Frame]) -> None:
        now = time.monotonic()
        for frame in frames:
            self.get(frame.stream).finished(now)

    def fail_open(self) -> None:
        """The input failed: every stream still open failed with it."""
        for health in list(self.streams.values()):
            if health.state != "ended":
                health.state = "failed"

    def as_list(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [health.as_dict(now) for health in list(self.streams.values())]


class Admission:
    """The door of a live pipeline with ``policy: latest``.

    Args:
        in_flight: the most frames of one stream in the pipeline at once.
        admit: puts a frame into the pipeline (the first queue).
        health: the streams' health, where drops are counted.
    """

    def __init__(
        self, in_flight: int, admit: Callable[[Frame], None], health: StreamsHealth
    ) -> None:
        self.in_flight = in_flight
        self.dropped = 0
        self._admit = admit
        self._health = health
        self._inside: dict[str, int] = {}
        self._waiting: dict[str, Frame] = {}
        self._lock = threading.Lock()

    def offer(self, frame: Frame) -> None:
        """A new frame: in now if its stream has room, else it waits (replacing, and
        dropping, the frame that waited)."""
        with self._lock:
            stream = frame.stream
            replaced = self._waiting.pop(stream, None)  # always the frame just before this one
            if replaced is not None:
                self._drop(replaced)
                frame.previous = replaced.image
            if self._inside.get(stream, 0) < self.in_flight:
                self._let_in(frame)
            else:
                self._waiting[stream] = frame

    def release(self, frames: Iterable[Frame]) -> None:
        """Frames left the pipeline (finished, or dropped by a stage): their streams have
        room again, and the frames waiting there go in."""
        with self._lock:
            for frame in frames:
                stream = frame.stream
                self._inside[stream] = max(0, self._inside.get(stream, 0) - 1)
                if stream in self._waiting and self._inside[stream] < self.in_flight:
                    self._let_in(self._waiting.pop(stream))

    def end(self, stream: str) -> None:
        """The stream ended: the frame waiting at its door goes in (it is the last one)."""
        with self._lock:
            waiting = self._waiting.pop(stream, None)
            if waiting is not None:
                self._let_in(waiting)

    def narrow(self) -> str | None:
        """One frame fewer of each stream in the pipeline (not below one): lower latency,
        as stages no longer work on two frames of a stream at once, for less throughput.
        Returns what changed, or None when one is already the limit."""
        with self._lock:
            if self.in_flight <= 1:
                return None
            self.in_flight -= 1
            return f"frames of a stream in flight {self.in_flight + 1} -> {self.in_flight}"

    def _let_in(self, frame: Frame) -> None:
        self._inside[frame.stream] = self._inside.get(frame.stream, 0) + 1
        self._admit(frame)

    def _drop(self, frame: Frame) -> None:
        self.dropped += 1
        self._health.get(frame.stream).drops += 1


class LatencyGuard:
    """Holds a live pipeline to its latency bound.

    The capture-to-output latency of finished frames is measured in windows of ``WINDOW``
    frames, after ``WARMUP`` frames (models warm up). When a window's second-slowest frame
    is above the bound (the bound is meant for nearly every frame, not the typical one), the
    guard warns and, with ``degrade``, calls ``step()`` for one degradation step (the runner
    asks the slowest stage that still can, and at last lets fewer frames in), then measures
    again from frames that went through after the change; ``step`` returns False when
    nothing is left.
    """

    WARMUP = 4
    WINDOW = 8

    def __init__(self, bound_s: float, degrade: bool, step: Callable[[], bool]) -> None:
        self.bound_s = bound_s
        self.degrade = degrade
        self._step = step
        self._skip = self.WARMUP
        self._window: list[float] = []
        self._warned = False
        self.exhausted = False

    def record(self, latency_s: float) -> None:
        if self._skip > 0:
            self._skip -= 1
            return
        self._window.append(latency_s)
        if len(self._window) < self.WINDOW:
            return
        slow = sorted(self._window)[-2]
        self._window.clear()
        if slow <= self.bound_s or self.exhausted:
            return
        if not self._warned:
            self._warned = True
            plan = "making stages cheaper step by step" if self.degrade else "degrade is off"
            log.warning(
                "frames take %.0f ms from capture to output, more than max_latency_ms (%.0f); %s",
                1000 * slow,
                1000 * self.bound_s,
                plan,
            )
        if not self.degrade:
            self.exhausted = True
            return
        if not self._step():
            self.exhausted = True
            log.warning(
                "no stage can be made cheaper; frames take %.0f ms, above max_latency_ms (%.0f)",
                1000 * slow,
                1000 * self.bound_s,
            )
            return
        self._skip = self.WARMUP  # measure frames that went through after the change
