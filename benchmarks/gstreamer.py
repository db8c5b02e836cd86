"""The ``ianetsaliency`` GStreamer element against the YAML pipeline, same work, same run.

    .venv/bin/python benchmarks/gstreamer.py [--frames 96] [--short 8] [--repeats 3]

Both read the demo's clip (``configs/demo.yaml``'s input, ``synthetic:seed=4242,size=
320x192``, written once as H.264) and run flow (TV-L1 fast at 192) -> saliency (the built-in
lite model) -> composite (highlight, the demo's grid's composite) -> libx264 veryfast at
quality 20, without the temporal stage (off on the element, absent from the YAML):

- ``ianet-stream run`` with ``batch: 1`` and with the demo's ``batch: 4``: each stage in its
  own thread, torch's threads shared among the torch stages;
- ``gst-launch-1.0 ... ianetsaliency ...``: the three stages one after another in the
  element's streaming thread (decode and encode in the same thread too), and again with
  ``queue`` elements before and after it (decode and encode in threads of their own).

Each is timed as a whole process on the clip's first ``--short`` frames and on all
``--frames``, alternately, ``--repeats`` times; the figure is the steady rate
``(frames - short) / (median time of all - median time of the short clip)``, so start-up
(importing torch, loading the model, GStreamer's registry) cancels out.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ianet.data.synthetic import SyntheticVideo
from ianet.device import describe_cpu
from ianet_stream.commands.gst_path import gst_environment

SEED, SIZE, RATE = 4242, (320, 192), 25
PIPELINE = """\
batch: {batch}
stages:
  - decode: {{}}
  - flow: {{method: tvl1, preset: fast, size: 192}}
  - saliency: {{checkpoint: "builtin:ianet-lite-synthetic"}}
  - composite: {{mode: highlight}}
  - encode: {{codec: libx264, preset: veryfast, crf: 20}}
"""
ELEMENT = "ianetsaliency mode=highlight flow-size=192 temporal=false"
ENCODER = "x264enc speed-preset=veryfast pass=qual quantizer=20 ! mp4mux"


def write_clip(path: Path, frames: int) -> None:
    """The demo's synthetic clip, ``frames`` long, as H.264 (crf 18, yuv420p)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for frame in SyntheticVideo(SEED, SIZE, frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), "rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))


@dataclass(frozen=True)
class Contender:
    """A command line (``{clip}`` and ``{output}`` filled in per run) and its environment."""

    template: list[str]
    environment: dict[str, str]

    def command(self, clip: Path, output: Path) -> list[str]:
        return [part.format(clip=clip, output=output) for part in self.template]


def contenders(folder: Path) -> dict[str, Contender]:
    cli = Path(sys.executable).with_name("ianet-stream")
    found = {}
    for batch in (1, 4):
        config = folder / f"pipeline{batch}.yaml"
        config.write_text(PIPELINE.format(batch=batch))
        template = [str(cli), "run", str(config), "--quiet", "--input", "{clip}", "--output"]
        found[f"YAML pipeline, batch {batch}"] = Contender([*template, "{output}"], {**os.environ})
    gst = {**os.environ, **gst_environment().variables, "GST_REGISTRY": str(folder / "reg.bin")}
    decode = "filesrc location={clip} ! decodebin ! videoconvert"
    for name, queue in (("element", ""), ("element, queues around it", " queue !")):
        line = f"{decode} !{queue} {ELEMENT} !{queue} videoconvert ! {ENCODER}"
        template = ["gst-launch-1.0", "-q", *shlex.split(line), "!", "filesink"]
        found[name] = Contender([*template, "location={output}"], gst)
    return found


def cpu_seconds() -> float:
    """CPU time (user and system, all threads) of the finished child processes so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def timed(contender: Contender, clip: Path, output: Path) -> tuple[float, float]:
    """Seconds and CPU-seconds one whole process takes; checks that its output has every
    frame."""
    started, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run(
        contender.command(clip, output), env=contender.environment, check=True, capture_output=True
    )
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    with av.open(str(clip)) as source, av.open(str(output)) as result:
        expected = sum(1 for _ in source.decode(video=0))
        written = sum(1 for _ in result.decode(video=0))
    if written != expected:
        raise SystemExit(f"{output}: {written} frames, expected {expected}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96, help="frames of the clip (96)")
    parser.add_argument("--short", type=int, default=8, help="frames of the short clip (8)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        clips = {args.short: folder / "short.mp4", args.frames: folder / "clip.mp4"}
        for frames, clip in clips.items():
            write_clip(clip, frames)
        runs = contenders(folder)
        for contender in runs.values():  # warm: file caches, GStreamer's registry
            timed(contender, clips[args.short], folder / "warm.mp4")
        times: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(args.repeats):
            for name, contender in runs.items():
                for frames, clip in clips.items():
                    measured = timed(contender, clip, folder / "out.mp4")
                    times.setdefault((name, frames), []).append(measured)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{describe_cpu()}; Python {platform.python_version()}; load average {load}")
    print(
        f"{args.frames} frames of {SIZE[0]}x{SIZE[1]} (short clip {args.short}), "
        f"median of {args.repeats} whole-process runs, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(
        f"  {'':28s} {'short s':>8s} {'all s':>8s} {'frames/s':>9s} {'vs batch 1':>10s} "
        f"{'CPU ms/frame':>12s}  runs (s)"
    )
    extra = args.frames - args.short
    rates = {}
    for name in runs:
        short, full = (statistics.median(s for s, _ in times[name, n]) for n in clips)
        cpu = (statistics.median(c for _, c in times[name, args.frames])
               - statistics.median(c for _, c in times[name, args.short]))  # fmt: skip
        rates[name] = extra / (full - short)
        ratio = rates[name] / rates["YAML pipeline, batch 1"]
        spread = ", ".join(f"{seconds:.1f}" for seconds, _ in times[name, args.frames])
        print(
            f"  {name:28s} {short:8.2f} {full:8.2f} {rates[name]:9.2f} {ratio:9.2f}x "
            f"{1000 * cpu / extra:12.0f}  ({spread})"
        )


if __name__ == "__main__":
    main()
