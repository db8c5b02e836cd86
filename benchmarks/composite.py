"""Time the composite stage's modes at several frame sizes and save a preview of its grid.

    .venv/bin/python benchmarks/composite.py [--sizes 320x180,1280x720,1920x1080]
        [--working 256] [--threads 1] [--device cpu] [--preview /tmp/composite_preview.png]

Each mode is timed through ``Composite.process`` on one frame at a time, as the pipeline
gives it: the picture at full size, its saliency map at the working size of the model
stages (the short side scaled to ``--working``, as the flow stage's ``size``). The
baseline, measured in the same run, is the naive full-resolution background blur: the map
upsampled to the picture in float, kornia's ``gaussian_blur2d`` at full resolution with the
same sigma, a float blend. The preview is a 2x2 grid (picture, flow, saliency, a composite)
of a synthetic clip, with the generator's ground-truth mask standing in for the saliency.
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
from torchvision.transforms.v2 import functional as TF

from ianet.data.synthetic import SyntheticVideo
from ianet.flow import flow_to_image
from ianet_stream.frame import Frame
from ianet_stream.stage import Context
from ianet_stream_plugins.composite import Composite, CompositeOptions

MODES = ("mask", "alpha", "blur", "replace", "highlight", "grid")


def synthetic_frames(width: int, height: int, working: int, count: int) -> list[Frame]:
    """Frames of a synthetic clip, the ground truth (at the working size) as saliency, the
    true motion as flow."""
    scale = min(1.0, working / min(width, height))
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    frames = []
    for index, sample in enumerate(SyntheticVideo(seed=3, size=(width, height), frames=count)):
        flow_image = None
        if sample.motion is not None:
            flow_image = flow_to_image(torch.from_numpy(sample.motion)[None])[0]
        saliency = torch.from_numpy(sample.mask).float()[None, None] / 255
        frames.append(
            Frame(
                image=sample.image,
                index=index,
                stream="synthetic",
                flow_image=flow_image,
                saliency=TF.resize(saliency, list(small), antialias=True)[0, 0],
            )
        )
    return frames


def naive_blur(frame: Frame, device: torch.device, sigma: float) -> torch.Tensor:
    """The baseline: full-resolution Gaussian blur of the whole picture, blended by the map
    upsampled to the picture."""
    image = torch.as_tensor(frame.image).to(device).permute(2, 0, 1)[None].float() / 255
    mask = torch.nn.functional.interpolate(
        frame.saliency.to(device)[None, None], size=image.shape[-2:], mode="bilinear"
    )
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
    parser.add_argument("--sizes", default="320x180,1280x720,1920x1080", help="WxH,...")
    parser.add_argument("--working", type=int, default=256, help="the maps' short side")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preview", type=Path, default=Path("/tmp/composite_preview.png"))
    parser.add_argument(
        "--grid-composite", choices=("blur", "replace", "highlight"), default="highlight"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    strength = CompositeOptions().strength
    print(f"{args.device}, {args.threads} thread(s), maps at short side {args.working}; ms/frame")
    print(f"{'mode':12s}" + "".join(f"{size:>22s}" for size in args.sizes.split(",")))
    results: dict[str, list[str]] = {mode: [] for mode in ("baseline", *MODES)}
    for size in args.sizes.split(","):
        width, height = (int(n) for n in size.split("x"))
        frames = synthetic_frames(width, height, args.working, 2)
        if size == args.sizes.split(",")[0]:
            save_preview(frames, args.preview, args.device, args.grid_composite)
        frame = frames[-1]
        baseline = median_seconds(lambda: naive_blur(frame, device, strength), args.repeat, device)  # noqa: B023
        results["baseline"].append(f"{1000 * baseline:8.2f} (1.00)")
        for mode in MODES:
            stage = Composite(CompositeOptions(mode=mode), Context(device=args.device))
            stage.open()
            took = median_seconds(lambda: stage.process([frame]), args.repeat, device)  # noqa: B023
            stage.close()
            results[mode].append(f"{1000 * took:8.2f} ({took / baseline:.2f})")
    for mode, cells in results.items():
        print(f"{mode:12s}" + "".join(f"{cell:>22s}" for cell in cells))


if __name__ == "__main__":
    main()
