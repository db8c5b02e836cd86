"""The preview sink: refused with one clear line without a display; with one (a real X
server, e.g. under Xvfb), a window per stream showing the scaled pictures, and closing it
stops the run as Ctrl-C does."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_decode import decode

from ianet_stream.config import PipelineSpec, StageSpec
from ianet_stream.runner import run_pipeline
from ianet_stream.stage import Context
from ianet_stream_plugins.decode import Decode, DecodeOptions
from ianet_stream_plugins.preview import NO_DISPLAY, Preview, PreviewOptions, preview_image

TESTSRC = "lavfi:testsrc2=size=160x120:rate=25:duration=0.4"
needs_display = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="no X display (run under xvfb-run to test the window)"
)


def pipeline(uri: str, preview: type[Preview] = Preview, **options) -> PipelineSpec:
    """``decode uri -> preview`` (the class given, not looked up in the registry)."""
    return PipelineSpec(
        (
            StageSpec(0, "decode", Decode, DecodeOptions(uri=uri)),
            StageSpec(1, "preview", preview, PreviewOptions(**options)),
        )
    )


def test_without_a_display_the_run_fails_with_one_clear_line(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    summary = run_pipeline(pipeline(TESTSRC), quiet=True, signals=())
    assert summary.status == "failed"
    assert summary.error == f"preview (stage 2) on {TESTSRC}: {NO_DISPLAY}"
    assert summary.frames == 0  # refused at open, before any frame was shown


def test_impossible_options_are_refused() -> None:
    for options in ({"scale": 0}, {"scale": -1}, {"fps_limit": 0}):
        with pytest.raises(ValueError):
            PreviewOptions(**options)


def test_shown_pictures_are_scaled_and_keep_alpha() -> None:
    picture = np.zeros((120, 160, 3), np.uint8)
    picture[:, 80:] = 200
    image = preview_image(picture, 0.5)
    assert image.size == (80, 60) and image.mode == "RGB"
    assert np.asarray(image)[30, 20].tolist() == [0, 0, 0]
    assert np.asarray(image)[30, 60].tolist() == [200, 200, 200]
    assert preview_image(np.zeros((9, 7, 4), np.uint8), 1.0).mode == "RGBA"


@needs_display
def test_a_window_per_stream_shows_the_scaled_pictures() -> None:
    messages = decode(TESTSRC)
    preview = Preview(PreviewOptions(title="look", scale=0.5, fps_limit=1), Context())
    preview.open()
    try:
        preview.start_stream(messages[0].info)
        window = None
        for frame in messages[1:-1]:
            assert preview.process([frame]) == [frame]
            window = window or preview._windows[frame.stream]
            if frame.index == 0:
                first_shown = window.shown
        assert window.toplevel.title() == "look - lavfi"
        assert (window.photo.width(), window.photo.height()) == (80, 60)
        shown = window.photo._PhotoImage__photo  # the Tk photo the window's label shows
        expected = np.asarray(preview_image(messages[1].image, 0.5))
        for x, y in ((10, 10), (40, 30), (70, 50)):
            assert shown.get(x, y) == tuple(expected[y, x])
        assert window.shown == first_shown  # fps_limit=1: the next 9 frames came too soon
        preview.end_stream(messages[-1].stream)
        assert preview._windows == {}
    finally:
        preview.close()


class _ClosedAfterFiveFrames(Preview):
    """A preview whose user closes the window (as the window manager does) at frame 5."""

    def process(self, frames):
        frames = super().process(frames)
        for frame in frames:
            if frame.index >= 5 and not self._closed:
                toplevel = self._windows[frame.stream].toplevel
                toplevel.tk.call(toplevel.protocol("WM_DELETE_WINDOW"))
        return frames


@needs_display
def test_closing_the_window_stops_the_run_like_ctrl_c() -> None:
    endless = "lavfi:testsrc2=size=160x120:rate=25:duration=60"
    summary = run_pipeline(pipeline(endless, _ClosedAfterFiveFrames), quiet=True)
    assert summary.status == "interrupted", summary.error
    assert 5 < summary.frames < 1500
