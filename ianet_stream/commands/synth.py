"""``ianet-stream synth``: write a synthetic video salient-object dataset with triplet lists."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ianet.data.synthetic import SceneConfig

DESCRIPTION = """\
Write a synthetic video salient-object dataset: textured objects that move on their own
over a panning, zooming textured background, with look-alike distractors fixed to the
background, occluders, objects entering and leaving, and brightness changes; the broader
presets add shapes with holes, thin and articulated parts, objects that stop and start,
camera roll and shake, near parallax props, lighting, motion blur, defocus, noise, JPEG
artefacts and textures from photographs (presets photo, parallax, still, heldout-photos
and style read the photographs bundled in the scikit-image and scikit-learn wheels:
pip install 'ianet-stream[photos]'). Per clip:
JPEG frames (Imgs/), exact 0/255 masks (ground-truth/), the model's colour-coded flow
(flow/, on each frame's own grid), the exact optical flow from the previous frame
(flow-exact/NNNNN.npy, float32 2xHxW, x then y, on the previous frame's grid) and an
mp4 (videos/); train.txt and test.txt list 'img gt flow' rows relative to the dataset
folder (the first frame of a clip has no flow column). The same seed gives the same
files, the mp4 included. Odd sizes are allowed; the mp4 then repeats the last row or column
(yuv420p)."""


PRESET_NAMES = (
    "default",
    "hard",
    "tracking",
    "broad",
    "photo",
    "parallax",
    "still",
    "heldout-photos",
    "style",
)
"""The names of ``ianet.data.synthetic.PRESETS`` (listed here so --help imports nothing)."""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic video salient-object dataset",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="parent folder")
    parser.add_argument("--name", default="SYNTH", metavar="DATASET", help="dataset folder name")
    parser.add_argument("--clips", type=int, default=4, metavar="N", help="number of clips")
    parser.add_argument("--frames", type=int, default=24, metavar="N", help="frames per clip")
    parser.add_argument("--size", default="320x192", metavar="WxH", help="frame size in pixels")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="base random seed")
    parser.add_argument(
        "--test-clips",
        type=int,
        default=None,
        metavar="N",
        help="clips listed in test.txt (the last ones); default a fifth, at least one",
    )
    parser.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="default",
        help="scene parameters: default, hard (faster, more distractors, camouflage), "
        "tracking (the camera follows the object), broad (every shape, camera, lighting "
        "and optics effect, procedural textures), photo, parallax, still (broad with "
        "training photographs; more parallax; objects that mostly stop and start), and "
        "for evaluation only heldout-photos and style (held-out photographs; a drawing "
        "style no training preset has)",
    )
    parser.add_argument(
        "--scene",
        dest="scene",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one scene parameter of the preset (value in YAML), e.g. "
        "--scene distractors=8 --scene object_speed=[0.03,0.07]",
    )
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the mp4 files")
    parser.add_argument(
        "--flow",
        choices=("exact", "tvl1", "raft_small", "raft_large"),
        default="exact",
        help="flow images from the exact motion, or estimated as the pipeline's flow stage does",
    )
    parser.add_argument(
        "--flow-preset",
        choices=("fast", "balanced", "accurate"),
        default="fast",
        help="tvl1 preset for --flow tvl1",
    )
    parser.add_argument(
        "--flow-size",
        type=int,
        default=256,
        metavar="N",
        help="estimate flow with the short side scaled down to N pixels when larger, as "
        "the flow stage's size option does (default 256, as the shipped pipelines)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing dataset of that name"
    )
    parser.set_defaults(run=run)
    return parser


def frame_size(text: str) -> tuple[int, int]:
    """``--size``: ``'320x192'`` -> ``(320, 192)``; a ConfigError names the option otherwise."""
    from ianet_stream.config import parse_size
    from ianet_stream.errors import ConfigError

    try:
        return parse_size(text, minimum=32, short_side=False)  # type: ignore[return-value]
    except ValueError as error:
        raise ConfigError(f"--{error}") from None


COUNTS = ("objects", "distractors", "near_props")


def scene_config(preset: str, overrides: Sequence[str]) -> SceneConfig:
    """The preset's scene parameters with ``KEY=VALUE`` overrides (YAML values)."""

    from ianet.data.synthetic import PRESETS, SceneConfig
    from ianet_stream.config import load_yaml
    from ianet_stream.errors import ConfigError

    names = [field.name for field in dataclasses.fields(SceneConfig)]
    changes = {}
    for item in overrides:
        key, equals, value = item.partition("=")
        if not equals or key not in names:
            raise ConfigError(
                f"--scene: expected KEY=VALUE with KEY one of {', '.join(names)}, got {item!r}"
            )
        parsed = load_yaml(value)
        is_range = isinstance(getattr(PRESETS[preset], key), tuple)
        if key in COUNTS and isinstance(parsed, list | int):
            changes[key] = parsed  # a count or a [low, high] range; SceneConfig checks it
            continue
        if is_range != isinstance(parsed, list):
            numbers: list[Any] = [None]
        else:
            numbers = parsed if is_range else [parsed]
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
            wanted = "[low, high]" if is_range else "a number"
            if key in COUNTS:
                wanted = "a count or [low, high]"
            raise ConfigError(f"--scene {key}: expected {wanted}, got {value!r}")
        changes[key] = parsed
    try:
        return dataclasses.replace(PRESETS[preset], **changes)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"--scene: {error}") from None


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ianet.data.photos import MissingPhotosError, check_photos
    from ianet.data.synthetic import write_dataset
    from ianet_stream.cli import EXIT_OK
    from ianet_stream.console import console
    from ianet_stream.errors import ConfigError
    from ianet_stream.video import write_video

    size = frame_size(args.size)
    for option, value in (("--clips", args.clips), ("--frames", args.frames)):
        if value < 1:
            raise ConfigError(f"{option}: expected an integer >= 1, got {value}")
    if args.test_clips is not None and not 0 <= args.test_clips <= args.clips:
        raise ConfigError(f"--test-clips: expected 0 to {args.clips}, got {args.test_clips}")
    if args.seed < 0:
        raise ConfigError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.flow_size < 16:
        raise ConfigError(f"--flow-size: expected an integer >= 16, got {args.flow_size}")
    if args.fps <= 0:
        raise ConfigError(f"--fps: expected a positive number, got {args.fps}")
    if not args.name or "/" in args.name or "\\" in args.name or args.name.startswith("."):
        raise ConfigError(f"--name: expected a plain folder name, got {args.name!r}")
    config = scene_config(args.preset, args.scene)
    if config.uses_photos:
        try:
            check_photos(config.photo_set)
        except MissingPhotosError as error:
            raise ConfigError(f"--preset {args.preset}: {error}") from None
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=args.quiet, transient=True) as progress:
        task = progress.add_task("synth", total=args.clips * args.frames)
        folder = write_dataset(
            args.out,
            args.name,
            clips=args.clips,
            frames=args.frames,
            size=size,
            seed=args.seed,
            config=config,
            test_clips=args.test_clips,
            video_writer=write_video,
            fps=args.fps,
            overwrite=args.overwrite,
            progress=lambda: progress.advance(task),
            flow_method=args.flow,
            flow_options={"preset": args.flow_preset} if args.flow == "tvl1" else {},
            flow_size=args.flow_size,
        )
    if not args.quiet:
        console.print(
            f"wrote {escape(str(folder))}: {args.clips} clips of {args.frames} frames "
            f"at {size[0]}x{size[1]}, lists {escape(str(folder / 'train.txt'))} and "
            f"{escape(str(folder / 'test.txt'))}",
            highlight=False,
        )
    return EXIT_OK
