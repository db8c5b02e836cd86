"""Soak: a live pipeline for minutes on end; memory, threads and latency over time.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--warmup 1] [--interval 5]
        [--size 192x112] [--fps 30] [--max-latency-ms 500] [--device cpu] [--json FILE]

``decode (synthetic:, live, policy latest, paced at --fps) -> flow (tvl1 fast) -> saliency
(builtin lite model) -> composite (blur) -> encode (libx264 ultrafast, a temporary file)``
runs in this process for ``--minutes``, then stops as Ctrl-C would (the encoder's file is
finished and must play). Every ``--interval`` seconds it samples the process's resident
memory (VmRSS) and thread count (/proc/self/status) and, from the run's figures, frames
through, drops and the end-to-end latency over the interval.

Targets: resident memory at the end within 5 % of its value after ``--warmup`` minutes
(models loaded, buffers allocated); the same number of threads from then on; latency p95
steady (per minute, in the report). Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av

from ianet.device import describe_cpu
from ianet_stream.config import parse_pipeline
from ianet_stream.runner import run_pipeline
from ianet_stream.stats import RunStats

MAX_RSS_GROWTH = 0.05


@dataclass
class Sample:
    """The process and the run at one moment; latency over the interval before it."""

    seconds: float
    rss_mib: float
    threads: int
    frames: int
    drops: int
    latency_p50_ms: float
    latency_p95_ms: float


def process_status() -> tuple[float, int]:
    """This process's resident memory in MiB and its number of threads."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def pipeline(args: argparse.Namespace, output: Path) -> dict:
    live = {"policy": "latest", "max_latency_ms": args.max_latency_ms}
    return {
        "device": args.device,
        "batch": 1,
        "stages": [
            {"decode": {"uri": f"synthetic:size={args.size},rate={args.fps}", "live": live}},
            {"flow": {"method": "tvl1", "preset": "fast", "size": min(_size(args.size))}},
            {"saliency": {"size": 128}},
            {"composite": {"mode": "blur"}},
            {"encode": {"path": str(output), "preset": "ultrafast"}},
        ],
    }


def _size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.split("x"))
    return width, height


def sample_until(
    stats: list[RunStats], seconds: float, interval: float, samples: list[Sample]
) -> None:
    """Sample every ``interval`` seconds for ``seconds``, then stop the run (SIGINT)."""
    started = time.monotonic()
    while not stats:
        time.sleep(0.1)
    run, window = stats[0], stats[0].latency.snapshot()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(interval, max(0.0, seconds - elapsed)))
        rss, threads = process_status()
        samples.append(
            Sample(
                round(time.monotonic() - started, 1),
                round(rss, 1),
                threads,
                run.frames,
                run.drops,
                round(run.latency.percentile_ms(50, since=window), 1),
                round(run.latency.percentile_ms(95, since=window), 1),
            )
        )
        window = run.latency.snapshot()
        last = samples[-1]
        print(
            f"{last.seconds:7.1f} s  rss {last.rss_mib:7.1f} MiB  threads {last.threads:3d}  "
            f"frames {last.frames:6d}  drops {last.drops:6d}  "
            f"latency p50 {last.latency_p50_ms:6.1f} ms  p95 {last.latency_p95_ms:6.1f} ms",
            flush=True,
        )
    os.kill(os.getpid(), signal.SIGINT)


def report(samples: list[Sample], warmup_s: float, summary: dict, frames_in_file: int) -> dict:
    """The figures against the targets."""
    after = [s for s in samples if s.seconds >= warmup_s] or samples[-1:]
    reference, end = after[0], samples[-1]
    growth = end.rss_mib / reference.rss_mib - 1
    per_minute = {}
    for sample in samples:
        minute = max(1, math.ceil(sample.seconds / 60))
        per_minute.setdefault(minute, []).append(sample.latency_p95_ms)
    return {
        "rss_after_warmup_mib": reference.rss_mib,
        "rss_at_end_mib": end.rss_mib,
        "rss_growth": round(growth, 4),
        "threads_after_warmup": sorted({s.threads for s in after}),
        "latency_p95_ms_per_minute": {m: max(v) for m, v in per_minute.items()},
        "run": {k: summary[k] for k in ("status", "frames", "drops", "latency_ms", "fps")},
        "stages": {
            stage["stage"]: {k: stage[k] for k in ("frames", "fps", "p95_ms", "busy", "drops")}
            for stage in summary["stages"]
        },
        "frames_in_file": frames_in_file,
        "ok": growth < MAX_RSS_GROWTH
        and len({s.threads for s in after}) == 1
        and summary["status"] == "interrupted"
        and frames_in_file == summary["frames"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="minutes before the reference")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--size", default="192x112")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--max-latency-ms", type=float, default=500.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the samples and the report here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "soak.mp4"
        spec = parse_pipeline(pipeline(args, output))
        stats: list[RunStats] = []
        samples: list[Sample] = []
        sampler = threading.Thread(
            target=sample_until, args=(stats, 60 * args.minutes, args.interval, samples)
        )
        sampler.start()
        summary = run_pipeline(spec, quiet=True, monitor=stats.append).as_dict()
        sampler.join()
        with av.open(str(output)) as container:
            frames_in_file = sum(1 for _ in container.decode(video=0))
    result = report(samples, 60 * args.warmup, summary, frames_in_file)
    result["machine"] = describe_cpu()
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(
            json.dumps({**result, "samples": [asdict(s) for s in samples]}, indent=2) + "\n"
        )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
