"""The runner: every stage in its own thread, bounded queues between them.

Messages (``StreamStart``, frames, ``StreamEnd``) flow from the source to the last sink in
order; when the source's input ends, an end-of-input marker follows them and each stage
closes after forwarding it, so every stage has flushed when its successor closes. A
stage takes up to ``batch`` frames per call: what is queued, without waiting for more.

Live inputs with ``policy: latest`` (``LiveOptions``) trade completeness for freshness
at the door (``ianet_stream.admission``): at most ``in_flight`` frames of a stream are in
the pipeline, the newest frame waits for room and the older ones are dropped there, before
any work is spent on them; every frame let in is finished (except, after a real stall,
frames older than ``LiveOptions.stall_s``). Stages then take at most one frame per stream
per batch (batches span streams, not time) and never wait for frames that are not there.
When frames take longer than ``max_latency_ms`` from capture to output, the runner says so
and asks the slowest stage to ``degrade`` one step at a time. Every dropped frame is
counted where it was dropped; each stream's health is followed. ``policy: all`` and file
inputs drop nothing (back-pressure). The end-to-end latency of every frame (capture to
leaving the last stage) goes into the run's figures.

Stopping: the first SIGINT/SIGTERM calls ``source.stop()`` and lets the frames in flight
through (outputs complete and kept); a second one, or a stage's error, aborts: the queues
are closed so blocked stages wake up, and every stage is closed. An error, or a second
signal on a file input, marks every context ``failed`` (sinks discard their partial
outputs: the input can be run again). A second signal on a live input keeps what was
recorded (it cannot be captured again): the frames in flight are dropped, each stage ends
its open streams (the encoder finishes its file) and its outputs are kept. So does a live
source's error (a camera gone for good): the run fails with it, but the frames captured
flow through as at the end of the input and the outputs are kept.
"""

from __future__ import annotations

import collections
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import replace
from typing import Any

from rich.console import RenderableType
from rich.live import Live

from ianet_stream.admission import Admission, LatencyGuard
from ianet_stream.config import PipelineSpec, resolve_device
from ianet_stream.console import console
from ianet_stream.errors import InputError, QueueClosed
from ianet_stream.frame import Frame, StreamEnd, StreamStart
from ianet_stream.progress import RunDisplay
from ianet_stream.stage import Context, Liveness, LiveOptions, Message, Source, Stage
from ianet_stream.stats import RunStats, RunSummary, StageStats, Status
from ianet_stream.uris import redact, redact_text

log = logging.getLogger(__name__)

ABORT_GRACE_S = 3.0  # how long an abort waits for stages to close before giving up on them
_LIVE_QUEUE = 64  # queue capacity behind the door of a live input (frames are bounded there)
STOP_GRACE_S = 1.0  # how long a stopped source may stay blocked in a read before it is left
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class EndOfInput:
    """Follows the last message of a run through every queue."""

    def __repr__(self) -> str:
        return "END_OF_INPUT"


END_OF_INPUT = EndOfInput()
Item = Message | EndOfInput


class MessageQueue:
    """A bounded queue of messages between two stages: a full queue makes ``put`` wait
    (back-pressure: nothing is lost). ``peak`` is the most items it has held."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.peak = 0
        self._items: collections.deque[Item] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        """Append ``item``; raises ``QueueClosed`` once the queue is closed."""
        with self._changed:
            while len(self._items) >= self.capacity and not self._closed:
                self._changed.wait()
            if self._closed:
                raise QueueClosed
            self._items.append(item)
            self.peak = max(self.peak, len(self._items))
            self._changed.notify_all()

    def take(self, limit: int, one_per_stream: bool = False) -> list[Item]:
        """Wait for the next item; a frame comes with the frames queued right behind it,
        up to ``limit`` in all (with ``one_per_stream``, up to the first frame of a stream
        already taken). Returns ``[marker]`` or a list of frames."""
        with self._changed:
            while not self._items and not self._closed:
                self._changed.wait()
            if self._closed:
                raise QueueClosed
            taken = [self._items.popleft()]
            if isinstance(taken[0], Frame):
                streams = {taken[0].stream}
                while len(taken) < limit and self._items and isinstance(self._items[0], Frame):
                    if one_per_stream and self._items[0].stream in streams:
                        break
                    streams.add(self._items[0].stream)
                    taken.append(self._items.popleft())
            self._changed.notify_all()
            return taken

    def close(self) -> None:
        """Wake every waiter with ``QueueClosed``; later puts and takes raise it too."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


def run_pipeline(
    spec: PipelineSpec,
    *,
    quiet: bool = False,
    keep_interrupted: bool = True,
    signals: Sequence[signal.Signals] = STOP_SIGNALS,
    monitor: Callable[[RunStats], None] | None = None,
    header: RenderableType | None = None,
) -> RunSummary:
    """Run a validated pipeline to the end of its input (or until stopped).

    ``keep_interrupted=False`` makes the first signal abort (outputs discarded) rather than
    stop the source and flush: a folder run wants no truncated clip under a final name.
    ``signals`` are handled only when called from the main thread. ``monitor`` is given the
    run's live figures before the stages start (a metrics endpoint reads them); ``header``
    is shown above the run's progress on a terminal (a folder run's overall bar). Never raises
    for a stage's error: the summary's ``status`` is ``failed`` and its ``error`` names the
    stage and the input. Returns once every stage has closed (or, after an abort, once
    ``ABORT_GRACE_S`` have passed).
    """
    device = resolve_device(spec)
    base = Context(device=device, batch=spec.batch, quiet=quiet)
    runner = _Runner(spec, [replace(base, stats={}) for _ in spec.stages], keep_interrupted)
    runner.torch_threads = torch_threads_per_stage(spec, device)
    runner.header = header
    for context in runner.contexts:
        context.request_stop = runner.request_stop
    if monitor is not None:
        monitor(runner.stats)
    return runner.run(quiet=quiet, signals=signals)


def torch_threads_per_stage(spec: PipelineSpec, device: str) -> int | None:
    """The CPU threads each torch stage's thread gets on the CPU: torch's threads shared
    among those stages, so that stages working at the same time do not fight over the
    same cores (None: the device is not the CPU, or no stage uses torch)."""
    stages = sum(stage.cls.needs_torch for stage in spec.stages)
    if device != "cpu" or stages == 0:
        return None
    import torch

    return max(1, torch.get_num_threads() // stages)


class _Runner:
    def __init__(self, spec: PipelineSpec, contexts: list[Context], keep_interrupted: bool):
        self.spec = spec
        self.contexts = contexts
        self.keep_interrupted = keep_interrupted
        self.torch_threads: int | None = None
        self.header: RenderableType | None = None
        self.device = contexts[0].device if contexts else "cpu"
        self.uris = spec.inputs or [spec.source.name]
        self.input = ", ".join(redact(u) for u in self.uris)
        self.live: LiveOptions | None = None
        self.queues = [MessageQueue(2 * spec.batch) for _ in spec.stages[1:]]
        self.admission: Admission | None = None  # the door of live inputs with latest
        self.guard: LatencyGuard | None = None
        self._one_per_stream = False
        self._stall_s: float | None = None
        self._degrade_next: int | None = None  # the stage asked to make itself cheaper
        self._spent: set[int] = set()  # stages with nothing left to give
        inboxes = [None, *self.queues]
        self.stats = RunStats(
            [
                StageStats(stage.name, stage.label, context.stats, inbox)
                for stage, context, inbox in zip(spec.stages, contexts, inboxes, strict=True)
            ]
        )
        self.stages: list[Stage | None] = [None] * len(spec.stages)
        self._lock = threading.RLock()  # also taken by signal handlers
        self._error: tuple[int, Exception] | None = None
        self._stopping = False
        self._aborted_at: float | None = None
        self._keep_outputs = True  # after an abort: whether stages end their streams and keep
        self._source_stopped = False
        self._open_streams: set[str] = set()
        self._source_clock = 0.0
        self._emitting = threading.Lock()  # one message at a time into the first queue
        self._input_ended = False
        self._source_left = False
        self._stopping_since: float | None = None
        for context in contexts:
            context.stream_state = self.stats.health.report

    def run(self, *, quiet: bool, signals: Sequence[signal.Signals]) -> RunSummary:
        threads = [threading.Thread(target=self._source_main, name="stage-0", daemon=True)]
        threads += [
            threading.Thread(target=self._stage_main, args=(i,), name=f"stage-{i}", daemon=True)
            for i in range(1, len(self.spec.stages))
        ]
        started = time.perf_counter()
        with handling_signals(signals, self._on_signal):
            for thread in threads:
                thread.start()
            self._wait(threads, started, quiet)
        seconds = time.perf_counter() - started
        if self._error is not None:
            index, exception = self._error
            reason = self._redacted(_one_line(exception)).removeprefix(f"{self.input}: ")
            error = f"{self.spec.stages[index].label} on {self.input}: {reason}"
            return RunSummary(
                self.input, "failed", seconds, self.stats, error, exception, self.device
            )
        return RunSummary(self.input, self._status(), seconds, self.stats, device=self.device)

    def _redacted(self, text: str) -> str:
        """``text`` with the credentials of every URL in it hidden (errors quote inputs)."""
        for uri in self.uris:
            text = text.replace(uri, redact(uri))
        return redact_text(text)

    def _status(self) -> Status:
        if self._aborted_at is not None:
            return "aborted"
        return "interrupted" if self._stopping else "done"

    def _wait(self, threads: list[threading.Thread], started: float, quiet: bool) -> None:
        """Wait for the stages, showing the run's progress on a terminal (``progress``)."""
        show = not quiet and console.is_terminal
        live = Live(console=console, transient=True, refresh_per_second=4) if show else None
        display = RunDisplay(self.stats, self.header)
        source = threads[0]
        with live or nullcontext():
            while alive := [t for t in threads if t.is_alive() and not self._left(t, source)]:
                if self._aborted_at is not None and (
                    time.monotonic() - self._aborted_at > ABORT_GRACE_S
                ):
                    return
                stopped = self._stopping_since
                if stopped is not None and time.monotonic() - stopped > STOP_GRACE_S:
                    self._leave_source()
                alive[0].join(0.1)
                if live is not None:
                    seconds = time.perf_counter() - started
                    live.update(display.render(seconds, self._stopping))

    def _left(self, thread: threading.Thread, source: threading.Thread) -> bool:
        """Whether ``thread`` is a source left behind (blocked in a read after a stop)."""
        return thread is source and self._source_left

    def _leave_source(self) -> None:
        """A stopped source still blocked in a read (a silent camera, a network read) is
        left behind: its open streams are ended on its behalf and the input with them, so
        every stage flushes and the outputs are complete; whatever it emits later is
        refused."""
        if self._source_left or self._input_ended:
            return
        self._source_left = True
        log.warning("the input did not stop within %.0f s; finishing without it", STOP_GRACE_S)
        threading.Thread(target=self._end_input, name="stage-0-end", daemon=True).start()

    def _source_main(self) -> None:
        spec = self.spec.stages[0]
        try:
            source = spec.cls(spec.options, self.contexts[0])
            if not isinstance(source, Source):
                raise TypeError(f"{spec.cls.__name__} is not a Source")
            self.stages[0] = source
            source.open()
            self._go_live(source.live())
            self._source_clock = time.perf_counter()
            if not (self._stopping or self._aborted_at or self._error):
                source.run(self._emit)
            self._end_input()
        except QueueClosed:
            pass
        except Exception as error:
            if self._stopping:  # a read cut short by the stop: the input simply ends here
                with suppress(QueueClosed):
                    self._end_input()
            elif self.live is None:
                self._fail(0, error)
            else:
                self._lose_source(error)
        finally:
            self._close(0)

    def _go_live(self, liveness: Liveness) -> None:
        """Set up the door and the latency guard of a live input with ``policy: latest``,
        before the source's first message."""
        self.live = live = liveness.options
        self.stats.liveness = liveness
        if live is None or live.policy != "latest":
            return
        self.admission = Admission(live.in_flight, self.queues[0].put, self.stats.health)
        self.stats.watch_door(self.admission)
        self.guard = LatencyGuard(live.max_latency_ms / 1000, live.degrade, self._request_degrade)
        self._one_per_stream = True
        self._stall_s = live.stall_s
        for queue in self.queues:  # the door bounds the frames inside; markers always pass
            queue.capacity = max(queue.capacity, _LIVE_QUEUE)

    def _lose_source(self, error: Exception) -> None:
        """A live source failed (a camera gone for good): the run fails with its error, but
        what it captured flows through as at the end of the input, and outputs are kept."""
        with self._lock:
            if self._error is None and self._aborted_at is None:
                self._error = (0, error)
        self.stats.health.fail_open()
        with suppress(QueueClosed):
            self._end_input()

    def _end_input(self) -> None:
        """End the streams the source left open, then the input (once: by the source's
        thread, or on its behalf when it was left behind)."""
        with self._emitting:
            if self._input_ended:
                return
            self._input_ended = True
            for stream in sorted(self._open_streams):
                self._stream_ended(stream)
                self.queues[0].put(StreamEnd(stream))
            self._open_streams.clear()
            self.queues[0].put(END_OF_INPUT)

    def _emit(self, message: Message) -> None:
        now = time.perf_counter()
        is_frame = isinstance(message, Frame)
        health = self.stats.health
        with self._emitting:
            if self._input_ended or self._source_left:
                raise QueueClosed  # the input was ended without this source
            if isinstance(message, StreamStart):
                self._open_streams.add(message.info.id)
                health.get(message.info.id, message.info.name, message.info.frames)
            elif isinstance(message, StreamEnd):
                self._open_streams.discard(message.stream)
                self._stream_ended(message.stream)
            elif not is_frame:
                raise TypeError(f"a source emitted {type(message).__name__}, not a message")
            self.stats.stages[0].record(now - self._source_clock, int(is_frame))
            if is_frame:
                health.get(message.stream).arrived(message)
            if is_frame and self.admission is not None:
                self.admission.offer(message)
            else:
                self.queues[0].put(message)
        self._source_clock = time.perf_counter()

    def _stream_ended(self, stream: str) -> None:
        """A stream's end reaches the door: its waiting frame goes in, its health ends."""
        if self.admission is not None:
            self.admission.end(stream)
        self.stats.health.get(stream).end()

    def _stage_main(self, index: int) -> None:
        spec, stats = self.spec.stages[index], self.stats.stages[index]
        inbox = self.queues[index - 1]
        outbox = self.queues[index] if index < len(self.queues) else None
        streams: set[str] = set()  # started and not yet ended in this stage
        try:
            if spec.cls.needs_torch and self.torch_threads is not None:
                import torch

                torch.set_num_threads(self.torch_threads)  # this thread's share of the cores
            stage = self.stages[index] = spec.cls(spec.options, self.contexts[index])
            stage.open()
            stats.settings = stage.describe()
            take = functools.partial(inbox.take, self.spec.batch, self._one_per_stream)
            while (messages := take())[0] is not END_OF_INPUT:
                head = messages[0]
                if isinstance(head, Frame):
                    messages = self._fresh(messages, stats)
                    if not messages:
                        continue
                if self._degrade_next == index:
                    self._degrade(index, stage)
                started = time.perf_counter()
                if isinstance(head, Frame):
                    out = stage.process(messages)
                    self._release(messages, out, last=outbox is None)
                elif isinstance(head, StreamStart):
                    stage.start_stream(head.info)
                    streams.add(head.info.id)
                    out = [head]
                else:
                    out = [*stage.end_stream(head.stream), head]
                    streams.discard(head.stream)
                frames = len(messages) if isinstance(head, Frame) else 0
                stats.record(time.perf_counter() - started, frames)
                if outbox is None:
                    self._finished(messages if frames else [])
                else:
                    for message in out:
                        outbox.put(message)
            if outbox is not None:
                outbox.put(END_OF_INPUT)
        except QueueClosed:
            if self._keep_outputs:
                self._end_streams(index, streams)
        except Exception as error:
            self._fail(index, error)
        finally:
            self._close(index)

    def _fresh(self, frames: list[Frame], stats: StageStats) -> list[Frame]:
        """The frames to work on: all of them, unless a stall (live inputs with ``latest``)
        left some older than ``LiveOptions.stall_s``; those are dropped and counted."""
        if self._stall_s is None:
            return frames
        now = time.monotonic()
        fresh, stale = [], []
        for frame in frames:
            (fresh if now - frame.captured <= self._stall_s else stale).append(frame)
        if stale:
            stats.stale += len(stale)
            for frame in stale:
                self.stats.health.get(frame.stream).drops += 1
            self.admission.release(stale)
        return fresh

    def _release(self, taken: list[Frame], out: list[Frame], last: bool) -> None:
        """Tell the door which frames left the pipeline: all of them after the last stage,
        elsewhere those a stage did not pass on."""
        if self.admission is None:
            return
        if last:
            self.admission.release(taken)
        else:
            kept = {id(frame) for frame in out}
            self.admission.release([frame for frame in taken if id(frame) not in kept])

    def _finished(self, frames: list[Frame]) -> None:
        """Frames left the last stage: their latency, their streams' health, the guard."""
        now = time.monotonic()
        self.stats.health.finished(frames)
        for frame in frames:
            latency = now - frame.captured
            self.stats.latency.record(latency)
            if self.guard is not None:
                self.guard.record(latency)

    def _request_degrade(self) -> bool:
        """Ask the slowest stage that can still give something to degrade one step (the
        stage does it in its own thread, before its next batch); when none is left, let
        fewer frames of each stream in at once. False when nothing is left."""
        candidates = [
            (stage.busy / stage.frames, index)
            for index, stage in enumerate(self.stats.stages)
            if index > 0 and index not in self._spent and stage.frames
        ]
        if candidates:
            self._degrade_next = max(candidates)[1]
            return True
        change = None if self.admission is None else self.admission.narrow()
        if change is None:
            return False
        self._record_degradation(0, change)
        return True

    def _degrade(self, index: int, stage: Stage) -> None:
        """Make ``stage`` one step cheaper (it was asked to), and record what changed."""
        self._degrade_next = None
        change = stage.degrade()
        if change is None:
            self._spent.add(index)
            if self.guard is not None and not self._request_degrade():
                self.guard.exhausted = True
            return
        self._record_degradation(index, change)

    def _record_degradation(self, index: int, change: str) -> None:
        """Count a degradation step of stage ``index`` (the source's: the door) and say it."""
        counters = self.contexts[index].stats
        counters["degraded"] = counters.get("degraded", 0) + 1
        self.stats.degradations.append(f"{self.spec.stages[index].name}: {change}")
        log.warning("live latency: %s: %s", self.spec.stages[index].label, change)

    def _end_streams(self, index: int, streams: set[str]) -> None:
        """After an abort that keeps outputs: end the stage's open streams (frames dropped)."""
        stage = self.stages[index]
        if stage is None:
            return
        try:
            for stream in sorted(streams):
                stage.end_stream(stream)
        except Exception as error:
            self._fail(index, error)

    def _close(self, index: int) -> None:
        stage = self.stages[index]
        if stage is None:
            return
        try:
            stage.close()
        except Exception as error:
            self._fail(index, error)

    def _fail(self, index: int, error: Exception) -> None:
        with self._lock:
            if self._error is None and self._aborted_at is None:
                self._error = (index, error)
        self._abort(keep_outputs=False)

    def _abort(self, keep_outputs: bool) -> None:
        if not keep_outputs:
            self._keep_outputs = False
            for context in self.contexts:
                context.failed = True
        for queue in self.queues:
            queue.close()
        self._stop_source()

    def _stop_source(self) -> None:
        with self._lock:
            source = self.stages[0]
            if source is None or self._source_stopped:
                return
            self._source_stopped = True
        try:
            source.stop()
        except Exception as error:
            self._fail(0, error)

    def request_stop(self) -> None:
        """Stop as a first Ctrl-C does (a stage asks for it)."""
        if not self._stopping:
            self._on_signal(signal.SIGINT, None)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stopping or not self.keep_interrupted:
            self._aborted_at = time.monotonic()
            self._abort(keep_outputs=self.keep_interrupted and self.live is not None)
        else:
            self._stopping = True
            self._stopping_since = time.monotonic()
            self._stop_source()


def _one_line(error: Exception) -> str:
    """An error's first line; its type too, unless it is a user-facing ``InputError``."""
    text = str(error).strip()
    if not isinstance(error, InputError):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def handling_signals(signals: Sequence[signal.Signals], handler: Any) -> Iterator[None]:
    """Install ``handler`` for ``signals`` (main thread only), restoring the old ones after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
