"""Video through PyAV: the one reader and the one writer of the project.

``VideoReader`` opens an input (a file, a URL, a camera, an FFmpeg graph or a pipe), decodes
its first video stream frame by frame and turns frames into upright uint8 RGB pictures:
rotation metadata (a phone's portrait clip) and non-square pixels are honoured, frames are
scaled to a requested size on the way out of FFmpeg's scaler (the cheapest place), and a
frame larger than ``max_pixels`` is refused before it is converted. Damaged packets are
skipped, a read error ends the frames, and ``problems()`` says what was lost.

``VideoWriter`` encodes RGB or RGBA pictures at their timestamps into a file, a pipe or a
network receiver; mp4 and mov files get their index first (they play while downloading
and pipe), and the audio of a file input is copied beside the video, re-encoded when the
output container cannot hold its codec.

``PipeReader`` reads stdin or a named pipe for FFmpeg so that a stop request ends a read
that waits for data, within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np

from ianet.atomic import atomic_output
from ianet_stream.errors import ConfigError, InputError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 3840 * 2160  # 4K UHD
MIN_SIDE = 8  # smaller frames are refused: no stage can work on them
_TRUNCATION_TOLERANCE = 0.5  # seconds short of the announced duration that count as truncated
_POLL_S = 0.1
# Audio codecs each output muxer takes as they are; others are re-encoded (see ``AudioCopy``).
_AUDIO_COPIED = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le"},
    "webm": {"opus", "vorbis"},
    "mpegts": {"aac", "mp2", "mp3", "ac3", "eac3", "opus"},
    "flv": {"aac", "mp3"},
}
_AUDIO_ENCODER = {"webm": "libopus"}  # what the others re-encode to: aac
_FASTSTART = {"mp4", "mov"}


def describe_error(error: Exception) -> str:
    """A short reason from an FFmpeg error (its message without the file name)."""
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    reason = reason[:1].lower() + reason[1:]
    if isinstance(error, av.error.InvalidDataError):
        return f"not a video FFmpeg can read ({reason})"
    if isinstance(error, av.error.ExitError):  # PyAV's timeout interrupted FFmpeg
        return "timed out"
    return reason


class PipeReader:
    """A file descriptor (stdin, a named pipe) read for FFmpeg, ended by ``stop``.

    ``read`` waits for data in short slices and returns ``b""`` (end of input) once
    ``stop`` is set, so a source blocked on a silent pipe ends within ``0.1`` s of a
    Ctrl-C. It is unbuffered and not seekable: FFmpeg reads the pipe in one pass.
    """

    def __init__(self, descriptor: int, name: str, stop: threading.Event) -> None:
        self.descriptor = descriptor
        self.name = name
        self.stop = stop

    @classmethod
    def open_fifo(cls, path: str, stop: threading.Event) -> PipeReader:
        """Open a named pipe without waiting for a writer (the first ``read`` waits)."""
        return cls(os.open(path, os.O_RDONLY | os.O_NONBLOCK), path, stop)

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else 1 << 16
        while not self.stop.is_set():
            ready, _, _ = select.select([self.descriptor], [], [], _POLL_S)
            if ready:
                try:
                    return os.read(self.descriptor, size)
                except BlockingIOError:
                    continue
        return b""

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self.descriptor > 2:
            with contextlib.suppress(OSError):
                os.close(self.descriptor)


def scaled_size(width: int, height: int, size: tuple[int, int] | int | None) -> tuple[int, int]:
    """The picture size after scaling ``width x height`` to ``size``.

    A single number is the short side; the long side keeps the aspect ratio, and both are
    rounded to even numbers (what 4:2:0 video codecs need). ``(W, H)`` is taken as it is.
    """
    if size is None:
        return width, height
    if isinstance(size, tuple):
        return size
    scale = size / min(width, height)

    def even(value: float) -> int:
        return max(2, 2 * round(value / 2))

    return even(width * scale), even(height * scale)


class VideoReader:
    """The first video stream of an input, frame by frame.

    Args:
        source: what ``av.open`` opens: a path, a URL, a device, a graph, a file object.
        name: how errors name the input (a URL without its secrets).
        format, options, timeout, hwaccel: passed to ``av.open``.
        start: seconds of the input to skip (by seeking where the input can).
        size: scale the upright pictures to this: a short side or ``(W, H)``.
        autorotate: turn frames upright by their rotation metadata (else as stored).
        max_pixels: the largest frame (width x height) accepted.
        is_file: the input is a file (truncation is then reported; audio can be copied).

    Raises ``InputError`` naming the input when it cannot be opened or has no video.
    """

    def __init__(
        self,
        source: Any,
        name: str,
        *,
        format: str | None = None,
        options: dict[str, str] | None = None,
        timeout: float | None = None,
        hwaccel: Any = None,
        start: float = 0.0,
        size: tuple[int, int] | int | None = None,
        autorotate: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        is_file: bool = False,
    ) -> None:
        self.name = name
        self.size = size
        self.autorotate = autorotate
        self.max_pixels = max_pixels
        self.is_file = is_file
        try:
            self.container = av.open(
                source, "r", format=format, options=options or {}, timeout=timeout, hwaccel=hwaccel
            )
        except av.error.FFmpegError as error:
            raise InputError(f"{name}: {describe_error(error)}") from error
        videos = self.container.streams.video
        if not videos:
            kinds = ", ".join(sorted({s.type for s in self.container.streams})) or "none"
            self.container.close()
            raise InputError(f"{name}: no video stream (streams: {kinds})")
        self.stream = videos[0]
        self.stream.thread_type = "AUTO"
        self.check_size(self.stream.codec_context.width, self.stream.codec_context.height)
        stream = self.stream
        # what the frames need from the stream, read now: a reconnecting source closes this
        # container and goes on converting the next connection's frames with this reader
        self._aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        self._duration = self._announced_duration()
        self._origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        self._start = self._origin + start
        self.end = self._origin
        self.damaged = 0
        self.read_error: str | None = None
        self.decoded = 0
        self._peeked: list[av.VideoFrame] = []
        self._frames = self._decode()
        if start > 0 and is_file:
            # where the file cannot seek, the frames before start are decoded and dropped
            with contextlib.suppress(av.error.FFmpegError):
                self.container.seek(int(self._start / stream.time_base), stream=stream)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate(self) -> Fraction | None:
        return self.stream.average_rate or self.stream.guessed_rate

    def check_size(self, width: int, height: int) -> None:
        """Refuse frames too small for any stage or larger than ``max_pixels``."""
        if width < MIN_SIDE or height < MIN_SIDE:
            raise InputError(
                f"{self.name}: frames are {width}x{height}; at least {MIN_SIDE}x{MIN_SIDE} "
                "pixels are needed"
            )
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise InputError(
                f"{self.name}: frames are {width}x{height} ({width * height / 1e6:.1f} MP), "
                f"more than max_pixels ({self.max_pixels / 1e6:.1f} MP); scale them at "
                "decode (size: 1080) or raise max_pixels"
            )

    def _decode(self) -> Iterator[av.VideoFrame]:
        stream = self.stream
        frame_duration = 1 / float(self.rate or 25)
        try:
            for packet in self.container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.damaged += 1
                    continue
                for frame in decoded:
                    if frame.time is not None:
                        if frame.time < self._start - 1e-6:
                            continue
                        self.end = frame.time + frame_duration
                    self.decoded += 1
                    yield frame
        except av.error.FFmpegError as error:
            self.read_error = describe_error(error)

    def first_frame(self) -> av.VideoFrame | None:
        """The first frame (decoded now and kept for ``frames``); None for an empty input."""
        if not self._peeked:
            frame = next(self._frames, None)
            if frame is None:
                return None
            self._peeked.append(frame)
        return self._peeked[0]

    def frames(self) -> Iterator[av.VideoFrame]:
        """The decoded frames from ``start`` on."""
        while self._peeked:
            yield self._peeked.pop(0)
        yield from self._frames

    def rotation(self, frame: av.VideoFrame) -> int:
        """The counter-clockwise quarter turns that make ``frame`` upright (0 to 3)."""
        if not self.autorotate:
            return 0
        return round((frame.rotation or 0) / 90) % 4

    def picture_size(self, frame: av.VideoFrame) -> tuple[int, int]:
        """``(width, height)`` of the pictures ``to_rgb`` makes of ``frame``: upright,
        square pixels, scaled to ``size``."""
        width, height = frame.width, frame.height
        aspect = self._aspect
        if aspect and aspect != 1:  # non-square pixels: the width they are shown at, even
            width = max(2, 2 * round(width * aspect / 2))
        if self.rotation(frame) % 2:
            width, height = height, width
        return scaled_size(width, height, self.size)

    def to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``frame`` as an upright HxWx3 uint8 RGB picture at ``picture_size``."""
        self.check_size(frame.width, frame.height)
        width, height = self.picture_size(frame)
        turns = self.rotation(frame)
        stored = (height, width) if turns % 2 else (width, height)
        picture = frame.to_ndarray(format="rgb24", width=stored[0], height=stored[1])
        return np.ascontiguousarray(np.rot90(picture, turns)) if turns else picture

    def problems(self) -> list[str]:
        """What was lost: a read error, damaged packets, frames ending before the duration."""
        problems = []
        if self.read_error:
            problems.append(f"read error ({self.read_error})")
        if self.damaged:
            problems.append(f"{self.damaged} damaged packet(s) skipped")
        expected, elapsed = self._duration, self.end - self._origin
        if expected is not None and self.is_file and elapsed < expected - _TRUNCATION_TOLERANCE:
            problems.append(f"frames end at {elapsed:.2f} s of {expected:.2f} s")
        return problems

    def _announced_duration(self) -> float | None:
        """Seconds of video the stream (else the container) announces; None if neither."""
        stream, container = self.stream, self.container
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
        return None

    def close(self) -> None:
        self.container.close()


def plays(path: str | os.PathLike[str]) -> bool:
    """Whether a video file opens and decodes at least one frame."""
    try:
        with VideoReader(str(path), str(path), max_pixels=None, is_file=True) as reader:
            return reader.first_frame() is not None
    except InputError:
        return False


def read_pictures(path: str | os.PathLike[str], every: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, HxWx3 uint8 RGB)`` of every ``every``-th frame of a video file, upright."""
    with VideoReader(str(path), str(path), is_file=True, max_pixels=None) as reader:
        for index, frame in enumerate(reader.frames()):
            if index % every == 0:
                yield index, reader.to_rgb(frame)


def audio_encoder(muxer: str, codec: str) -> str | None:
    """The encoder audio of ``codec`` needs to go into ``muxer``; None: copied as it is."""
    copied = _AUDIO_COPIED.get(muxer)
    if copied is None or codec in copied:  # matroska, nut: any codec
        return None
    return _AUDIO_ENCODER.get(muxer, "aac")


class AudioCopy:
    """An input file's first audio stream, muxed beside the video as the video advances.

    Packets are copied when the output container can hold their codec and re-encoded
    otherwise (Opus in WebM, AAC elsewhere); their times are shifted by the video's
    ``origin`` (its first frame's time).
    """

    def __init__(self, input: Any, output: Any) -> None:
        self.input = input
        self.source = input.streams.audio[0]
        self.output = output
        self.encoder = None
        encoder = audio_encoder(output.format.name.split(",")[0], self.source.codec_context.name)
        if encoder is None:
            self.stream = output.add_stream_from_template(self.source)
        else:
            self.stream = self.encoder = output.add_stream(encoder, rate=self.source.rate)
            log.info("%s audio re-encoded to %s for %s", self.source.codec_context.name, encoder,
                     output.format.name)  # fmt: skip
        self.packets: Iterator[av.Packet] = iter(())
        self.pending: av.Packet | None = None
        self.origin = Fraction(0)

    @staticmethod
    def open(path: str, output: Any) -> AudioCopy | None:
        """The audio of the file at ``path``, or ``None`` when it has none."""
        input = av.open(path)
        if not input.streams.audio:
            input.close()
            return None
        try:
            return AudioCopy(input, output)
        except BaseException:
            input.close()
            raise

    def start(self, origin: Fraction) -> None:
        """Begin at ``origin`` seconds of the input, which becomes the output's zero."""
        if origin > 0:
            self.input.seek(int(origin * av.time_base), backward=True)
        self.origin = origin
        self.packets = (p for p in self.input.demux(self.source) if p.pts is not None)

    def copy_until(self, end: Fraction) -> None:
        """Mux the audio up to ``end`` seconds of the output."""
        while (packet := self.pending or next(self.packets, None)) is not None:
            self.pending = None
            time = packet.pts * packet.time_base - self.origin
            if time >= end:
                self.pending = packet
                return
            if time + (packet.duration or 0) * packet.time_base > 0:
                self._mux(packet, round(self.origin / packet.time_base))

    def _mux(self, packet: av.Packet, shift: int) -> None:
        if self.encoder is None:
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.stream
            self.output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts -= shift
            self.output.mux(self.encoder.encode(frame))

    def finish(self, end: Fraction) -> None:
        self.copy_until(end)
        if self.encoder is not None:
            self.output.mux(self.encoder.encode(None))

    def close(self) -> None:
        self.input.close()


class VideoWriter:
    """One output video: RGB or RGBA pictures encoded at their times, the audio of a file
    input alongside.

    Args:
        target: a path, a URL or a binary file object (stdout).
        name: how errors name the output (a URL without its secrets).
        muxer: FFmpeg's muxer name (``mp4``, ``matroska``, ``mpegts``...).
        codec, pix_fmt, codec_options: the video encoder and its settings.
        width, height, channels: the pictures' size and 3 (RGB) or 4 (RGBA).
        rate: the nominal frame rate; ``time_base``: the timestamps' unit.
        container_options: the muxer's options (mp4 and mov files get ``+faststart``).
        bit_rate: a target bitrate in bits per second instead of the codec's quality.
        audio_from: a file whose first audio stream is copied beside the video.
        flush: flush ``target`` after every frame (a live pipe).

    Pictures of odd size are padded by one edge pixel where the pixel format subsamples
    chroma. ``write`` takes a picture and its time in seconds; times are shifted so the
    output starts at zero and made strictly increasing.
    """

    def __init__(
        self,
        target: str | BinaryIO,
        name: str,
        *,
        muxer: str,
        codec: str,
        pix_fmt: str,
        width: int,
        height: int,
        channels: int = 3,
        rate: Fraction = Fraction(25),
        time_base: Fraction | None = None,
        codec_options: dict[str, str] | None = None,
        container_options: dict[str, str] | None = None,
        bit_rate: int | None = None,
        audio_from: str | None = None,
        flush: bool = False,
    ) -> None:
        self.name = name
        self.rate = rate
        self.codec, self.pix_fmt = codec, pix_fmt
        self.codec_options = dict(codec_options or {})
        self.pipe = target if flush and not isinstance(target, str) else None
        chroma = av.VideoFormat(pix_fmt)
        subsampled = chroma.chroma_width(3) != 3 or chroma.chroma_height(3) != 3
        self.pad = (height % 2, width % 2) if subsampled else (0, 0)
        self.picture_format = "rgba" if channels == 4 else "rgb24"
        self.time_base = time_base or 1 / rate
        self.origin: Fraction | None = None
        self.last_pts = -1
        self.end = Fraction(0)
        options = dict(container_options or {})
        if muxer in _FASTSTART and isinstance(target, str) and "movflags" not in options:
            options["movflags"] = "+faststart"
        try:
            self.container = av.open(target, "w", format=muxer, container_options=options)
        except av.error.FFmpegError as error:
            raise InputError(f"{name}: cannot write ({describe_error(error)})") from None
        self.audio: AudioCopy | None = None
        try:
            self.video = self.container.add_stream(codec, rate=rate, options=self.codec_options)
            self.video.width, self.video.height = width + self.pad[1], height + self.pad[0]
            self.video.pix_fmt = pix_fmt
            self.video.time_base = self.video.codec_context.time_base = self.time_base
            if bit_rate is not None:
                self.video.bit_rate = bit_rate
            if audio_from is not None:
                self.audio = AudioCopy.open(audio_from, self.container)
        except BaseException:
            self.close()
            raise

    def write(self, picture: np.ndarray, time: Fraction) -> None:
        """Encode one HxWx{3,4} uint8 picture at ``time`` seconds of the input."""
        if self.origin is None:
            self.origin = time
            if self.audio is not None:
                self.audio.start(time)
        pts = max(round((time - self.origin) / self.time_base), self.last_pts + 1)
        if any(self.pad):
            picture = np.pad(picture, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(picture), format=self.picture_format
        )
        frame.pts, frame.time_base = pts, self.time_base
        try:
            packets = self.video.encode(frame)
        except av.error.FFmpegError as error:
            if self.last_pts >= 0:
                raise
            raise ConfigError(
                f"{self.name}: {self.codec} rejects its settings (pix_fmt {self.pix_fmt}, "
                f"{self.video.width}x{self.video.height}, options {self.codec_options}): {error}"
            ) from None
        end = pts * self.time_base + 1 / self.rate
        self.container.mux(packets)
        if self.audio is not None:
            self.audio.copy_until(end)
        if self.pipe is not None:
            self.pipe.flush()
        self.last_pts, self.end = pts, end

    def finish(self) -> None:
        """Flush the encoder, copy the audio up to the video's end, close the container."""
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.audio.finish(self.end)
        self.close()

    def close(self) -> None:
        if self.audio is not None:
            self.audio.close()
            self.audio = None
        self.container.close()


def write_video(
    path: str | os.PathLike[str], pictures: Sequence[np.ndarray], rate: Fraction | float
) -> Path:
    """Encode HxWx3 uint8 RGB pictures as an H.264 mp4 (yuv420p) at a constant ``rate``,
    atomically; odd sizes are padded by one edge pixel. The same pictures give the same
    file: x264's macroblock-tree rate control is off (with it, the first file a process
    encodes after other work may differ from the next ones)."""
    rate = Fraction(rate).limit_denominator(1001)
    height, width = pictures[0].shape[:2]
    with atomic_output(path) as temporary:
        writer = VideoWriter(
            str(temporary), str(path), muxer="mp4", codec="libx264", pix_fmt="yuv420p",
            width=width, height=height, rate=rate, codec_options={"x264-params": "mbtree=0"},
        )  # fmt: skip
        try:
            for index, picture in enumerate(pictures):
                writer.write(picture, index / rate)
            writer.finish()
        except BaseException:
            writer.close()
            raise
    return Path(path)
