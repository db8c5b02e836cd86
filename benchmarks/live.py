"""Live capacity: a paced camera through the demo pipeline against the same pipeline on a file.

    .venv/bin/python benchmarks/live.py [--seconds 20] [--size 320x192] [--fps 30]
        [--max-latency-ms 250] [--streams 1,4] [--in-flight 2] [--json FILE]

For each number of streams N, in one run:

- file: N clips of FFmpeg's testsrc2 (``--size``, ``--seconds`` at ``--fps``, written first)
  through ``configs/demo.yaml``'s stages (decode -> flow -> saliency -> composite grid ->
  encode), as fast as they go, batch N (batch 1 for one stream): the pipeline's throughput.
- live: N ``lavfi:testsrc2`` sources paced in real time at ``--fps`` with
  ``live: {policy: latest, max_latency_ms}`` through the same stages for ``--seconds``.

Figures per stream: frames/s delivered (frames out of the last stage over the run's
seconds) and its ratio to the file run's frames/s per stream, capture-to-output latency
p50/p95 (and p95 over the second half, once the latency guard has settled), the stages the
guard degraded (``--no-degrade``: it only warns), and the model work thrown away: frames
the flow and saliency stages worked on that never came out, as a share of what they worked
on. Targets (issue #16): ratio >= 0.8,
p95 <= max_latency_ms, waste <= 10 %.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import yaml

from ianet.device import cpu_flags
from ianet_stream.config import parse_pipeline
from ianet_stream.runner import run_pipeline
from ianet_stream.stats import RunStats, RunSummary
from ianet_stream.video import VideoReader, write_video

ROOT = Path(__file__).resolve().parents[1]


def demo_stages(output: Path) -> list[dict]:
    """The demo pipeline's stages after its source, writing to ``output``."""
    stages = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())["stages"]
    *middle, encode = stages[1:]
    return [*middle, {"encode": {**encode["encode"], "path": str(output)}}]


def write_clips(folder: Path, count: int, size: str, fps: int, seconds: float) -> list[str]:
    """``count`` testsrc2 clips (each its own frame offset) as lossless-enough mp4 files."""
    paths = []
    for index in range(count):
        graph = f"testsrc2=size={size}:rate={fps}:duration={seconds + index / fps}"
        with VideoReader(graph, graph, format="lavfi") as reader:
            pictures = [reader.to_rgb(frame) for frame in reader.frames()][index:]
        path = folder / f"clip{index}.mp4"
        write_video(path, pictures, fps)
        paths.append(str(path))
    return paths


def figures(
    summary: RunSummary, streams: int, seconds: float, second_half: float | None = None
) -> dict:
    stages = {stage.name: stage for stage in summary.stages}
    delivered = summary.frames
    worked = {name: stages[name].frames for name in ("flow", "saliency")}
    report = summary.as_dict()
    return {
        "status": summary.status,
        "frames": delivered,
        "seconds": round(seconds, 2),
        "fps_per_stream": round(delivered / seconds / streams, 2),
        "latency_p50_ms": report["latency_ms"]["p50"],
        "latency_p95_ms": report["latency_ms"]["p95"],
        "latency_p95_second_half_ms": second_half,
        "worked": worked,
        "waste": {
            name: round(1 - delivered / count, 3) if count else 0.0
            for name, count in worked.items()
        },
        "drops": summary.stats.drops,
        "degradations": report["degradations"],
    }


def run_file(uris: list[str], out: Path) -> dict:
    batch = len(uris)
    spec = parse_pipeline(
        {"batch": batch, "stages": [{"decode": {"uri": uris if batch > 1 else uris[0]}},
                                    *demo_stages(out / "file.mp4" if batch == 1 else out)]}
    )  # fmt: skip
    started = time.perf_counter()
    summary = run_pipeline(spec, quiet=True)
    return figures(summary, batch, time.perf_counter() - started)


def run_live(args: argparse.Namespace, streams: int, out: Path) -> dict:
    live = {
        "policy": "latest",
        "max_latency_ms": args.max_latency_ms,
        "in_flight": args.in_flight,
        "degrade": not args.no_degrade,
    }
    uris = [
        f"lavfi:testsrc2=size={args.size}:rate={args.fps}:duration={args.seconds}"
        for _ in range(streams)
    ]
    spec = parse_pipeline(
        {"batch": streams, "stages": [
            {"decode": {"uri": uris if streams > 1 else uris[0], "live": live}},
            *demo_stages(out / "live.mp4" if streams == 1 else out / "live"),
        ]}
    )  # fmt: skip
    halfway: dict[str, object] = {}

    def watch(stats: RunStats) -> None:  # a snapshot of the latencies halfway through
        def snapshot() -> None:
            halfway["counts"] = stats.latency.snapshot()

        timer = threading.Timer(args.seconds / 2, snapshot)
        timer.daemon = True
        timer.start()
        halfway["stats"] = stats

    started = time.perf_counter()
    summary = run_pipeline(spec, quiet=True, monitor=watch)
    seconds = time.perf_counter() - started
    steady = round(summary.stats.latency.percentile_ms(95, since=halfway["counts"]), 1)
    return figures(summary, streams, seconds, steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="320x192")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--max-latency-ms", type=float, default=250.0)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--no-degrade", action="store_true", help="only warn above the bound")
    parser.add_argument("--streams", default="1,4", help="numbers of streams, e.g. 1,4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"cpu": " ".join(cpu_flags()), "args": vars(args) | {"json": None}, "runs": []}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for streams in (int(n) for n in args.streams.split(",")):
            clips = write_clips(folder, streams, args.size, args.fps, args.seconds)
            file = run_file(clips, folder / f"file{streams}")
            live = run_live(args, streams, folder / f"live{streams}")
            ratio = live["fps_per_stream"] / file["fps_per_stream"]
            results["runs"].append({"streams": streams, "file": file, "live": live,
                                    "ratio": round(ratio, 3)})  # fmt: skip
            print(
                f"{streams} stream(s): file {file['fps_per_stream']:.1f} frames/s per stream; "
                f"live {live['fps_per_stream']:.1f} ({ratio:.2f}x), latency p50 "
                f"{live['latency_p50_ms']:.0f} ms, p95 {live['latency_p95_ms']:.0f} ms, second "
                f"half {live['latency_p95_second_half_ms']:.0f} ms (bound "
                f"{args.max_latency_ms:.0f}), model work thrown away: flow "
                f"{100 * live['waste']['flow']:.1f} %, saliency "
                f"{100 * live['waste']['saliency']:.1f} %; degradations {live['degradations']}"
            )
    print(f"CPU flags: {results['cpu']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
