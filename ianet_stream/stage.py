"""The Stage protocol: what every pipeline stage, built-in or third-party, implements.

A stage is a class registered under the ``ianet_stream.stages`` entry-point group:

    [project.entry-points."ianet_stream.stages"]
    mystage = "mypackage.module:MyStage"

It declares its options as a dataclass (``Options``) whose fields carry a one-line
``help`` in their metadata; the configuration layer validates YAML against it (types
from the annotations, impossible values rejected by ``Options.__post_init__`` raising
``ValueError``). The class also declares what the framework needs to know before it runs
anything (see ``docs/architecture.md``, "The stage contract"):

- ``requires`` / ``provides``: the ``Frame`` fields it reads and the ones it sets; a
  pipeline whose stage requires a field no earlier stage provides is refused when it is
  built ("composite needs saliency; add a saliency stage before it"). A requirement
  ``"saliency|mask"`` is met by either field.
- a source's ``input_option`` (the option ``--input`` sets) and a sink's
  ``output_option`` (the option ``--output`` sets, and the one a folder run points at
  each clip's output); ``None`` when the stage has none.
- a source's ``live()``: after ``open()``, whether the input is live and how it trades
  completeness for freshness (``Liveness``: ``LiveOptions``, or ``None`` for a file-like
  input, and the reason, which the run's table shows).

The runner drives each stage in its own thread:

    stage = MyStage(options, context)
    stage.open()
    for each message from upstream:
        StreamStart -> stage.start_stream(info), then forwarded
        frames      -> stage.process(frames), the returned frames forwarded
        StreamEnd   -> stage.end_stream(stream_id), returned frames forwarded, then the marker
    stage.close()        # always, also after an error or on shutdown

Sinks write to a temporary name and, in ``close``, rename it to the final name unless
``context.failed`` is set (the runner sets it before ``close`` when the run failed, was
aborted, or a folder run's clip was interrupted): they then remove the partial output, so
a final name only ever holds a complete output.

Sources implement ``run(emit)`` instead of ``process``: they call ``emit`` with
``StreamStart``, ``Frame`` and ``StreamEnd`` messages until the input ends or
``stop()`` is called (from another thread), then return.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from ianet_stream.frame import Frame, StreamEnd, StreamInfo, StreamStart
from ianet_stream.uris import StreamNames, parse_uri

Message = StreamStart | Frame | StreamEnd
Emit = Callable[[Message], None]


@dataclass
class Context:
    """Run-wide settings every stage sees.

    ``device`` is resolved (``"cpu"``, ``"cuda:0"``); ``batch`` is the largest number of
    frames a stage receives per ``process`` call; ``stats`` is where stages may record
    counters the end-of-run table shows (``drops``, ``reconnects``, ...); each stage has its
    own ``Context`` (same settings, its own ``stats``). ``failed`` is set by the runner
    before ``close`` when the outputs must not be kept (see the module docstring).
    ``request_stop``, set by the runner, ends the run as a first Ctrl-C does (the source
    stops, the frames in flight are finished, outputs kept): for a stage whose user asked
    to stop, e.g. by closing the preview window. ``stream_state``, set by the runner, lets
    a source say that one of its streams is ``reconnecting`` (or ``running`` again); the
    run's per-stream health shows it.
    """

    device: str = "cpu"
    batch: int = 4
    quiet: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    failed: bool = False
    request_stop: Callable[[], None] | None = field(default=None, repr=False)
    stream_state: Callable[[str, str], None] | None = field(default=None, repr=False)

    def report(self, stream: str, state: str) -> None:
        """Tell the runner the state of ``stream`` (a no-op outside a runner)."""
        if self.stream_state is not None:
            self.stream_state(stream, state)


@dataclass
class LiveOptions:
    """How a live source (camera, network stream, pipe) trades completeness for freshness.

    ``policy="latest"``: admission control (see ``ianet_stream.admission``): at most
    ``in_flight`` frames of a stream are in the pipeline; the newest frame that arrives
    meanwhile waits at the door and the ones it replaces are dropped there, before any stage
    works on them; every frame let in is finished. When frames take longer than
    ``max_latency_ms``, it says so and (``degrade``) makes stages cheaper in steps, then
    lets fewer frames in, until it fits. ``policy="all"`` drops nothing (recording).
    """

    policy: Literal["latest", "all"] = field(
        default="latest",
        metadata={
            "help": "latest: drop frames at the door to bound latency; all: keep every frame"
        },
    )
    max_latency_ms: float = field(
        default=500.0,
        metadata={
            "help": "with latest: the bound on capture-to-output latency; a pipeline slower "
            "than this is made cheaper (degrade) or warned about"
        },
    )
    in_flight: int = field(
        default=2,
        metadata={
            "help": "with latest: frames of a stream in the pipeline at once (1: lowest "
            "latency; 2: stages overlap)"
        },
    )
    degrade: bool = field(
        default=True,
        metadata={
            "help": "with latest: when frames take longer than max_latency_ms, lower the "
            "flow preset, the working sizes, reuse flow, then let one frame of a stream in "
            "at a time, step by step until it fits"
        },
    )

    def __post_init__(self) -> None:
        if not (self.max_latency_ms > 0 and math.isfinite(self.max_latency_ms)):
            raise ValueError(f"max_latency_ms: expected > 0, got {self.max_latency_ms}")
        if not 1 <= self.in_flight <= 16:
            raise ValueError(f"in_flight: expected 1 to 16 frames, got {self.in_flight}")

    @property
    def stall_s(self) -> float:
        """A frame older than this at a stage's door is stale after a stall, and dropped:
        four times the bound, at least two seconds."""
        return max(4 * self.max_latency_ms / 1000, 2.0)


class Liveness(NamedTuple):
    """What a source's input is: live (``options``, how it trades completeness for
    freshness) or file-like (``options`` None: every frame processed), and why."""

    options: LiveOptions | None
    reason: str

    @property
    def policy(self) -> str:
        """``latest``, ``all`` or ``file``, for tables and summaries."""
        return "file" if self.options is None else self.options.policy


@dataclass
class NoOptions:
    """For stages without options."""


FRAME_FIELDS = frozenset({"image", "mask", "flow", "flow_image", "saliency", "output"})


class Stage:
    """Base class of transform and sink stages.

    Class attributes: ``name`` and ``help`` (one line) as ``ianet-stream stages`` lists
    them; ``kind``; ``Options``, the options dataclass; ``needs_torch`` (the stage runs
    torch: it gets a share of the CPU threads); ``requires`` and ``provides``, the
    ``Frame`` fields it reads and sets (``"a|b"``: either); ``output_option``, for sinks,
    the option that names the output (``--output`` sets it).
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    kind: ClassVar[Literal["source", "transform", "sink"]] = "transform"
    Options: ClassVar[type] = NoOptions
    needs_torch: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    output_option: ClassVar[str | None] = None

    @classmethod
    def provided_fields(cls, options: Any) -> frozenset[str]:
        """The ``Frame`` fields this stage sets with these options (``provides`` by default)."""
        return frozenset(cls.provides)

    def describe(self) -> dict[str, Any]:
        """After ``open()``: what the stage resolved from its options (a model's variant and
        input size, a flow method's working size), for the run's ``--json`` report."""
        return {}

    def degrade(self) -> str | None:
        """Make the stage cheaper by one step, when a live pipeline is slower than its
        latency bound; returns what changed ("flow size 192 -> 144"), or None when nothing
        is left to give. Called in the stage's own thread, between batches."""
        return None

    def __init__(self, options: Any, context: Context) -> None:
        self.options = options
        self.context = context

    def open(self) -> None:
        """Acquire resources (models, devices) before the first message."""

    def start_stream(self, info: StreamInfo) -> None:
        """A new stream begins (per-stream state, output files)."""

    def process(self, frames: list[Frame]) -> list[Frame]:
        """Handle a batch of frames (possibly of several streams); return those to forward."""
        return frames

    def end_stream(self, stream: str) -> list[Frame]:
        """A stream ended: flush its state; return any frames still held back."""
        return []

    def close(self) -> None:
        """Release resources; called once, also after an error."""

    @classmethod
    def clip_output(cls, options: Any, folder: str, stem: str) -> tuple[str, str]:
        """For a sink in a folder run: where the clip named ``stem`` goes.

        Returns ``(path, done)``: the value the runner gives this sink's ``path`` option
        for that clip, and the file or folder that exists once the clip's output is
        complete (``--skip-existing`` looks for it). This default suits sinks that write
        ``<path>/<stream name>/...`` (masks); sinks writing one file per clip return
        ``(f"{folder}/{stem}.mp4",) * 2`` (the extension from their options).
        """
        return folder, os.path.join(folder, stem)

    @classmethod
    def outputs(cls, options: Any, streams: Sequence[str]) -> list[PlannedOutput]:
        """The files and folders this sink will write for streams named ``streams``, so
        that they are checked before anything runs: none may be an input, and none may
        replace what its writer did not create. ``[]`` for stages that write no file."""
        return []


class PlannedOutput(NamedTuple):
    """A file or folder a sink will write: ``writer`` is the tag of a folder's writer
    (``ianet.atomic``: a folder at that name is replaced only when the same writer made
    it); ``None`` for a file."""

    path: Path
    writer: str | None = None


class Source(Stage):
    """Base class of sources: the first stage of a pipeline.

    ``input_option`` is the option that names the input (``--input`` sets it; ``None``
    for a source without one); sources provide ``image``.
    """

    kind: ClassVar[Literal["source", "transform", "sink"]] = "source"
    provides: ClassVar[tuple[str, ...]] = ("image",)
    input_option: ClassVar[str | None] = None

    @classmethod
    def stream_names(cls, options: Any) -> list[str]:
        """The names of the streams it will emit, known before it runs (sinks name their
        outputs after them): by default one per input, named as ``ianet_stream.uris``
        names inputs (a file's stem, ``stdin``, ``webcam0``), made unique."""
        value = getattr(options, cls.input_option) if cls.input_option else None
        inputs = [] if value is None else [value] if isinstance(value, str) else list(value)
        names = StreamNames()
        return [names.claim(parse_uri(str(uri)).name) for uri in inputs]

    def live(self) -> Liveness:
        """After ``open()``: whether the input is live and why (by default file-like:
        every frame processed, back-pressure)."""
        return Liveness(None, "a file-like input")

    def run(self, emit: Emit) -> None:
        """Emit messages until the input ends or ``stop`` is called."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask ``run`` to return soon (called from another thread)."""
