"""The preview sink: shows each stream's pictures in a window as they pass (Tk, through
Python's own tkinter and Pillow's ImageTk; nothing else to install).

It shows ``frame.output`` when a stage set it and ``frame.image`` otherwise, one window per
stream, and passes the frames on, so other sinks can follow (``preview`` then ``encode``
watches what is recorded). Without a display it refuses to start with one line that says
what to use instead. Closing a window closes them all and stops the run as Ctrl-C does (the
input stops, the frames in flight are finished, the outputs kept).

All the Tk calls happen in the stage's own thread: ``open``, ``process`` (which also
handles the window's events) and ``close`` are called there.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image

from ianet_stream.errors import ConfigError
from ianet_stream.frame import Frame, StreamInfo, to_numpy
from ianet_stream.stage import Context, Stage

NO_DISPLAY = "preview: no display (DISPLAY/WAYLAND_DISPLAY unset); use encode or masks instead"


@dataclass
class PreviewOptions:
    """Options of the preview sink."""

    title: str = field(
        default="ianet-stream",
        metadata={"help": "window title; the stream's name follows it"},
    )
    scale: float = field(
        default=1.0, metadata={"help": "size of the shown picture relative to the frame's"}
    )
    fps_limit: float | None = field(
        default=None,
        metadata={
            "help": "show at most this many frames per second (the others are skipped, never "
            "waited for); none: as they come (the newest of each batch)"
        },
    )

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 8:
            raise ValueError(f"scale: expected a number in (0, 8], got {self.scale}")
        if self.fps_limit is not None and self.fps_limit <= 0:
            raise ValueError(f"fps_limit: expected a number > 0, got {self.fps_limit}")


def shown_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The window's picture size for a ``width`` x ``height`` frame (at least 1x1)."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def preview_image(picture: Any, scale: float) -> Image.Image:
    """A frame's HxWx3 (RGB) or HxWx4 (RGBA) uint8 picture, numpy or tensor, as the image
    the window shows, scaled."""
    array = np.ascontiguousarray(to_numpy(picture))
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise ConfigError(
            f"preview: expected HxWx3 or HxWx4 uint8 pictures, got {array.dtype} "
            f"{'x'.join(map(str, array.shape))}"
        )
    image = Image.fromarray(array, "RGBA" if array.shape[2] == 4 else "RGB")
    size = shown_size(image.width, image.height, scale)
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR)


class _Window:
    """One stream's window: a label showing a photo image, replaced when the size changes."""

    def __init__(self, root: Any, title: str, on_close: Any) -> None:
        import tkinter

        self.toplevel = tkinter.Toplevel(root)
        self.toplevel.title(title)
        self.toplevel.protocol("WM_DELETE_WINDOW", on_close)
        self.label = tkinter.Label(self.toplevel, borderwidth=0)
        self.label.pack()
        self.photo: Any = None
        self.shown = float("-inf")  # when the last picture was shown (monotonic seconds)

    def show(self, image: Image.Image) -> None:
        from PIL import ImageTk

        if self.photo is None or (self.photo.width(), self.photo.height()) != image.size:
            self.photo = ImageTk.PhotoImage(image, master=self.toplevel)
            self.label.configure(image=self.photo)
        else:
            self.photo.paste(image)

    def destroy(self) -> None:
        self.toplevel.destroy()


class Preview(Stage):
    """Shows the frames in a window, one per stream; frames pass through."""

    name: ClassVar[str] = "preview"
    help: ClassVar[str] = (
        "show the frames (output, else image) in a window per stream while the run goes on; "
        "needs a display; closing a window stops the run like Ctrl-C"
    )
    kind: ClassVar[Literal["source", "transform", "sink"]] = "sink"
    Options: ClassVar[type] = PreviewOptions
    requires: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, options: PreviewOptions, context: Context) -> None:
        super().__init__(options, context)
        self._root: Any = None
        self._names: dict[str, str] = {}
        self._windows: dict[str, _Window] = {}
        self._closed = False

    def open(self) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ConfigError(NO_DISPLAY)
        try:
            import tkinter
        except ImportError:
            raise ConfigError(
                "preview: this Python has no tkinter (e.g. apt install python3-tk); "
                "use encode or masks instead"
            ) from None
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as error:
            raise ConfigError(
                f"preview: cannot open a window ({error}); use encode or masks instead"
            ) from None
        self._root.withdraw()  # only the streams' windows show

    def start_stream(self, info: StreamInfo) -> None:
        self._names[info.id] = info.name

    def process(self, frames: list[Frame]) -> list[Frame]:
        if self._closed:
            return frames
        now = time.monotonic()
        interval = 1 / self.options.fps_limit if self.options.fps_limit else 0.0
        latest = {frame.stream: frame for frame in frames}  # a batch shows its newest frames
        for stream, frame in latest.items():
            window = self._windows.get(stream) or self._open_window(stream)
            if now - window.shown < interval:
                continue
            picture = frame.output if frame.output is not None else frame.image
            window.show(preview_image(picture, self.options.scale))
            window.shown = now
        self._root.update()
        return frames

    def end_stream(self, stream: str) -> list[Frame]:
        self._names.pop(stream, None)
        window = self._windows.pop(stream, None)
        if window is not None and not self._closed:
            window.destroy()
        return []

    def close(self) -> None:
        self._windows.clear()
        if self._root is not None and not self._closed:
            self._root.destroy()
        self._root = None

    def _open_window(self, stream: str) -> _Window:
        title = f"{self.options.title} - {self._names.get(stream, stream)}"
        window = self._windows[stream] = _Window(self._root, title, self._on_close)
        return window

    def _on_close(self) -> None:
        """A window was closed: close them all, and stop the run as Ctrl-C would."""
        self._closed = True
        self._root.destroy()
        if self.context.request_stop is not None:
            self.context.request_stop()
