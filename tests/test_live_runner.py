"""Live inputs through the runner: freshness (latest / all), end-to-end latency, shutdown,
and what is left behind; small stages defined here, registered through entry points."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest

from ianet.errors import InputError
from ianet_stream import registry
from ianet_stream.admission import Admission, StreamsHealth
from ianet_stream.cli import main
from ianet_stream.config import parse_pipeline
from ianet_stream.frame import Frame, StreamEnd, StreamInfo, StreamStart
from ianet_stream.runner import run_pipeline
from ianet_stream.stage import Context, Liveness, LiveOptions, Source, Stage

TESTS = Path(__file__).parent
STAGES = (
    ("paced", "Paced"),
    ("burst", "Burst"),
    ("slow", "Slow"),
    ("slower", "Slower"),
    ("collect", "Collect"),
)
# What the stages saw: cleared by the ``stages`` fixture.
SEEN: dict[str, list] = {}
STALE_S = 10.0  # how old a stale frame is at capture


def _frame(index: int, rate: float, captured: float) -> Frame:
    picture = np.full((24, 32, 3), index % 256, np.uint8)
    return Frame(picture, index, "s0", index, Fraction(1, round(rate)), captured=captured)


def _start(uri: str, rate: float) -> StreamStart:
    info = StreamInfo("s0", "paced", uri, 32, 24, Fraction(round(rate)), live=True)
    return StreamStart(info)


@dataclass
class PacedOptions:
    uri: str = "paced:"
    live: LiveOptions | None = None
    fps: float = 30.0
    seconds: float | None = 1.0  # none: until stopped
    fail_after: int = -1  # raise an error quoting the uri at this frame


class Paced(Source):
    """A camera: frames at ``fps`` in real time, each captured when it is produced."""

    Options: ClassVar[type] = PacedOptions
    input_option: ClassVar[str | None] = "uri"

    def __init__(self, options: PacedOptions, context: Context) -> None:
        super().__init__(options, context)
        self._stop = threading.Event()

    def live(self) -> Liveness:
        return Liveness(self.options.live, "a test camera")

    def run(self, emit) -> None:
        options, emitted = self.options, SEEN.setdefault("emitted", [])
        emit(_start(options.uri, options.fps))
        start, index = time.monotonic(), 0
        while options.seconds is None or index < options.seconds * options.fps:
            if self._stop.wait(max(0.0, start + index / options.fps - time.monotonic())):
                break
            if index == options.fail_after:
                raise InputError(f"lost {options.uri} (connection reset by peer)")
            emit(_frame(index, options.fps, time.monotonic()))
            emitted.append(index)
            index += 1
        emit(StreamEnd("s0"))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class BurstOptions:
    uri: str = "burst:"
    live: LiveOptions | None = None
    stale: int = 9
    fresh: int = 1


class Burst(Source):
    """A stream catching up: ``stale`` frames captured long ago, then ``fresh`` ones, at once."""

    Options: ClassVar[type] = BurstOptions
    input_option: ClassVar[str | None] = "uri"

    def live(self) -> Liveness:
        return Liveness(self.options.live, "a test camera")

    def run(self, emit) -> None:
        emit(_start(self.options.uri, 30))
        now = time.monotonic()
        for index in range(self.options.stale + self.options.fresh):
            emit(_frame(index, 30, now - STALE_S if index < self.options.stale else now))
        emit(StreamEnd("s0"))


@dataclass
class SlowOptions:
    delay: float = 0.06  # seconds per call
    open_delay: float = 0.0


@dataclass
class SlowerOptions:
    delay: float = 0.2  # seconds per call
    step: float = 0.06  # what each degradation step saves


class Slower(Stage):
    """A model slower than the latency bound that can be made cheaper three times."""

    Options: ClassVar[type] = SlowerOptions

    def open(self) -> None:
        self.delay, self.steps = self.options.delay, 3

    def degrade(self) -> str | None:
        if self.steps == 0:
            return None
        before = self.delay
        self.delay, self.steps = round(self.delay - self.options.step, 3), self.steps - 1
        return f"delay {before:g} -> {self.delay:g}"

    def process(self, frames: list[Frame]) -> list[Frame]:
        time.sleep(self.delay)
        return frames


class Slow(Stage):
    """A model slower than the camera."""

    Options: ClassVar[type] = SlowOptions

    def open(self) -> None:
        time.sleep(self.options.open_delay)

    def process(self, frames: list[Frame]) -> list[Frame]:
        time.sleep(self.options.delay)
        return frames


@dataclass
class CollectOptions:
    path: str = "memory"


class Collect(Stage):
    """Records the frames that reach it and their age (capture to here) in seconds."""

    kind: ClassVar = "sink"
    Options: ClassVar[type] = CollectOptions
    output_option: ClassVar[str | None] = "path"

    def process(self, frames: list[Frame]) -> list[Frame]:
        now = time.monotonic()
        for frame in frames:
            SEEN.setdefault("collected", []).append(frame.index)
            SEEN.setdefault("ages", []).append(now - frame.captured)
        return frames

    def close(self) -> None:
        SEEN["failed"] = self.context.failed


def register_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register this module's stages as a third-party package would (entry points)."""
    found = registry._entry_points()
    extra = [EntryPoint(name, f"{__name__}:{cls}", registry.GROUP) for name, cls in STAGES]
    monkeypatch.setattr(registry, "_entry_points", lambda: [*found, *extra])


@pytest.fixture
def stages(monkeypatch):
    register_stages(monkeypatch)
    SEEN.clear()
    yield SEEN
    SEEN.clear()


def pipeline(*stages: dict, batch: int = 1):
    return parse_pipeline({"stages": list(stages), "device": "cpu", "batch": batch})


def test_latest_admits_frames_at_the_door_and_wastes_no_work(stages):
    live = {"policy": "latest", "max_latency_ms": 200}
    spec = pipeline(
        {"paced": {"live": live, "fps": 30, "seconds": 20}},
        {"slow": {"delay": 0.06}},
        {"collect": {}},
    )
    summary = run_pipeline(spec, quiet=True)
    assert summary.status == "done"
    emitted, collected = len(stages["emitted"]), stages["collected"]
    assert emitted == summary.stages[0].frames == 600
    assert summary.frames == len(collected) and 250 < len(collected) < 340  # the stage is busy
    assert collected == sorted(collected)  # dropped, never reordered
    assert summary.stages[1].frames == len(collected)  # every frame worked on came out
    assert summary.stats.drops == emitted - len(collected) == summary.stages[0].drops
    report = summary.as_dict()
    assert report["drops"] == summary.stats.drops
    assert report["latency_ms"]["p95"] < 200 + 20  # two in flight: a wait and its own turn
    # the runner's figure agrees with the ages the sink saw itself
    assert abs(report["latency_ms"]["p95"] - 1000 * np.percentile(stages["ages"], 95)) < 10
    (stream,) = report["streams"]
    assert stream["state"] == "ended" and stream["frames_in"] == 600
    assert stream["frames_out"] == len(collected) and stream["drops"] == summary.stats.drops


def test_all_delivers_every_frame_of_a_live_input(stages):
    live = {"policy": "all"}
    spec = pipeline(
        {"paced": {"live": live, "fps": 30, "seconds": 2}},
        {"slow": {"delay": 0.06}},
        {"collect": {}},
    )
    summary = run_pipeline(spec, quiet=True)
    assert summary.status == "done"
    assert stages["collected"] == stages["emitted"] == list(range(60))
    assert summary.stats.drops == 0 and summary.as_dict()["drops"] == 0


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_the_freshest_frame_goes_in_when_there_is_room(stages, in_flight):
    live = {"policy": "latest", "max_latency_ms": 60_000, "in_flight": in_flight}
    spec = pipeline(
        {"burst": {"live": live, "stale": 0, "fresh": 10}},
        {"slow": {"delay": 0.05}},
        {"collect": {}},
        batch=4,
    )
    summary = run_pipeline(spec, quiet=True)
    # the first frames fill the pipeline; the others wait at the door, each replacing the
    # one before; the last one goes in when a frame comes out
    assert stages["collected"] == [*range(in_flight), 9]
    assert summary.stages[0].drops == 9 - in_flight
    assert [stage.drops for stage in summary.stages[1:]] == [0, 0]


def test_only_a_stall_drops_a_frame_that_was_let_in(stages):
    live = {"policy": "latest", "max_latency_ms": 500}  # stale after 2 s
    spec = pipeline(
        {"burst": {"live": live, "stale": 2, "fresh": 1}},
        {"slow": {"delay": 0}},
        {"collect": {}},
    )
    summary = run_pipeline(spec, quiet=True)
    assert stages["collected"] == [2]  # captured 10 s ago: stale after a stall
    assert summary.stages[1].stale == 2 and summary.stats.drops == 2


def test_a_frame_after_a_dropped_one_carries_its_predecessor():
    let_in: list[Frame] = []
    door = Admission(1, let_in.append, StreamsHealth())
    frames = [Frame(np.full((2, 2, 3), index, np.uint8), index, "s") for index in range(4)]
    for frame in frames:
        door.offer(frame)  # 0 goes in; 1 and 2 wait in turn, 3 replaces 2
    assert [frame.index for frame in let_in] == [0]
    door.release(let_in[:1])
    assert [frame.index for frame in let_in] == [0, 3] and door.dropped == 2
    assert frames[0].previous is None and frames[3].previous is frames[2].image
    door.offer(extra := Frame(np.zeros((2, 2, 3), np.uint8), 4, "s"))
    door.release(let_in[1:])
    assert let_in[-1] is extra and extra.previous is None  # its predecessor went in


def test_a_slow_pipeline_is_made_cheaper_until_it_meets_the_bound(stages, caplog):
    live = {"policy": "latest", "max_latency_ms": 100}
    spec = pipeline(
        {"paced": {"live": live, "fps": 30, "seconds": 6}},
        {"slower": {"delay": 0.15, "step": 0.05}},
        {"collect": {}},
    )
    with caplog.at_level(logging.WARNING, logger="ianet_stream"):
        summary = run_pipeline(spec, quiet=True)
    report = summary.as_dict()
    assert report["degradations"] == [
        "slower: delay 0.15 -> 0.1",
        "slower: delay 0.1 -> 0.05",
        "slower: delay 0.05 -> 0",
    ]
    assert summary.stages[1].counters["degraded"] == 3
    assert any("more than max_latency_ms (100)" in r.getMessage() for r in caplog.records)
    assert 1000 * np.median(stages["ages"][-10:]) < 100  # the bound is met in the end


def test_when_no_stage_can_give_more_fewer_frames_are_let_in(stages, caplog):
    live = {"policy": "latest", "max_latency_ms": 90, "in_flight": 2}
    spec = pipeline(
        {"paced": {"live": live, "fps": 30, "seconds": 4}},
        {"slow": {"delay": 0.05}},  # two frames in it: one waits 50 ms, then 50 ms of work
        {"collect": {}},
    )
    with caplog.at_level(logging.WARNING, logger="ianet_stream"):
        summary = run_pipeline(spec, quiet=True)
    assert summary.as_dict()["degradations"] == ["paced: frames of a stream in flight 2 -> 1"]
    assert summary.stages[0].counters["degraded"] == 1
    assert not any("no stage can be made cheaper" in r.getMessage() for r in caplog.records)
    assert 1000 * np.median(stages["ages"][-10:]) < 90


def test_a_live_source_error_fails_the_run_but_delivers_what_it_captured(stages):
    spec = pipeline(
        {"paced": {"live": {"policy": "all"}, "seconds": None, "fail_after": 5}},
        {"slow": {"delay": 0.05}},
        {"collect": {}},
    )
    summary = run_pipeline(spec, quiet=True)
    assert summary.status == "failed"
    assert summary.error == "paced (stage 1) on paced:: lost paced: (connection reset by peer)"
    assert stages["collected"] == [0, 1, 2, 3, 4]
    assert stages["failed"] is False  # outputs kept


def read_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_sigterm_in_process_flushes_and_leaves_no_thread_or_process(tmp_path):
    config, output = tmp_path / "p.yaml", tmp_path / "out.mp4"
    config.write_text("stages:\n  - decode: {}\n  - encode: {preset: ultrafast}\n")
    paced = "lavfi:testsrc2=size=64x48:rate=30,realtime"  # endless, in real time
    from ianet_stream.config import load_pipeline

    spec = load_pipeline(config, input=paced, output=str(output))
    threads_before = {thread.ident for thread in threading.enumerate()}
    tasks_before = len(os.listdir("/proc/self/task"))

    sender = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    sender.start()
    summary = run_pipeline(spec, quiet=True)
    sender.join()
    assert summary.status == "interrupted"
    assert 0 < read_frames(output) == summary.frames
    assert {thread.ident for thread in threading.enumerate()} == threads_before
    assert len(os.listdir("/proc/self/task")) == tasks_before
    assert multiprocessing.active_children() == []


# The CLI with this module's stages registered, as a third-party package would.
CLI = f"""\
import sys
from importlib.metadata import EntryPoint
sys.path.insert(0, {str(TESTS)!r})
from ianet_stream import registry
found = registry._entry_points()
extra = [EntryPoint(n, f"test_live_runner:{{c}}", registry.GROUP) for n, c in {STAGES!r}]
registry._entry_points = lambda: [*found, *extra]
from ianet_stream.cli import main
sys.exit(main())
"""


def start_cli(*args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", *args],
        stderr=subprocess.PIPE,
        env={**os.environ, "TTY_COMPATIBLE": "1"},  # stderr as a terminal: "running" first
    )
    assert process.stderr.readline().startswith(b"running")
    return process


def test_sigint_on_a_live_recording_exits_130_with_a_file_that_plays(tmp_path):
    config, output, report = tmp_path / "p.yaml", tmp_path / "out.mp4", tmp_path / "run.json"
    config.write_text(
        "stages:\n  - decode: {live: {policy: all}}\n  - encode: {preset: ultrafast}\n"
    )
    camera = "synthetic:size=64x48,rate=30"  # live: endless, in real time
    process = start_cli(str(config), "-i", camera, "-o", str(output), "--json", str(report))
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    table = process.stderr.read().decode()
    frames = int(re.search(r": (\d+) frames in", table).group(1))
    assert 10 < frames == read_frames(output) == json.loads(report.read_text())["frames"]
    assert json.loads(report.read_text())["status"] == "interrupted"


def test_a_second_sigint_quits_at_once_and_keeps_the_live_recording(tmp_path):
    config, output, report = tmp_path / "p.yaml", tmp_path / "out.mp4", tmp_path / "run.json"
    config.write_text(
        "batch: 4\n"
        "stages:\n"
        "  - paced: {live: {policy: all}, seconds: null}\n"
        "  - slow: {delay: 1.0}\n"  # a flush would take 3 s: 8 frames queued, 4 a call
        "  - encode: {preset: ultrafast}\n"
    )
    process = start_cli(str(config), "-o", str(output), "--json", str(report))
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    second = time.monotonic()
    assert process.wait(timeout=10) == 130
    assert time.monotonic() - second < 2
    summary = json.loads(report.read_text())
    assert summary["status"] == "aborted"
    assert 0 < read_frames(output) == summary["frames"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_credentials_in_the_uri_stay_out_of_errors_and_summaries(stages, tmp_path, capsys):
    config, report = tmp_path / "p.yaml", tmp_path / "run.json"
    config.write_text("stages:\n  - paced: {fail_after: 3}\n  - collect: {}\n")
    uri = "rtsp://admin:secret@camera.example/live?token=secret2"
    assert main(["run", str(config), "-i", uri, "--json", str(report)]) == 1
    error = " ".join(capsys.readouterr().err.split())  # lines joined again
    assert "paced (stage 1) on rtsp://admin:***@camera.example/live?token=***: lost" in error
    assert "lost rtsp://admin:***@camera.example/live?token=*** (connection reset" in error
    assert "secret" not in error and "secret" not in report.read_text()
