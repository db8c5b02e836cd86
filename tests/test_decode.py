"""The decode source: every input kind, its options and its errors, on clips made here."""

from __future__ import annotations

import logging
import os
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import av.codec.hwaccel
import numpy as np
import pytest

from ianet.errors import InputError
from ianet_stream.frame import Frame, StreamEnd, StreamStart
from ianet_stream.stage import Context, Stage
from ianet_stream_plugins.decode import Decode, DecodeOptions

VFR_TIMES_MS = (0, 40, 80, 200, 240, 400)


def write_clip(
    path: Path,
    size: tuple[int, int] = (161, 97),
    times_ms: tuple[int, ...] = VFR_TIMES_MS,
    audio: bool = True,
) -> list[np.ndarray]:
    """A clip of solid grey frames at ``times_ms`` (libx264 4:4:4, so odd sizes work), with
    a 440 Hz tone as long as the video when ``audio``; returns the pictures."""
    width, height = size
    pictures = [
        np.full((height, width, 3), (20 + 30 * i) % 256, np.uint8) for i in range(len(times_ms))
    ]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv444p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        tone = container.add_stream("aac", rate=16000, layout="mono") if audio else None
        for picture, time in zip(pictures, times_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = time, Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if tone is not None:
            seconds = (times_ms[-1] + 40) / 1000
            samples = np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)
            sound = av.AudioFrame.from_ndarray(
                (0.3 * samples).astype(np.float32)[None], format="flt", layout="mono"
            )
            sound.sample_rate, sound.pts = 16000, 0
            container.mux(tone.encode(sound))
            container.mux(tone.encode(None))
    return pictures


def decode(uri: str, **options) -> list:
    """Every message the source emits for ``uri``."""
    source = Decode(DecodeOptions(uri=uri, **options), Context())
    messages: list = []
    source.open()
    try:
        source.run(messages.append)
    finally:
        source.close()
    return messages


def feed(sink: Stage, messages: list) -> None:
    """Drive a sink as the runner does (frames one by one), then close it."""
    sink.open()
    try:
        for message in messages:
            if isinstance(message, StreamStart):
                sink.start_stream(message.info)
            elif isinstance(message, StreamEnd):
                assert sink.end_stream(message.stream) == []
            else:
                assert sink.process([message]) == [message]  # sinks pass frames through
    finally:
        sink.close()


def frames_of(messages: list) -> list[Frame]:
    assert isinstance(messages[0], StreamStart) and isinstance(messages[-1], StreamEnd)
    frames = messages[1:-1]
    assert all(isinstance(frame, Frame) for frame in frames)
    assert [frame.index for frame in frames] == list(range(len(frames)))
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("decode") / "odd clip.mkv"
    return path, write_clip(path)


def test_file_keeps_size_timestamps_and_pictures(clip) -> None:
    path, pictures = clip
    messages = decode(str(path))
    info = messages[0].info
    assert (info.name, info.uri, info.width, info.height) == ("odd clip", str(path), 161, 97)
    assert info.time_base == Fraction(1, 1000) and info.audio == str(path)
    frames = frames_of(messages)
    assert [frame.pts for frame in frames] == list(VFR_TIMES_MS)
    assert all(frame.stream == info.id and frame.time_base == info.time_base for frame in frames)
    for frame, picture in zip(frames, pictures, strict=True):
        assert frame.image.shape == (97, 161, 3) and frame.image.dtype == np.uint8
        assert np.abs(frame.image.astype(int) - picture).max() <= 3
    assert messages[-1].stream == info.id


def pipe_into_stdin(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``sys.stdin`` a real pipe that a thread fills with ``data``, then closes."""
    read_end, write_end = os.pipe()

    def fill() -> None:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)

    threading.Thread(target=fill, daemon=True).start()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end, "r"))


def test_stdin_is_probed(clip, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = clip
    pipe_into_stdin(path.read_bytes(), monkeypatch)
    messages = decode("-")
    assert messages[0].info.name == "stdin" and messages[0].info.audio is None
    assert [frame.pts for frame in frames_of(messages)] == list(VFR_TIMES_MS)


def test_lavfi_source() -> None:
    messages = decode("lavfi:testsrc2=size=64x48:rate=10:duration=0.5")
    info = messages[0].info
    assert (info.name, info.width, info.height, info.rate) == ("lavfi", 64, 48, 10)
    frames = frames_of(messages)
    assert len(frames) == 5 and frames[0].image.shape == (48, 64, 3)
    assert [frame.time for frame in frames] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("query", ["seed=3,size=64x48,frames=4", "?seed=3&size=64x48&frames=4"])
def test_synthetic_frames_carry_masks(query: str) -> None:
    from ianet.data.synthetic import SyntheticVideo

    messages = decode(f"synthetic:{query}")
    info = messages[0].info
    assert (info.name, info.width, info.height, info.rate) == ("synthetic", 64, 48, 25)
    frames = frames_of(messages)
    expected = list(SyntheticVideo(3, size=(64, 48), frames=4))
    assert len(frames) == 4
    for frame, sample in zip(frames, expected, strict=True):
        assert np.array_equal(frame.image, sample.image)
        assert np.array_equal(frame.mask, sample.mask) and frame.mask.shape == (48, 64)
    assert [frame.time for frame in frames] == pytest.approx([0, 0.04, 0.08, 0.12])


def test_synthetic_uri_errors_name_the_key() -> None:
    with pytest.raises(InputError, match="colour"):
        decode("synthetic:colour=red")
    with pytest.raises(InputError, match="size"):
        decode("synthetic:size=8x8")


def test_max_frames_and_start(tmp_path: Path) -> None:
    path = tmp_path / "steady.mp4"
    write_clip(path, size=(64, 48), times_ms=tuple(range(0, 2000, 40)), audio=False)
    assert len(frames_of(decode(str(path), max_frames=7))) == 7
    frames = frames_of(decode(str(path), start=1.0, max_frames=3))
    assert [frame.time for frame in frames] == pytest.approx([1.0, 1.04, 1.08])


def test_fps_resamples_to_a_constant_rate(clip) -> None:
    path, _ = clip
    messages = decode(str(path), fps=25)
    assert messages[0].info.rate == 25 and messages[0].info.time_base == Fraction(1, 25)
    frames = frames_of(messages)
    # 0 to 400 ms at 25/s: the gaps after 80 and 240 ms are filled by repeats
    assert [frame.pts for frame in frames] == list(range(11))
    means = [round(float(frame.image.mean())) for frame in frames]
    assert means[2:5] == [means[2]] * 3 and means[6:10] == [means[6]] * 4


@pytest.mark.parametrize(("size", "expected"), [(48, (80, 48)), ("40x30", (40, 30))])
def test_size_scales_at_decode(clip, size, expected) -> None:
    path, _ = clip
    messages = decode(str(path), size=size)
    assert (messages[0].info.width, messages[0].info.height) == expected
    assert frames_of(messages)[0].image.shape == (expected[1], expected[0], 3)


def test_hwaccel_falls_back_to_software(clip) -> None:
    path, _ = clip
    assert len(frames_of(decode(str(path), hwaccel="cuda"))) == len(VFR_TIMES_MS)


def _has_cuda_decoding() -> bool:
    try:
        av.codec.hwaccel.HWAccel("cuda").create(av.Codec("h264", "r"))
    except (av.error.FFmpegError, NotImplementedError):
        return False
    return True


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda_decoding(), reason="no CUDA device for FFmpeg")
def test_hwaccel_cuda_decodes_on_the_device(tmp_path: Path, caplog) -> None:
    path = tmp_path / "h264.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height = 128, 96
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((96, 128, 3), 20 * index, np.uint8))
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with caplog.at_level(logging.WARNING):
        on_device = frames_of(decode(str(path), hwaccel="cuda"))
    assert not caplog.records
    in_software = frames_of(decode(str(path)))
    assert len(on_device) == len(in_software) == 10
    for device, software in zip(on_device, in_software, strict=True):
        assert np.abs(device.image.astype(int) - software.image).max() <= 4


def test_impossible_options_are_refused() -> None:
    for options in ({"fps": 0}, {"max_frames": 0}, {"start": -1}, {"size": "big"}):
        with pytest.raises(ValueError):
            DecodeOptions(uri="clip.mp4", **options)
    with pytest.raises(ValueError, match="hwaccel"):
        DecodeOptions(uri="clip.mp4", hwaccel="gpu")


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    audio_only = tmp_path / "tone.mka"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), "flt", "mono")
        sound.sample_rate = 16000
        container.mux(stream.encode(sound))
        container.mux(stream.encode(None))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.touch()
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "is a folder",
        audio_only: "no video stream",
        garbage: "not a video",
        empty: "empty file",
    }
    for path, problem in cases.items():
        with pytest.raises(InputError, match=problem) as error:
            decode(str(path))
        assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
    with pytest.raises(InputError, match="lavfi:nosuchsource"):
        decode("lavfi:nosuchsource")


def test_truncated_file_decodes_what_it_can_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = tmp_path / "whole.mkv"
    noise = np.random.default_rng(1)
    with av.open(str(whole), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height = 96, 64
        for index in range(50):
            frame = av.VideoFrame.from_ndarray(noise.integers(0, 256, (64, 96, 3), np.uint8))
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        frames = frames_of(decode(str(cut)))
    assert 10 < len(frames) < 50
    assert any("cut.mkv: truncated" in record.getMessage() for record in caplog.records)


def test_stop_ends_an_endless_source_with_its_stream_end() -> None:
    source = Decode(DecodeOptions(uri="lavfi:testsrc2=size=32x32:rate=25"), Context())
    messages: list = []

    def emit(message) -> None:
        messages.append(message)
        if len(messages) == 4:
            threading.Thread(target=source.stop).start()

    source.open()
    worker = threading.Thread(target=source.run, args=(emit,))
    worker.start()
    worker.join(timeout=10)
    source.close()
    assert not worker.is_alive()
    assert isinstance(messages[-1], StreamEnd) and len(messages) < 20
