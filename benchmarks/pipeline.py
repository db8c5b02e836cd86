"""Pipeline throughput: the runner's overhead and how well its stages overlap.

    .venv/bin/python benchmarks/pipeline.py [--part a|b|both] [--seconds 20] [--repeats 3]
        [--checkpoint builtin:NAME|PATH] [--frames 150] [--device auto]

(a) ``decode -> encode`` (libx264 veryfast, crf 20) on a 720p clip of ``--seconds`` seconds
    (FFmpeg's testsrc2, encoded once at the start), against a plain PyAV script doing the
    same work (decode to RGB arrays, encode them again); both are timed as whole processes,
    alternately, ``--repeats`` times each; the figure is the ratio of the median times.
    Target: the pipeline at >= 0.9x the script's throughput.
(b) ``decode -> flow -> saliency -> composite (blur) -> encode`` at a small size on the
    clip's first ``--frames`` frames, against its slowest stage alone: each stage is timed
    alone on the messages the stage before it produced (replayed from memory, through the
    same runner), then the whole pipeline. Target: >= 0.8x the slowest stage's throughput.
    Without ``--checkpoint`` the saliency stage uses a randomly initialised lite IANet
    (same work as trained weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import av
import torch

from ianet.device import describe_cpu
from ianet_stream.config import PipelineSpec, StageSpec, load_pipeline, resolve_device
from ianet_stream.frame import Frame, StreamEnd, StreamStart
from ianet_stream.runner import run_pipeline, torch_threads_per_stage
from ianet_stream.stage import Message, Source, Stage

SIZE = (1280, 720)
RATE = 25
PASSTHROUGH = """\
stages:
  - decode: {}
  - encode: {codec: libx264, preset: veryfast, crf: 20}
"""
PLAIN_PYAV = """\
import sys
import av

with av.open(sys.argv[1]) as source, av.open(sys.argv[2], "w") as target:
    video = source.streams.video[0]
    video.thread_type = "AUTO"
    stream = target.add_stream("libx264", rate=video.average_rate,
                               options={"preset": "veryfast", "crf": "20"})
    stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
    stream.time_base = stream.codec_context.time_base = video.time_base
    for frame in source.decode(video):
        picture = frame.to_ndarray(format="rgb24")
        out = av.VideoFrame.from_ndarray(picture, format="rgb24")
        out.pts, out.time_base = frame.pts, frame.time_base
        target.mux(stream.encode(out))
    target.mux(stream.encode(None))
"""
FULL = """\
batch: 4
stages:
  - decode: {{size: 180, max_frames: {frames}}}
  - flow: {{size: 128}}
  - saliency: {{checkpoint: {checkpoint}, size: 256}}
  - composite: {{mode: blur}}
  - encode: {{codec: libx264, preset: veryfast, crf: 20}}
"""


def machine() -> str:
    """The CPU (and GPU) the figures come from."""
    text = f"{describe_cpu()}, Python {platform.python_version()}, "
    libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
    return text + f"PyAV {av.__version__}, libavcodec {libavcodec}"


def make_clip(path: Path, seconds: float) -> None:
    """A 720p testsrc2 clip encoded once with libx264 (the input of both timings)."""
    graph = f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate={RATE}:duration={seconds}"
    with av.open(graph, format="lavfi") as source, av.open(str(path), "w") as target:
        stream = target.add_stream("libx264", rate=RATE, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for frame in source.decode(video=0):
            target.mux(stream.encode(frame))
        target.mux(stream.encode(None))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def part_a(folder: Path, clip: Path, frames: int, repeats: int) -> None:
    config = folder / "passthrough.yaml"
    config.write_text(PASSTHROUGH)
    cli = Path(sys.executable).with_name("ianet-stream")
    pipeline = [str(cli), "run", str(config), "--input", str(clip), "--output"]
    plain = [sys.executable, "-c", PLAIN_PYAV, str(clip)]
    times: dict[str, list[float]] = {"plain PyAV script": [], "ianet-stream decode -> encode": []}
    for repeat in range(repeats):
        times["plain PyAV script"].append(timed([*plain, str(folder / f"plain{repeat}.mp4")]))
        output = str(folder / f"pipeline{repeat}.mp4")
        times["ianet-stream decode -> encode"].append(timed([*pipeline, output, "--quiet"]))
    print(f"\n(a) {frames} frames of {SIZE[0]}x{SIZE[1]}, decode + libx264 veryfast crf 20, "
          f"median of {repeats} whole-process runs")  # fmt: skip
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in medians.items():
        runs = ", ".join(f"{value:.2f}" for value in times[name])
        print(f"  {name:32s} {seconds:7.2f} s  {frames / seconds:7.1f} frames/s  ({runs})")
    ratio = medians["plain PyAV script"] / medians["ianet-stream decode -> encode"]
    print(f"  pipeline / script throughput: {ratio:.3f}x (target >= 0.9x)")


@dataclass
class ReplayOptions:
    messages: list[Message] = field(default_factory=list)


class Replay(Source):
    """Emits messages recorded earlier (a stage's input, at no cost)."""

    Options: ClassVar[type] = ReplayOptions

    def run(self, emit) -> None:
        for message in self.options.messages:
            emit(message)


class Capture(Stage):
    """Keeps what reaches it (the next stage's input)."""

    kind: ClassVar = "sink"
    Options: ClassVar[type] = ReplayOptions

    def start_stream(self, info) -> None:
        self.options.messages.append(StreamStart(info))

    def process(self, frames: list[Frame]) -> list[Frame]:
        self.options.messages.extend(frames)
        return frames

    def end_stream(self, stream: str) -> list[Frame]:
        self.options.messages.append(StreamEnd(stream))
        return []


def alone_seconds(spec: PipelineSpec, threads: int | None) -> list[tuple[float, float]]:
    """Each stage's wall time and CPU time (all threads) alone (open, every message, close),
    stage after stage; torch stages with ``threads`` CPU threads (None: torch's default)."""
    seconds, messages = [], []
    default = torch.get_num_threads()
    for stage in spec.stages:
        captured = ReplayOptions()
        parts = [stage, StageSpec(1, "capture", Capture, captured)]
        if stage.index > 0:
            parts.insert(0, StageSpec(0, "replay", Replay, ReplayOptions(messages)))
        numbered = tuple(StageSpec(i, s.name, s.cls, s.options) for i, s in enumerate(parts))
        torch.set_num_threads(threads or default)  # the runner gives a lone stage them all
        started, cpu = time.perf_counter(), time.process_time()
        summary = run_pipeline(PipelineSpec(numbered, spec.device, spec.batch), quiet=True)
        seconds.append((time.perf_counter() - started, time.process_time() - cpu))
        torch.set_num_threads(default)
        if summary.status != "done":
            raise SystemExit(f"{stage.label} alone: {summary.error}")
        messages = captured.messages
    return seconds


def random_checkpoint(folder: Path) -> str:
    """A lite IANet with random weights, saved like a trained one."""
    from ianet import IANet, save_checkpoint

    path = folder / "random-lite.pth"
    save_checkpoint(path, IANet("lite"))
    return str(path)


def part_b(
    folder: Path, clip: Path, frames: int, checkpoint: str | None, device: str, repeats: int
) -> None:
    config = folder / "full.yaml"
    checkpoint = checkpoint or random_checkpoint(folder)
    config.write_text(FULL.format(frames=frames, checkpoint=json.dumps(checkpoint)))
    output = str(folder / "full.mp4")
    sets = [f"device={device}"]
    spec = load_pipeline(config, sets, input=str(clip), output=output)
    warm_up = load_pipeline(
        config, [*sets, "stages.0.max_frames=8"], input=str(clip), output=output
    )
    run_pipeline(warm_up, quiet=True)  # first calls (kernels, caches) are not what we time
    share = torch_threads_per_stage(spec, resolve_device(spec))
    alone, alone_shared, together = [], [], []
    for _ in range(repeats):  # alternately; the best of each, as other work comes and goes
        alone.append(alone_seconds(spec, None))
        alone_shared.append(alone_seconds(spec, share))
        started, cpu = time.perf_counter(), time.process_time()
        summary = run_pipeline(spec, quiet=True)
        together.append((time.perf_counter() - started, time.process_time() - cpu))
        if summary.status != "done":
            raise SystemExit(summary.error)
    best_alone = [min(times)[0] for times in zip(*alone, strict=True)]
    cpu_alone = [min(times)[1] for times in zip(*alone, strict=True)]
    (best_together, cpu_together), count = min(together), summary.frames
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n(b) {count} frames at 320x180, batch {spec.batch}, device {resolve_device(spec)}, "
          f"best of {repeats}")  # fmt: skip
    for stage, seconds, cpu in zip(spec.stages, best_alone, cpu_alone, strict=True):
        print(f"  {stage.label:22s} alone {seconds:7.2f} s  {count / seconds:7.1f} frames/s"
              f"  {cpu:6.2f} CPU-s")  # fmt: skip
    print(f"  {'whole pipeline':22s}       {best_together:7.2f} s  {count / best_together:7.1f} "
          f"frames/s  {cpu_together:6.2f} CPU-s (the stages one after another: "
          f"{sum(best_alone):.2f} s)")  # fmt: skip
    ratio = max(best_alone) / best_together
    print(f"  pipeline / slowest stage throughput: {ratio:.3f}x (target >= 0.8x)")
    if share is not None:
        shared = [min(times)[0] for times in zip(*alone_shared, strict=True)]
        cpu_shared = [min(times)[1] for times in zip(*alone_shared, strict=True)]
        for stage, seconds, cpu in zip(spec.stages, shared, cpu_shared, strict=True):
            print(f"  {stage.label:22s} alone, shared threads {seconds:7.2f} s  {cpu:6.2f} CPU-s")
        slowest = max(range(len(shared)), key=shared.__getitem__)
        print(f"  with the {share} thread(s) each torch stage has in the pipeline, the slowest "
              f"stage alone ({spec.stages[slowest].label}) takes {shared[slowest]:.2f} s: "
              f"pipeline / that stage {shared[slowest] / best_together:.3f}x")  # fmt: skip
    floor = sum(cpu_alone) / cores
    print(f"  the stages' CPU work alone, {sum(cpu_alone):.2f} CPU-s, over {cores} cores: no "
          f"schedule finishes in under {floor:.2f} s; the pipeline takes "
          f"{best_together / floor:.2f}x that bound")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 720p clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=150, help="frames of part (b)")
    parser.add_argument("--checkpoint", help="saliency checkpoint of part (b)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = folder / "clip.mp4"
        make_clip(clip, args.seconds)
        if args.part in ("a", "both"):
            part_a(folder, clip, round(args.seconds * RATE), args.repeats)
        if args.part in ("b", "both"):
            part_b(folder, clip, args.frames, args.checkpoint, args.device, args.repeats)


if __name__ == "__main__":
    main()
