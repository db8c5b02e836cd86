"""Time the composite stage's modes and save a preview of its grid.

    .venv/bin/python benchmarks/composite.py [--size 320x192] [--batch 4] [--device cpu]
        [--preview /tmp/composite_preview.png] [--grid-composite highlight|blur|replace]

Each mode is timed through ``Composite.process`` on a batch of synthetic frames; the
baseline, measured in the same run, is the naive background blur: kornia's
``gaussian_blur2d`` at full resolution with the same sigma, then a plain mask blend.
The preview is a 2x2 grid (picture, flow, saliency, a composite) of a synthetic clip, with
the generator's ground-truth mask standing in for the saliency map.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import kornia
import torch
from PIL import Image
from timing import median_seconds

from ianet.data.synthetic import SyntheticVideo
from ianet.flow import flow_to_image
from ianet_stream.frame import Frame
from ianet_stream.stage import Context
from ianet_stream_plugins.composite import Composite, CompositeOptions

MODES = ("mask", "alpha", "blur", "replace", "highlight", "grid")


def synthetic_frames(width: int, height: int, count: int) -> list[Frame]:
    """Frames of a synthetic clip, the ground truth as saliency, the true motion as flow."""
    frames = []
    for index, sample in enumerate(SyntheticVideo(seed=3, size=(width, height), frames=count)):
        flow_image = None
        if sample.motion is not None:
            flow_image = flow_to_image(torch.from_numpy(sample.motion)[None])[0]
        frames.append(
            Frame(
                image=sample.image,
                index=index,
                stream="synthetic",
                flow_image=flow_image,
                saliency=torch.from_numpy(sample.mask).float() / 255,
            )
        )
    return frames


def naive_blur(frames: list[Frame], device: torch.device, sigma: float) -> torch.Tensor:
    """The baseline: full-resolution Gaussian blur of the whole picture, blended by the mask."""
    image = torch.stack([torch.as_tensor(f.image) for f in frames]).to(device)
    image = image.permute(0, 3, 1, 2).float() / 255
    mask = torch.stack([f.saliency for f in frames]).to(device)[:, None]
    size = 2 * math.ceil(3 * sigma) + 1
    blurred = kornia.filters.gaussian_blur2d(image, size, (sigma, sigma), border_type="replicate")
    return (torch.lerp(blurred, image, mask) * 255).round().to(torch.uint8)


def save_preview(frames: list[Frame], path: Path, device: str, composite: str) -> None:
    options = CompositeOptions(mode="grid", grid_composite=composite)
    stage = Composite(options, Context(device=device))
    stage.open()
    output = stage.process([frames[-1]])[0].output.cpu().numpy()
    stage.close()
    partial = path.with_name(path.name + ".part")
    Image.fromarray(output).save(partial, format="PNG")
    os.replace(partial, path)
    print(f"preview {output.shape[1]}x{output.shape[0]}: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x192", help="frame size WxH")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preview", type=Path, default=Path("/tmp/composite_preview.png"))
    parser.add_argument(
        "--grid-composite", choices=("blur", "replace", "highlight"), default="highlight"
    )
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    device = torch.device(args.device)

    frames = synthetic_frames(width, height, max(args.batch, 2))
    save_preview(frames, args.preview, args.device, args.grid_composite)

    batch = frames[: args.batch]
    strength = CompositeOptions().strength
    baseline = median_seconds(lambda: naive_blur(batch, device, strength), args.repeat, device)
    print(f"{args.device} {width}x{height} batch {args.batch}; per frame:")
    print(f"  baseline (full-resolution blur) {1000 * baseline / len(batch):8.2f} ms   1.00")
    for mode in MODES:
        stage = Composite(CompositeOptions(mode=mode), Context(device=args.device))
        stage.open()
        took = median_seconds(lambda: stage.process(batch), args.repeat, device)  # noqa: B023
        stage.close()
        print(f"  {mode:30s} {1000 * took / len(batch):8.2f} ms   {took / baseline:4.2f}")


if __name__ == "__main__":
    main()
