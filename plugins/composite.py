"""The ``composite`` stage: turns each frame's saliency map into the picture the user sees.

Modes: ``mask`` (the map in grey), ``alpha`` (RGBA with the map as alpha), ``blur``
(background blurred), ``replace`` (background replaced by a colour, a picture or a looped
video), ``highlight`` (background dimmed or greyed, the object tinted or outlined) and
``grid`` (picture | flow | saliency | a composite, labelled). The work runs on the
pipeline's device, one call per batch of equally sized frames.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import torch
from PIL import Image, ImageColor
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ianet.transforms import resize_uint8
from ianet_stream.errors import InputError
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context, Stage
from ianet_stream.video import read_pictures
from ianet_stream_plugins import composite_ops
from ianet_stream_plugins.composite_ops import Colour

_TINT_WEIGHT = 0.35  # how much of the tint colour goes into the object
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


def _picture(picture: Any, device: torch.device) -> Tensor:
    """An HxWx3 uint8 picture (numpy or a tensor) as a tensor on ``device`` (no copy when
    it is there already)."""
    return torch.as_tensor(picture).to(device, non_blocking=True)


def _planar(picture: Tensor) -> Tensor:
    """HxWx3 uint8 -> 1x3xHxW float in [0, 1]."""
    return picture.permute(2, 0, 1)[None].float().div_(255)


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
    """The replacement background: a colour, a picture, or a video looped per stream; each
    as an HxWx3 uint8 picture of the frame's size (the picture scaled to cover it)."""

    def __init__(self, spec: str, device: torch.device) -> None:
        self.device = device
        self._colour: Colour | None = None
        self._picture: Tensor | None = None
        self._covers: dict[tuple[int, int], Tensor] = {}
        self._video_path: Path | None = None
        self._videos: dict[str, VideoLoop] = {}
        if _is_colour(spec):
            self._colour = parse_colour(spec)
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
        self._picture = _picture(pixels, device)

    def _check_video(self) -> None:
        probe = VideoLoop(self._video_path)
        try:
            probe.next()
        finally:
            probe.close()

    def for_frame(self, frame: Frame, height: int, width: int) -> Tensor:
        """The background behind ``frame``: HxWx3 uint8."""
        size = (height, width)
        if self._colour is not None:
            if size not in self._covers:
                self._covers[size] = composite_ops.solid(self._colour, *size, self.device)
            return self._covers[size]
        if self._picture is not None:
            if size not in self._covers:
                self._covers[size] = composite_ops.cover(self._picture, height, width)
            return self._covers[size]
        picture = _picture(self._video(frame.stream).next(), self.device)
        return composite_ops.cover(picture, height, width)

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
        self._blank: Tensor | None = None  # the flow panel before there is a flow

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
        for frame in frames:
            if frame.saliency is None:
                raise InputError(
                    "composite needs a saliency stage before it "
                    f"(frame {frame.index} of stream {frame.stream} has no saliency map)"
                )
            frame.output = self.composite(frame)
        return frames

    def composite(self, frame: Frame) -> Tensor:
        """One frame's picture (HxWx3 uint8; HxWx4 for alpha) from its full-resolution
        picture and its (smaller) saliency map; only uint8 work at full resolution."""
        image = _picture(frame.image, self.device)
        height, width = image.shape[:2]
        saliency = torch.as_tensor(frame.saliency).to(self.device, torch.float32)
        saliency = saliency.reshape(1, 1, *saliency.shape[-2:])
        scale = saliency.shape[-2] / height  # the map's pixels per picture pixel
        options = self.options
        mask = composite_ops.soft_mask(saliency, options.threshold, options.feather * scale)
        alpha = composite_ops.upsample_mask(mask, (height, width))
        if options.mode == "mask":
            return composite_ops.grey_picture(alpha)
        if options.mode == "alpha":
            return torch.cat([image, alpha[..., None]], dim=-1)
        if options.mode != "grid":
            return self._composite(options.mode, frame, image, mask, alpha)
        panels = [
            image,
            self._flow_panel(frame, height, width),
            composite_ops.grey_picture(composite_ops.upsample_mask(saliency, (height, width))),
            self._composite(options.grid_composite, frame, image, mask, alpha),
        ]
        labels = ["picture", "flow", "saliency", options.grid_composite]
        return composite_ops.grid(panels, labels, options.grid_columns)

    def _composite(
        self, mode: str, frame: Frame, image: Tensor, mask: Tensor, alpha: Tensor
    ) -> Tensor:
        """Blur, replace or highlight: ``mask`` at the map's size, ``alpha`` at the
        picture's (uint8)."""
        height, width = image.shape[:2]
        if mode == "blur":
            return self._blur(image, mask, alpha)
        if mode == "replace":
            background = self._background.for_frame(frame, height, width)
            return composite_ops.blend(image, background, alpha)
        return self._highlight(image, mask, alpha)

    def _blur(self, image: Tensor, mask: Tensor, alpha: Tensor) -> Tensor:
        """The object sharp over its background blurred with sigma ``strength``: the
        picture is reduced once by the blur's factor (in uint8), its background blurred
        there from the background's own pixels, brought back up and blended."""
        height, width = image.shape[:2]
        strength = self.options.strength
        factor = composite_ops.reduction(strength)
        size = (math.ceil(height / factor), math.ceil(width / factor))
        small = _planar(resize_uint8(image, size))
        small_mask = TF.resize(mask, list(size), antialias=True)
        blurred = composite_ops.background_blur(small, small_mask, strength / factor)
        background = resize_uint8(composite_ops.to_uint8(blurred)[0], (height, width))
        return composite_ops.blend(image, background, alpha)

    def _highlight(self, image: Tensor, mask: Tensor, alpha: Tensor) -> Tensor:
        """The background dimmed (scaled by ``dim``) or grey, the object tinted, an outline
        drawn at the map's resolution (at least one of its pixels wide)."""
        options = self.options
        height, width = image.shape[:2]
        ring = None
        if options.outline > 0:
            scale = mask.shape[-2] / height
            band = composite_ops.outline(mask, max(1, round(options.outline * scale)))
            ring = composite_ops.upsample_mask(band, (height, width))
        return composite_ops.highlight(
            image,
            alpha,
            ring,
            dim=options.dim if options.style == "dim" else None,
            tint=self._tint,
            tint_weight=_TINT_WEIGHT,
            outline_colour=self._outline_colour,
        )

    def _white(self, height: int, width: int) -> Tensor:
        """A white picture of the frame's size, kept for the next frames of that size."""
        if self._blank is None or tuple(self._blank.shape[:2]) != (height, width):
            self._blank = composite_ops.solid((1.0, 1.0, 1.0), height, width, self.device)
        return self._blank

    def _flow_panel(self, frame: Frame, height: int, width: int) -> Tensor:
        """The frame's flow image at the picture's size; white (no motion) before there is
        one."""
        if frame.flow_image is None:
            return self._white(height, width)
        flow_image = _picture(frame.flow_image, self.device)
        return resize_uint8(flow_image, (height, width))
