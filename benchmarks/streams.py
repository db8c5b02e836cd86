"""Many streams, one model call: N streams batched in one pipeline against N pipelines.

    .venv/bin/python benchmarks/streams.py [--streams 4] [--size 160x96] [--frames 48]
        [--rate 0] [--batch 8] [--checkpoint builtin:ianet-lite-synthetic]
        [--device cpu|cuda] [--repeats 2]

Work: ``--streams`` synthetic clips (``--size``, ``--frames`` each, a different seed each)
through ``decode -> flow (TV-L1 fast) -> saliency``; the last stage's frames go to a sink
that records each frame's latency (from its capture to its leaving the saliency stage).

``--rate 0`` (the default) reads the inputs as fast as the pipeline takes them: the figure
is the throughput; the latency is then mostly time spent queued (the queues hold about
``6 * batch`` frames per pipeline, so it is that many frames over the pipeline's rate).
``--rate R`` paces each stream as a camera would (frame i is captured at i / R seconds):
at a rate both modes sustain, the latency is the pipeline's own.

- batched: one pipeline whose decode reads the N inputs at once (``uri: [...]``); flow and
  saliency batch the frames of every stream into one call.
- separate: N pipelines, one input each, run **concurrently as N processes**: that is how
  N live cameras are served without cross-stream batching (one after another is not an
  option for a live input, and it would also hide the cost of N models competing for the
  device). Each process gets cores/N torch threads (at least 1), the batched process all
  cores, so that both use the machine's cores and no more.

Every process loads its model and runs a short warm-up pipeline first; then all start
together. Figures: frames/s = all frames / wall time (from the common start to the last
frame's arrival: pipeline start-up included, as a user pays it); latency p50/p95 over every
frame. Both modes run alternately ``--repeats`` times in one run; the ratio compares their
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
from pipeline import machine

from ianet_stream.config import PipelineSpec, StageSpec, parse_pipeline
from ianet_stream.frame import Frame
from ianet_stream.runner import run_pipeline
from ianet_stream.stage import Emit, Message, Stage
from ianet_stream_plugins.decode import Decode, DecodeOptions


@dataclass
class ArrivalsOptions:
    arrivals: list[tuple[float, float]]


class Arrivals(Stage):
    """A sink that records (arrival time, latency since decoding) of every frame."""

    kind: ClassVar = "sink"
    Options: ClassVar[type] = ArrivalsOptions

    def process(self, frames: list[Frame]) -> list[Frame]:
        now = time.monotonic()
        self.options.arrivals.extend((now, now - frame.captured) for frame in frames)
        return frames


@dataclass
class PacedOptions(DecodeOptions):
    rate: float = 0.0


class Paced(Decode):
    """decode, each stream's frame i held back until i / rate seconds after the start, its
    capture time (a camera's pace)."""

    def run(self, emit: Emit) -> None:
        start = time.monotonic()

        def paced(message: Message) -> None:
            if isinstance(message, Frame):
                message.captured = start + message.index / self.options.rate
                time.sleep(max(0.0, message.captured - time.monotonic()))
            emit(message)

        super().run(paced)


def pipeline(
    args: argparse.Namespace, uris: list[str], frames: int, rate: float
) -> tuple[PipelineSpec, list]:
    """decode (the ``uris``, paced at ``rate`` when > 0) -> flow -> saliency -> Arrivals;
    and the sink's arrivals list."""
    spec = parse_pipeline(
        {
            "device": args.device,
            "batch": args.batch,
            "stages": [
                {"decode": {"uri": uris, "max_frames": frames}},
                {"flow": {"method": "tvl1", "preset": "fast"}},
                {"saliency": {"checkpoint": args.checkpoint}},
                {"encode": {"path": "unused.mp4"}},  # replaced by the Arrivals sink
            ],
        }
    )
    arrivals: list[tuple[float, float]] = []
    stages = [*spec.stages[:3], StageSpec(3, "arrivals", Arrivals, ArrivalsOptions(arrivals))]
    if rate > 0:
        decode = stages[0].options
        options = {field.name: getattr(decode, field.name) for field in fields(decode)}
        stages[0] = StageSpec(0, "decode", Paced, PacedOptions(**options, rate=rate))
    return PipelineSpec(tuple(stages), spec.device, spec.batch), arrivals


def stream_uris(args: argparse.Namespace) -> list[str]:
    return [
        f"synthetic:seed={seed},size={args.size},frames={args.frames}"
        for seed in range(1, args.streams + 1)
    ]


def worker(args: argparse.Namespace) -> None:
    """One process of a mode: warm up, say ready, wait for go, run, print the figures."""
    import torch

    torch.set_num_threads(args.threads)
    uris = args.uris.split(";")
    warm_up, _ = pipeline(args, uris, frames=4, rate=0)
    if run_pipeline(warm_up, quiet=True, signals=()).status != "done":
        raise SystemExit("warm-up failed")
    spec, arrivals = pipeline(args, uris, frames=args.frames, rate=args.rate)
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    while time.monotonic() < start:
        time.sleep(0.001)
    summary = run_pipeline(spec, quiet=True, signals=())
    if summary.status != "done":
        raise SystemExit(f"run failed: {summary.error}")
    calls = {stage.name: stage.counters["calls"] for stage in summary.stages[1:3]}
    print(json.dumps({"arrivals": arrivals, "calls": calls}), flush=True)


def run_mode(args: argparse.Namespace, groups: list[list[str]], threads: int) -> dict:
    """Run one process per group of inputs, all starting together; the mode's figures."""
    command = [sys.executable, __file__, "--worker", "--threads", str(threads)]
    options = ["--device", args.device, "--batch", str(args.batch), "--frames", str(args.frames)]
    options += ["--rate", str(args.rate)]
    options += ["--checkpoint", args.checkpoint]
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    processes = [
        subprocess.Popen(
            [*command, *options, "--uris", ";".join(group)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for group in groups
    ]
    for process in processes:
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("a worker failed to start")
    start = time.monotonic() + 0.2
    for process in processes:
        process.stdin.write(f"{start}\n")
        process.stdin.flush()
    results = [json.loads(process.stdout.readline()) for process in processes]
    for process in processes:
        process.wait()
    arrivals = [arrival for result in results for arrival in result["arrivals"]]
    latencies = np.array([latency for _, latency in arrivals])
    wall = max(when for when, _ in arrivals) - start
    return {
        "fps": len(arrivals) / wall,
        "p50": 1000 * float(np.percentile(latencies, 50)),
        "p95": 1000 * float(np.percentile(latencies, 95)),
        "calls": {
            stage: sum(result["calls"][stage] for result in results)
            for stage in ("flow", "saliency")
        },
        "frames": len(arrivals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--size", default="160x96", help="WxH of every stream")
    parser.add_argument("--frames", type=int, default=48, help="frames per stream")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="frames/s of each stream; 0: as fast as taken"
    )
    parser.add_argument("--batch", type=int, default=8, help="the pipelines' batch")
    parser.add_argument("--checkpoint", default="builtin:ianet-lite-synthetic")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--uris", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    cores = os.cpu_count() or 1
    uris = stream_uris(args)
    modes = {
        "batched (1 pipeline)": ([uris], cores),
        f"separate ({args.streams} processes)": (
            [[uri] for uri in uris],
            max(1, cores // len(uris)),
        ),
    }
    figures: dict[str, list[dict]] = {name: [] for name in modes}
    for _ in range(args.repeats):
        for name, (groups, threads) in modes.items():
            figures[name].append(run_mode(args, groups, threads))
    device = args.device
    if device.startswith("cuda"):
        import torch

        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    print(f"{machine()}, device {device}")
    print(
        f"{args.streams} streams of {args.size}, {args.frames} frames each"
        f"{f' at {args.rate:g} frames/s' if args.rate > 0 else ''}, batch {args.batch}, "
        f"decode -> flow (tvl1 fast) -> saliency ({args.checkpoint}); "
        f"median of {args.repeats} alternating runs"
    )
    medians = {}
    for name, runs in figures.items():
        medians[name] = {
            key: statistics.median(run[key] for run in runs) for key in ("fps", "p50", "p95")
        }
        each = ", ".join(f"{run['fps']:.1f}" for run in runs)
        calls = ", ".join(f"{stage} {count}" for stage, count in runs[0]["calls"].items())
        print(
            f"  {name:24s} {medians[name]['fps']:6.1f} frames/s ({each})  latency p50 "
            f"{medians[name]['p50']:6.0f} ms  p95 {medians[name]['p95']:6.0f} ms  "
            f"(calls for {runs[0]['frames']} frames: {calls})"
        )
    batched, separate = (medians[name] for name in modes)
    ratios = {key: batched[key] / separate[key] for key in ("fps", "p50", "p95")}
    print(
        f"  batched / separate: throughput {ratios['fps']:.2f}x, "
        f"latency p50 {ratios['p50']:.2f}x, p95 {ratios['p95']:.2f}x"
    )


if __name__ == "__main__":
    main()
