"""The encode sink: files that decode to the frames written, timestamps, audio, alpha,
stdout, folders, and no partial file after a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_decode import VFR_TIMES_MS, decode, feed, write_clip

from ianet.atomic import temporary_name
from ianet_stream.errors import ConfigError
from ianet_stream.frame import Frame
from ianet_stream.stage import Context
from ianet_stream_plugins.encode import Encode, EncodeOptions


def encode(messages: list, path: str, context: Context | None = None, **options) -> None:
    """Write ``messages`` with an encoder to ``path``."""
    feed(Encode(EncodeOptions(path=path, **options), context or Context()), messages)


def video_frames(path: Path, decoder: str | None = None) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if decoder is None:
            return list(container.decode(stream))
        codec = av.CodecContext.create(decoder, "r")
        return [frame for packet in container.demux(stream) for frame in codec.decode(packet)]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        return sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))


def with_alpha(messages: list, alpha: int) -> list:
    for message in messages:
        if isinstance(message, Frame):
            plane = np.full(message.image.shape[:2], alpha, np.uint8)
            message.output = np.dstack([message.image, plane])
    return messages


@pytest.fixture(scope="module")
def clip_messages(tmp_path_factory: pytest.TempPathFactory) -> list:
    """A decoded 161x97 clip with variable frame rate and audio."""
    path = tmp_path_factory.mktemp("encode") / "clip.mkv"
    write_clip(path)
    return decode(str(path))


def test_mp4_keeps_frames_timestamps_and_audio(clip_messages, tmp_path: Path) -> None:
    messages = clip_messages
    out = tmp_path / "out.mp4"
    encode(messages, str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    frames = video_frames(out)
    # 161x97 is padded by a pixel to the even size 4:2:0 needs
    assert [(f.width, f.height) for f in frames] == [(162, 98)] * len(VFR_TIMES_MS)
    assert [f.time for f in frames] == pytest.approx([t / 1000 for t in VFR_TIMES_MS])
    for frame, message in zip(frames, messages[1:-1], strict=True):
        picture = frame.to_ndarray(format="rgb24")[:97, :161].astype(int)
        assert np.abs(picture - message.image).mean() < 3
    assert audio_seconds(out) == pytest.approx(0.44, abs=0.07)


def test_start_shifts_video_and_audio_to_zero(tmp_path: Path) -> None:
    source = tmp_path / "long.mkv"
    write_clip(source, size=(64, 48), times_ms=tuple(range(0, 2000, 40)))
    out = tmp_path / "cut.mkv"
    encode(decode(str(source), start=1.0, max_frames=10), str(out))
    frames = video_frames(out)
    assert [f.time for f in frames] == pytest.approx([i * 0.04 for i in range(10)])
    assert audio_seconds(out) == pytest.approx(0.4, abs=0.07)


def test_webm_reencodes_audio_it_cannot_copy(clip_messages, tmp_path: Path) -> None:
    messages = clip_messages
    out = tmp_path / "out.webm"
    encode(messages, str(out))
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
        assert container.streams.audio[0].codec_context.name == "opus"
    assert len(video_frames(out)) == len(VFR_TIMES_MS)


@pytest.mark.parametrize(
    ("name", "decoder", "pix_fmt"),
    [("alpha.mov", None, "yuva444p12le"), ("alpha.webm", "libvpx-vp9", "yuva420p")],
)
def test_alpha_outputs_keep_alpha(tmp_path, name, decoder, pix_fmt) -> None:
    out = tmp_path / name
    encode(with_alpha(decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.2"), 100), str(out))
    frames = video_frames(out, decoder)  # FFmpeg's own VP9 decoder drops the alpha plane
    assert len(frames) == 5 and frames[0].format.name == pix_fmt
    alpha = frames[-1].to_ndarray(format="rgba")[..., 3]
    assert abs(float(alpha.mean()) - 100) < 3


def test_alpha_into_mp4_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    messages = with_alpha(decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.2"), 255)
    context = Context()
    with pytest.raises(ConfigError, match=r"\.mov.*\.webm"):
        try:
            encode(messages, str(tmp_path / "alpha.mp4"), context)
        finally:
            context.failed = True
    assert list(tmp_path.iterdir()) == []


def test_failed_run_removes_the_partial_file(tmp_path: Path) -> None:
    messages = decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.4")
    context = Context()
    sink = Encode(EncodeOptions(path=str(tmp_path / "out.mp4"), preset="ultrafast"), context)
    sink.start_stream(messages[0].info)
    sink.process(messages[1:5])
    (partial,) = tmp_path.iterdir()  # being written under a temporary name
    assert partial.name.startswith(".out.mp4.part-") and partial.suffix == ".mp4"
    context.failed = True
    sink.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="probes processes with signal 0")
def test_leftovers_of_a_killed_writer_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    final = tmp_path / "out.mp4"
    ours = temporary_name(final)  # this (live) process's name
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    killed = ours.with_name(ours.name.replace(f"-{os.getpid()}@", f"-{exited.pid}@"))
    elsewhere = ours.with_name(ours.name.replace("@", "9@other-host."))
    for leftover in (ours, killed, elsewhere):
        leftover.write_bytes(b"partial")
    encode(decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.2"), str(final))
    assert sorted(tmp_path.iterdir()) == sorted([ours, elsewhere, final])
    assert len(video_frames(final)) == 5


def test_stream_without_end_is_not_kept(tmp_path: Path) -> None:
    messages = decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.4")
    encode(messages[:-1], str(tmp_path / "out.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_folder_gets_one_file_per_stream(tmp_path: Path) -> None:
    lavfi = decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.2")
    synthetic = decode("synthetic:size=64x48,frames=3")
    encode(lavfi + synthetic, f"{tmp_path / 'videos'}/")
    outputs = sorted((tmp_path / "videos").iterdir())
    assert [p.name for p in outputs] == ["lavfi.mp4", "synthetic.mp4"]
    assert [len(video_frames(p)) for p in outputs] == [5, 3]
    with pytest.raises(ConfigError, match="folder"):
        encode(lavfi + synthetic, str(tmp_path / "one.mp4"))


def test_clip_output_names_the_clip_file() -> None:
    assert Encode.clip_output(EncodeOptions(path="out"), "out", "a") == ("out/a.mp4",) * 2
    webm = EncodeOptions(path="out/", format="webm")
    assert Encode.clip_output(webm, "out", "a") == ("out/a.webm",) * 2


def test_tensor_pictures_are_downloaded(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    messages = decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.2")
    for message in messages[1:-1]:
        message.output = torch.from_numpy(message.image.copy())
    out = tmp_path / "tensor.mkv"
    encode(messages, str(out))
    assert len(video_frames(out)) == 5


def test_crf_sets_the_quality(tmp_path: Path) -> None:
    messages = decode("lavfi:testsrc2=size=128x96:rate=25:duration=0.4")
    sizes = []
    for crf in (10, 40):
        out = tmp_path / f"crf{crf}.mp4"
        encode(messages, str(out), crf=crf, preset="ultrafast")
        sizes.append(out.stat().st_size)
    assert sizes[0] > 2 * sizes[1]


def test_stdout_writes_a_playable_stream(tmp_path: Path) -> None:
    script = (
        "from ianet_stream.frame import StreamStart, StreamEnd\n"
        "from ianet_stream.stage import Context\n"
        "from ianet_stream_plugins.decode import Decode, DecodeOptions\n"
        "from ianet_stream_plugins.encode import Encode, EncodeOptions\n"
        "source = Decode(DecodeOptions(uri='lavfi:testsrc2=size=64x48:rate=25:duration=0.4'),"
        " Context())\n"
        "sink = Encode(EncodeOptions(path='-'), Context())\n"
        "def emit(m):\n"
        "    if isinstance(m, StreamStart): sink.start_stream(m.info)\n"
        "    elif isinstance(m, StreamEnd): sink.end_stream(m.stream)\n"
        "    else: sink.process([m])\n"
        "source.open(); source.run(emit); source.close(); sink.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True, cwd=tmp_path
    )
    assert result.stderr == b""
    out = tmp_path / "piped.mkv"
    out.write_bytes(result.stdout)
    with av.open(str(out)) as container:
        assert container.format.name.startswith("matroska")
    frames = video_frames(out)
    assert len(frames) == 10 and frames[-1].time == pytest.approx(0.36)
    assert list(tmp_path.iterdir()) == [out]


def test_impossible_options_are_refused() -> None:
    for options in (
        {"path": "out.avi"},
        {"path": "out.mp4", "codec": "nope"},
        {"path": "out.mp4", "bitrate": "fast"},
        {"path": "out.mp4", "pix_fmt": "yuv999"},
        {"path": "out.mp4", "crf": -1},
    ):
        with pytest.raises(ValueError):
            EncodeOptions(**options)
    assert EncodeOptions(path="-").container == "mkv"


def test_frames_without_timestamps_use_the_rate(tmp_path: Path) -> None:
    messages = decode("lavfi:testsrc2=size=64x48:rate=25:duration=0.2")
    for message in messages[1:-1]:
        message.pts = None
    out = tmp_path / "untimed.mkv"
    encode(messages, str(out))
    assert [f.time for f in video_frames(out)] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])
    assert messages[0].info.time_base == Fraction(1, 25)
