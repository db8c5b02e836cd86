"""Folder runs: worker processes here (``--jobs N``) against Ray actors (``--executor ray``).

    .venv/bin/python benchmarks/folder.py [--clips 8] [--frames 250] [--size 320x240]
        [--jobs 2] [--repeats 1] [--config PIPELINE.yaml]

Writes ``--clips`` test-pattern clips (FFmpeg's testsrc2) into a temporary folder, then runs
``ianet-stream run CONFIG --input CLIPS --output OUT`` with ``--jobs N`` and with
``--executor ray --jobs N`` (a local Ray instance), as whole processes, alternately,
``--repeats`` times each. Figures: frames/s over the run's wall time (Ray's start-up
included, as a user sees it), medians over the repeats, and their ratio; and the mean
seconds a clip's pipeline took on a worker (the work itself, start-up excluded). The
default pipeline is ``decode -> encode`` (libx264 veryfast).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ianet.device import describe_cpu

PASSTHROUGH = """\
stages:
  - decode: {}
  - encode: {codec: libx264, preset: veryfast, crf: 20}
"""
EXECUTORS = {"local": [], "ray": ["--executor", "ray"]}


def cli(*args: str) -> None:
    command = [sys.executable, "-m", "ianet_stream.cli", *args, "--quiet"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def write_clips(folder: Path, clips: int, frames: int, size: str) -> None:
    config = folder.parent / "write.yaml"
    config.write_text("stages:\n  - decode: {}\n  - encode: {preset: ultrafast}\n")
    for index in range(clips):
        graph = f"lavfi:testsrc2=size={size}:rate=25:duration={frames / 25}"
        cli("run", str(config), "--input", graph, "--output", str(folder / f"clip{index}.mp4"))


def folder_run(
    config: Path, clips: Path, out: Path, jobs: int, executor: str
) -> tuple[float, float]:
    """Frames/s of one folder run and the mean seconds of its clips, from its ``--json``."""
    summary = out.with_suffix(".json")
    cli(
        "run", str(config), "--input", str(clips), "--output", str(out),
        "--jobs", str(jobs), "--json", str(summary), *EXECUTORS[executor],
    )  # fmt: skip
    document = json.loads(summary.read_text())
    if document["counts"]["done"] != len(document["clips"]):
        raise RuntimeError(f"{executor}: some clips did not finish: {document['counts']}")
    clip_seconds = statistics.mean(clip["seconds"] for clip in document["clips"])
    return float(document["fps"]), clip_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--config", type=Path, help="a pipeline YAML (default: decode -> encode)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        clips = root / "clips"
        clips.mkdir()
        write_clips(clips, args.clips, args.frames, args.size)
        config = args.config or root / "passthrough.yaml"
        if args.config is None:
            config.write_text(PASSTHROUGH)
        runs: dict[str, list[tuple[float, float]]] = {executor: [] for executor in EXECUTORS}
        for repeat in range(args.repeats):
            for executor in EXECUTORS:
                out = root / f"out-{executor}-{repeat}"
                runs[executor].append(folder_run(config, clips, out, args.jobs, executor))
    medians = {e: statistics.median(fps for fps, _ in values) for e, values in runs.items()}
    clip_seconds = {e: statistics.median(s for _, s in values) for e, values in runs.items()}
    print(
        json.dumps(
            {
                "machine": describe_cpu(),
                "clips": args.clips,
                "frames_per_clip": args.frames,
                "size": args.size,
                "jobs": args.jobs,
                "frames_per_s": {executor: round(value, 1) for executor, value in medians.items()},
                "ray_vs_local": round(medians["ray"] / medians["local"], 2),
                "mean_clip_seconds": {e: round(value, 2) for e, value in clip_seconds.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
