"""The runner, with small stages defined here and registered through entry points."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from importlib.metadata import EntryPoint
from typing import ClassVar

import numpy as np
import pytest
import torch

from ianet_stream import registry
from ianet_stream.cli import configure_logging, main
from ianet_stream.config import parse_pipeline
from ianet_stream.errors import QueueClosed
from ianet_stream.frame import Frame, StreamEnd, StreamInfo, StreamStart
from ianet_stream.runner import END_OF_INPUT, MessageQueue, run_pipeline
from ianet_stream.stage import Context, Source, Stage

# What the test stages saw, per ``tag`` option: cleared by the ``stages`` fixture.
SEEN: dict[str, dict] = {}


def _record(tag: str) -> dict:
    return SEEN.setdefault(tag, {"frames": [], "batches": [], "ends": [], "failed": None})


@dataclass
class NumbersOptions:
    uri: str = "numbers:"
    count: int = 20  # -1: until stopped
    delay: float = 0.0
    end_streams: bool = True
    tag: str = "numbers"


class Numbers(Source):
    """Frames 0, 1, 2, ... of one stream, pts = 3 * index (time base 1/75)."""

    Options: ClassVar[type] = NumbersOptions
    input_option: ClassVar[str | None] = "uri"

    def __init__(self, options: NumbersOptions, context: Context) -> None:
        super().__init__(options, context)
        self._stop = threading.Event()

    def run(self, emit) -> None:
        info = StreamInfo(id="s0", name="s0", uri=self.options.uri, width=2, height=2)
        emit(StreamStart(info))
        index, seen = 0, _record(self.options.tag)
        while index != self.options.count and not self._stop.is_set():
            seen["frames"].append(index)
            emit(
                Frame(
                    np.full((2, 2, 3), index % 256, np.uint8),
                    index,
                    "s0",
                    3 * index,
                    Fraction(1, 75),
                )
            )
            index += 1
            time.sleep(self.options.delay)
        if self.options.end_streams:
            emit(StreamEnd("s0"))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class WorkOptions:
    delay: float = 0.0
    fail_at: int = -1
    tag: str = "work"


class Work(Stage):
    """Sleeps ``delay`` per call, records its batches, raises at frame ``fail_at``."""

    Options: ClassVar[type] = WorkOptions

    def process(self, frames: list[Frame]) -> list[Frame]:
        seen = _record(self.options.tag)
        seen["batches"].append(len(frames))
        if any(frame.index == self.options.fail_at for frame in frames):
            raise RuntimeError("boom")
        time.sleep(self.options.delay)
        return frames

    def close(self) -> None:
        _record(self.options.tag)["failed"] = self.context.failed


@dataclass
class RecordOptions:
    path: str = "memory"
    delay: float = 0.0
    tag: str = "record"
    source_tag: str = "numbers"
    keep: bool = False


class Record(Stage):
    """Records what reaches it, and how far ahead of it the source was at each frame."""

    kind: ClassVar = "sink"
    Options: ClassVar[type] = RecordOptions
    output_option: ClassVar[str | None] = "path"

    def process(self, frames: list[Frame]) -> list[Frame]:
        seen = _record(self.options.tag)
        emitted = len(_record(self.options.source_tag)["frames"])
        seen.setdefault("kept", []).extend(frames if self.options.keep else [])
        for frame in frames:
            seen["frames"].append((frame.index, frame.pts, frame.time_base))
            seen.setdefault("lead", []).append(emitted - len(seen["frames"]))
        time.sleep(self.options.delay)
        return frames

    def end_stream(self, stream: str) -> list[Frame]:
        _record(self.options.tag)["ends"].append(stream)
        return []

    def close(self) -> None:
        _record(self.options.tag)["failed"] = self.context.failed


class TorchWork(Work):
    """A stage that uses torch: records the CPU threads torch gives its thread."""

    needs_torch: ClassVar[bool] = True

    def open(self) -> None:
        _record(self.options.tag)["threads"] = torch.get_num_threads()


@pytest.fixture
def stages(monkeypatch):
    """Register this module's stages as a third-party package would (entry points)."""
    found = registry._entry_points()
    extra = [
        EntryPoint(name, f"{__name__}:{cls}", registry.GROUP)
        for name, cls in (
            ("numbers", "Numbers"),
            ("work", "Work"),
            ("torchwork", "TorchWork"),
            ("record", "Record"),
        )
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: [*found, *extra])
    SEEN.clear()
    yield SEEN
    SEEN.clear()


def pipeline(*stages: dict, batch: int = 4):
    return parse_pipeline({"stages": list(stages), "device": "cpu", "batch": batch})


def test_every_frame_arrives_in_order_with_its_pts(stages):
    spec = pipeline({"numbers": {"count": 30}}, {"work": {"delay": 0.002}}, {"record": {}})
    summary = run_pipeline(spec, quiet=True)
    assert summary.status == "done"
    assert stages["record"]["frames"] == [(i, 3 * i, Fraction(1, 75)) for i in range(30)]
    assert stages["record"]["ends"] == ["s0"]
    assert [stage.frames for stage in summary.stages] == [30, 30, 30]
    assert stages["record"]["failed"] is False


def test_torch_stages_on_the_cpu_share_the_cores_instead_of_each_taking_all(stages):
    cores = torch.get_num_threads()
    two = pipeline(
        {"numbers": {"count": 4}},
        {"torchwork": {"tag": "a"}},
        {"torchwork": {"tag": "b"}},
        {"record": {}},
    )
    assert run_pipeline(two, quiet=True).status == "done"
    assert stages["a"]["threads"] == stages["b"]["threads"] == max(1, cores // 2)
    one = pipeline({"numbers": {"count": 4}}, {"torchwork": {"tag": "c"}}, {"record": {}})
    run_pipeline(one, quiet=True)
    assert stages["c"]["threads"] == cores
    assert torch.get_num_threads() == cores  # the caller's own setting is untouched


def test_a_stage_takes_what_is_queued_up_to_batch_without_waiting(stages):
    fast_source = pipeline({"numbers": {"count": 40}}, {"work": {"delay": 0.01}}, {"record": {}})
    run_pipeline(fast_source, quiet=True)
    batches = stages["work"]["batches"]
    assert sum(batches) == 40 and max(batches) == 4 and len(batches) < 40

    stages.clear()
    slow_source = pipeline({"numbers": {"count": 8, "delay": 0.05}}, {"work": {}}, {"record": {}})
    run_pipeline(slow_source, quiet=True)
    # A frame every 50 ms: the stage does not wait to fill a batch (a busy machine may
    # still hand it two frames now and then).
    assert sum(stages["work"]["batches"]) == 8 and len(stages["work"]["batches"]) >= 6


def test_a_slow_sink_holds_the_source_back_and_loses_nothing(stages):
    spec = pipeline({"numbers": {"count": 80}}, {"work": {}}, {"record": {"delay": 0.01}}, batch=2)
    summary = run_pipeline(spec, quiet=True)
    assert [index for index, _, _ in stages["record"]["frames"]] == list(range(80))
    # Two queues of 2 batches (4 frames each) and a batch in each stage: at most ~13 ahead.
    assert max(stages["record"]["lead"]) <= 14
    assert summary.stages[0].frames == 80


def test_a_stage_error_names_the_stage_and_the_input_and_closes_everything(stages):
    spec = pipeline(
        {"numbers": {"uri": "clip.mp4", "count": -1}}, {"work": {"fail_at": 5}}, {"record": {}}
    )
    summary = run_pipeline(spec, quiet=True)
    assert summary.status == "failed"
    assert summary.error == "work (stage 2) on clip.mp4: RuntimeError: boom"
    assert stages["work"]["failed"] is True and stages["record"]["failed"] is True
    assert all(index < 5 for index, _, _ in stages["record"]["frames"])


def test_a_failed_run_exits_1_with_a_one_line_message(stages, tmp_path, capsys):
    config = tmp_path / "p.yaml"
    config.write_text("stages:\n  - numbers: {count: 50}\n  - work: {fail_at: 3}\n  - record: {}\n")
    assert main(["run", str(config), "--input", "rtsp://me:secret@cam/live", "--quiet"]) == 1
    error = capsys.readouterr().err
    assert "work (stage 2) on rtsp://me:***@cam/live: RuntimeError: boom" in error
    assert "secret" not in error


def test_the_runner_ends_streams_a_source_left_open(stages):
    spec = pipeline({"numbers": {"count": 3, "end_streams": False}}, {"record": {}})
    run_pipeline(spec, quiet=True)
    assert stages["record"]["ends"] == ["s0"]
    assert len(stages["record"]["frames"]) == 3


def _signal_later(*delays: float) -> threading.Thread:
    def send() -> None:
        for delay in delays:
            time.sleep(delay)
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_sigint_stops_the_source_and_flushes_what_was_emitted(stages):
    spec = pipeline({"numbers": {"count": -1, "delay": 0.001}}, {"work": {}}, {"record": {}})
    sender = _signal_later(0.3)
    summary = run_pipeline(spec, quiet=True)
    sender.join()
    assert summary.status == "interrupted"
    emitted = stages["numbers"]["frames"]
    assert len(emitted) > 10
    assert [index for index, _, _ in stages["record"]["frames"]] == emitted
    assert stages["record"]["ends"] == ["s0"] and stages["record"]["failed"] is False


def test_a_second_sigint_aborts_and_marks_the_outputs_failed(stages):
    spec = pipeline({"numbers": {"count": -1}}, {"work": {"delay": 0.5}}, {"record": {}})
    sender = _signal_later(0.2, 0.1)
    started = time.monotonic()
    summary = run_pipeline(spec, quiet=True)
    sender.join()
    assert summary.status == "aborted"
    assert time.monotonic() - started < 2.5
    assert stages["record"]["failed"] is True


def test_queue_takes_frames_up_to_the_limit_and_markers_alone():
    queue = MessageQueue(capacity=10)
    frames = [Frame(None, i, "s") for i in range(5)]
    for frame in frames[:3]:
        queue.put(frame)
    queue.put(StreamEnd("s"))
    queue.put(END_OF_INPUT)
    assert queue.take(2) == frames[:2]
    assert queue.take(4) == frames[2:3]
    assert queue.take(4) == [StreamEnd("s")]
    assert queue.take(4) == [END_OF_INPUT]
    queue.close()
    with pytest.raises(QueueClosed):
        queue.take(1)


def test_live_batches_span_streams_not_time_and_never_wait():
    queue = MessageQueue(capacity=8)
    for stream, index in [("a", 0), ("b", 0), ("a", 1), ("c", 0)]:
        queue.put(Frame(None, index, stream))
    taken = queue.take(4, one_per_stream=True)
    assert [(frame.stream, frame.index) for frame in taken] == [("a", 0), ("b", 0)]
    assert [(frame.stream, frame.index) for frame in queue.take(4, True)] == [("a", 1), ("c", 0)]
    queue.put(Frame(None, 2, "a"))
    assert len(queue.take(4, one_per_stream=True)) == 1  # what is there, at once


@pytest.fixture(scope="module")
def random_lite_checkpoint(tmp_path_factory) -> str:
    """A lite IANet with random weights, saved as a trained one would be."""
    from ianet import IANet, save_checkpoint

    return str(save_checkpoint(tmp_path_factory.mktemp("weights") / "lite.pth", IANet("lite")))


def test_flow_and_saliency_stages_fill_their_fields_on_the_device(stages, random_lite_checkpoint):
    spec = pipeline(
        {"decode": {"uri": "lavfi:testsrc2=size=96x64:rate=25:duration=0.24"}},
        {"flow": {"size": 48}},
        {"saliency": {"checkpoint": random_lite_checkpoint, "size": 64, "threshold": 0.5}},
        {"record": {"keep": True}},
        batch=3,
    )
    assert run_pipeline(spec, quiet=True).status == "done"
    frames = stages["record"]["kept"]
    assert [frame.index for frame in frames] == list(range(6))
    first, later = frames[0], frames[1:]
    assert first.flow_image is None and not first.flow.any()
    assert first.flow.shape == (2, 48, 72)  # the working size: the short side at 48
    for frame in later:
        assert frame.flow_image.shape == (48, 72, 3) and frame.flow_image.dtype == torch.uint8
        assert frame.flow.abs().amax() > 0.1  # testsrc2 moves
    for frame in frames:
        assert isinstance(frame.image, torch.Tensor) and frame.image.device.type == "cpu"
        assert frame.image.shape == (64, 96, 3)  # the picture is not touched
        assert frame.small.shape == (48, 72, 3) and frame.small.dtype == torch.uint8
        assert frame.saliency.shape == (48, 72) and frame.saliency.dtype == torch.float32
        assert set(frame.saliency.unique().tolist()) <= {0.0, 1.0}


def test_log_lines_hide_credentials(capsys):
    configure_logging(quiet=False, debug=False)
    camera = "rtsp://me:secret@cam/live?token=abc"
    logging.getLogger("ianet_stream_plugins.decode").warning("%s: lost, reconnecting", camera)
    error = capsys.readouterr().err
    assert "rtsp://me:***@cam/live?token=***: lost" in error
    assert "secret" not in error and "abc" not in error
