"""The ``composite`` stage: turns each frame's saliency map into the picture the user sees.

Modes: ``mask`` (the map in grey), ``alpha`` (RGBA with the map as alpha), ``blur``
(background blurred), ``replace`` (background replaced by a colour, a picture or a looped
video), ``highlight`` (background dimmed or greyed, the object tinted or outlined) and
``grid`` (picture | flow | saliency | a composite, labelled). The work runs on the
pipeline's device, one call per batch of equally sized frames.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import torch
from PIL import Image, ImageColor
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ianet_stream.errors import InputError
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context, Stage
from ianet_stream.video import read_pictures
from ianet_stream_plugins import composite_ops

Mode = Literal["mask", "alpha", "blur", "replace", "highlight", "grid"]
GridComposite = Literal["blur", "replace", "highlight"]
Style = Literal["dim", "desaturate"]


def parse_colour(text: str) -> tuple[float, float, float]:
    """``'#rrggbb'``, ``'#rgb'`` or a CSS colour name as ``(r, g, b)`` in [0, 1]."""
    red, green, blue = ImageColor.getrgb(text)[:3]
    return (red / 255, green / 255, blue / 255)


def _is_colour(text: str) -> bool:
    try:
        parse_colour(text)
    except ValueError:
        return False
    return True


def _check_choice(name: str, value: Any, choices: Any) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass
class CompositeOptions:
    """Options of the ``composite`` stage."""

    mode: Mode = field(
        default="blur",
        metadata={"help": "what to show: mask, alpha, blur, replace, highlight or grid"},
    )
    threshold: float | None = field(
        default=None,
        metadata={"help": "cut the map at this value (0-1) for a hard mask; none keeps it soft"},
    )
    feather: float = field(
        default=2.0, metadata={"help": "soften the mask's edges: Gaussian sigma in pixels"}
    )
    strength: float = field(
        default=15.0, metadata={"help": "blur: background blur, Gaussian sigma in pixels"}
    )
    background: str = field(
        default="#00b140",
        metadata={"help": "replace: a colour ('#rrggbb' or a name), a picture or a video (looped)"},
    )
    style: Style = field(
        default="dim", metadata={"help": "highlight: the background dim or desaturate"}
    )
    dim: float = field(
        default=0.35, metadata={"help": "highlight: brightness of the dimmed background (0-1)"}
    )
    tint: str | None = field(
        default=None, metadata={"help": "highlight: colour mixed into the object; none for none"}
    )
    outline: int = field(
        default=2, metadata={"help": "highlight: outline width in pixels; 0 for none"}
    )
    outline_colour: str = field(
        default="#ffd200", metadata={"help": "highlight: colour of the outline"}
    )
    grid_composite: GridComposite = field(
        default="highlight",
        metadata={"help": "grid: the composite in the fourth panel: blur, replace or highlight"},
    )
    grid_columns: int = field(
        default=2, metadata={"help": "grid: panels per row (2 for 2x2, 4 for a 1x4 strip)"}
    )

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, Mode)
        _check_choice("style", self.style, Style)
        _check_choice("grid_composite", self.grid_composite, GridComposite)
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.feather < 0:
            raise ValueError(f"feather must be at least 0, got {self.feather}")
        if self.strength < 0:
            raise ValueError(f"strength must be at least 0, got {self.strength}")
        if not 0 <= self.dim <= 1:
            raise ValueError(f"dim must be between 0 and 1, got {self.dim}")
        if not 0 <= self.outline <= 64:
            raise ValueError(f"outline must be between 0 and 64 pixels, got {self.outline}")
        if not 1 <= self.grid_columns <= 4:
            raise ValueError(f"grid_columns must be between 1 and 4, got {self.grid_columns}")
        for name in ("tint", "outline_colour"):
            value = getattr(self, name)
            if value is not None and not _is_colour(value):
                raise ValueError(f"{name} must be a colour ('#rrggbb' or a name), got {value!r}")
        if not _is_colour(self.background) and not Path(self.background).expanduser().is_file():
            raise ValueError(
                "background must be a colour ('#rrggbb' or a name) or an existing picture or "
                f"video file, got {self.background!r}"
            )

    @property
    def replaces(self) -> bool:
        """Whether the output needs the replacement background."""
        return self.mode == "replace" or (self.mode == "grid" and self.grid_composite == "replace")


def _to_float_images(images: list[Any], device: torch.device) -> Tensor:
    """HxWx3 uint8 pictures (numpy or tensors) as one Bx3xHxW float batch in [0, 1]."""
    batch = torch.stack([torch.as_tensor(image).to(device, non_blocking=True) for image in images])
    return batch.permute(0, 3, 1, 2).float().div_(255)


def _to_uint8(images: Tensor) -> Tensor:
    """Bx{3,4}xHxW float in [0, 1] as BxHxWx{3,4} uint8."""
    return images.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class VideoLoop:
    """Frames of a video file, in order, starting again after the last one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pictures: Generator[tuple[int, np.ndarray]] | None = None

    def next(self) -> np.ndarray:
        """The next frame as an upright HxWx3 uint8 RGB array."""
        if self._pictures is None:
            self._pictures = read_pictures(self.path)
        picture = next(self._pictures, None)
        if picture is None:
            self._pictures = read_pictures(self.path)
            picture = next(self._pictures, None)
        if picture is None:
            raise InputError(f"{self.path}: the background video has no frames")
        return picture[1]

    def close(self) -> None:
        """Release the file; the next call to ``next`` opens it again from the start."""
        if self._pictures is not None:
            self._pictures.close()
        self._pictures = None


class Background:
    """The replacement background: a colour, a picture, or a video looped per stream."""

    def __init__(self, spec: str, device: torch.device) -> None:
        self.device = device
        self._colour: Tensor | None = None
        self._picture: Tensor | None = None
        self._covers: dict[tuple[int, int], Tensor] = {}
        self._video_path: Path | None = None
        self._videos: dict[str, VideoLoop] = {}
        if _is_colour(spec):
            self._colour = torch.tensor(parse_colour(spec), device=device).view(1, 3, 1, 1)
            return
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: background file not found")
        try:
            with Image.open(path) as picture:
                pixels = np.array(picture.convert("RGB"))
        except OSError:
            self._video_path = path
            self._check_video()
            return
        self._picture = _to_float_images([pixels], device)

    def _check_video(self) -> None:
        probe = VideoLoop(self._video_path)
        try:
            probe.next()
        finally:
            probe.close()

    def for_frames(self, frames: list[Frame], height: int, width: int) -> Tensor:
        """The background behind ``frames``: ``1x3x1x1`` (colour) or ``Bx3xHxW``."""
        if self._colour is not None:
            return self._colour
        if self._picture is not None:
            size = (height, width)
            if size not in self._covers:
                self._covers[size] = composite_ops.cover(self._picture, height, width)
            return self._covers[size]
        pictures = [self._video(frame.stream).next() for frame in frames]
        return torch.cat(
            [
                composite_ops.cover(_to_float_images([p], self.device), height, width)
                for p in pictures
            ]
        )

    def _video(self, stream: str) -> VideoLoop:
        if stream not in self._videos:
            self._videos[stream] = VideoLoop(self._video_path)
        return self._videos[stream]

    def end_stream(self, stream: str) -> None:
        """The next frame of ``stream`` (if it comes again) starts the video over."""
        video = self._videos.pop(stream, None)
        if video is not None:
            video.close()

    def close(self) -> None:
        for stream in list(self._videos):
            self.end_stream(stream)


class Composite(Stage):
    """Composite each frame from its picture and saliency map; sets ``frame.output``."""

    name: ClassVar[str] = "composite"
    help: ClassVar[str] = (
        "show the saliency: mask, alpha matte, background blur or replacement, highlight, grid"
    )
    Options: ClassVar[type] = CompositeOptions
    needs_torch: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("image", "saliency")
    provides: ClassVar[tuple[str, ...]] = ("output",)

    options: CompositeOptions

    def __init__(self, options: CompositeOptions, context: Context) -> None:
        super().__init__(options, context)
        self.device = torch.device(context.device)
        self._tint = None if options.tint is None else parse_colour(options.tint)
        self._outline_colour = parse_colour(options.outline_colour)
        self._background: Background | None = None

    def open(self) -> None:
        if self.options.replaces:
            self._background = Background(self.options.background, self.device)

    def start_stream(self, info: StreamInfo) -> None:
        if self._background is not None:
            self._background.end_stream(info.id)

    def end_stream(self, stream: str) -> list[Frame]:
        if self._background is not None:
            self._background.end_stream(stream)
        return []

    def close(self) -> None:
        if self._background is not None:
            self._background.close()
            self._background = None

    def process(self, frames: list[Frame]) -> list[Frame]:
        groups: dict[tuple[int, int], list[Frame]] = {}
        for frame in frames:
            if frame.saliency is None:
                raise InputError(
                    "composite needs a saliency stage before it "
                    f"(frame {frame.index} of stream {frame.stream} has no saliency map)"
                )
            groups.setdefault(tuple(frame.image.shape[:2]), []).append(frame)
        for group in groups.values():
            outputs = _to_uint8(self.composite_batch(group))
            for frame, output in zip(group, outputs, strict=True):
                frame.output = output
        return frames

    def composite_batch(self, frames: list[Frame]) -> Tensor:
        """The composites of equally sized frames, Bx3xHxW (Bx4xHxW for alpha) in [0, 1]."""
        image = _to_float_images([frame.image for frame in frames], self.device)
        height, width = image.shape[-2:]
        saliency = self._saliency(frames, height, width)
        mask = composite_ops.soft_mask(saliency, self.options.threshold, self.options.feather)
        mode = self.options.mode
        if mode == "mask":
            return composite_ops.grey(mask)
        if mode == "alpha":
            return composite_ops.alpha(image, mask)
        if mode != "grid":
            return self._composite(mode, frames, image, mask)
        panels = [
            image,
            self._flow_images(frames, height, width),
            composite_ops.grey(saliency),
            self._composite(self.options.grid_composite, frames, image, mask),
        ]
        labels = ["picture", "flow", "saliency", self.options.grid_composite]
        return composite_ops.grid(panels, labels, self.options.grid_columns)

    def _composite(self, mode: str, frames: list[Frame], image: Tensor, mask: Tensor) -> Tensor:
        options = self.options
        if mode == "blur":
            return composite_ops.blur_background(image, mask, options.strength)
        if mode == "replace":
            background = self._background.for_frames(frames, *image.shape[-2:])
            return composite_ops.replace_background(image, mask, background)
        return composite_ops.highlight(
            image,
            mask,
            style=options.style,
            dim=options.dim,
            tint=self._tint,
            outline_width=options.outline,
            outline_colour=self._outline_colour,
        )

    def _saliency(self, frames: list[Frame], height: int, width: int) -> Tensor:
        """The frames' maps as Bx1xHxW float, resized to the pictures if they differ."""
        maps = [torch.as_tensor(frame.saliency).to(self.device, torch.float32) for frame in frames]
        resized = [
            m if m.shape == (height, width) else _resize(m[None, None], height, width)[0, 0]
            for m in maps
        ]
        return torch.stack(resized)[:, None]

    def _flow_images(self, frames: list[Frame], height: int, width: int) -> Tensor:
        """The frames' flow images as Bx3xHxW; white (zero motion) where there is none yet."""
        white = torch.ones(3, height, width, device=self.device)
        panels = []
        for frame in frames:
            if frame.flow_image is None:
                panels.append(white)
                continue
            flow_image = _to_float_images([frame.flow_image], self.device)
            if flow_image.shape[-2:] != (height, width):
                flow_image = _resize(flow_image, height, width)
            panels.append(flow_image[0])
        return torch.stack(panels)


def _resize(images: Tensor, height: int, width: int) -> Tensor:
    return TF.resize(images, [height, width], antialias=False)
