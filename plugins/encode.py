"""The encode sink: writes each stream's frames to a video file (or stdout) with PyAV.

It writes ``frame.output`` when a stage set it and ``frame.image`` otherwise. Timestamps
are the input's, shifted so the output starts at zero (variable frame rates survive). A
file input's first audio stream is copied alongside (re-encoded to AAC, or Opus in WebM,
when the container cannot hold its codec). Files are written under a hidden temporary name
beside the final one and renamed when the run succeeds; a failed run leaves nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

import av
import numpy as np

from ianet.errors import InputError
from ianet_stream.cli import ConfigError
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context, Stage

from .video import PendingOutputs, to_numpy

log = logging.getLogger(__name__)

Container = Literal["mp4", "mkv", "mov", "webm", "nut", "ts"]
_PRORES_ALPHA = ("prores_ks", "yuva444p10le")
_VP9_ALPHA = ("libvpx-vp9", "yuva420p")
# container -> (FFmpeg muxer, default video encoder, encoder and pixel format for alpha)
_CONTAINERS: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "mp4": ("mp4", "libx264", None),
    "mkv": ("matroska", "libx264", _VP9_ALPHA),
    "mov": ("mov", "libx264", _PRORES_ALPHA),
    "webm": ("webm", "libvpx-vp9", _VP9_ALPHA),
    "nut": ("nut", "libx264", None),
    "ts": ("mpegts", "libx264", None),
}
_FOLDER_CONTAINER = "mp4"
_STDOUT_CONTAINER = "mkv"  # Matroska streams to a pipe: `... | ffplay -` plays it
_ALPHA_PIX_FMTS = {"prores_ks": "yuva444p10le", "libvpx-vp9": "yuva420p", "libvpx": "yuva420p"}
_CODEC_OPTIONS = {
    "prores_ks": {"profile": "4444"},
    "libvpx-vp9": {"deadline": "good", "cpu-used": "4", "row-mt": "1"},
}
_DEFAULT_CRF = {"libvpx-vp9": 32, "libvpx": 10}  # libvpx needs one for constant quality
_FALLBACK_AUDIO = {"webm": "libopus"}  # otherwise aac


def is_folder(path: str) -> bool:
    """Whether an output ``path`` names a folder: it ends with a slash, is one, or has no
    extension (a file's extension names its container)."""
    return path.endswith(("/", os.sep)) or Path(path).is_dir() or not Path(path).suffix


def parse_bitrate(text: str) -> int:
    """``"4M"`` -> 4000000, ``"800k"`` -> 800000, ``"2500000"`` -> 2500000 (bits per second)."""
    value = str(text).strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(value[-1:].lower(), 1)
    try:
        bits = int(float(value[:-1] if scale > 1 else value) * scale)
    except ValueError:
        bits = 0
    if bits <= 0:
        raise ValueError(f"bitrate: expected bits per second like 4M or 800k, got {text!r}")
    return bits


@dataclass
class EncodeOptions:
    """Options of the encode sink."""

    path: str = field(
        metadata={
            "help": "where to write: a file (.mp4, .mkv, .mov, .webm, .nut, .ts), a folder "
            "(one <stream name>.mp4 per stream) or '-' (Matroska on stdout)"
        }
    )
    codec: str | None = field(
        default=None,
        metadata={
            "help": "video encoder; default libx264, libvpx-vp9 in webm; pictures with alpha: "
            "ProRes 4444 in mov, VP9 with alpha in webm and mkv"
        },
    )
    crf: int | None = field(
        default=None, metadata={"help": "constant quality, lower is better; none: the codec's"}
    )
    bitrate: str | None = field(
        default=None, metadata={"help": "a target bitrate instead of crf, e.g. 4M or 800k"}
    )
    preset: str | None = field(
        default=None, metadata={"help": "encoder speed preset, e.g. veryfast (libx264)"}
    )
    pix_fmt: str | None = field(
        default=None,
        metadata={"help": "pixel format; default yuv420p (odd sizes padded by one pixel)"},
    )
    format: Container | None = field(
        default=None,
        metadata={
            "help": "container; default from the file's extension, mp4 in a folder, mkv on stdout"
        },
    )
    audio: bool = field(
        default=True, metadata={"help": "copy the audio of file inputs (re-encoded if needed)"}
    )

    def __post_init__(self) -> None:
        if not self.path.strip():
            raise ValueError("path: expected a file, a folder or '-'")
        if self.container not in _CONTAINERS:
            raise ValueError(
                f"path: {self.path!r}: use a .mp4, .mkv, .mov, .webm, .nut or .ts file "
                "(or set format)"
            )
        if self.path == "-" and self.container in ("mp4", "mov"):
            raise ValueError(
                f"format: {self.container} cannot stream; use mkv, nut or ts on stdout"
            )
        if self.codec is not None and (
            self.codec not in av.codecs_available or av.Codec(self.codec, "w").type != "video"
        ):
            raise ValueError(f"codec: FFmpeg has no video encoder {self.codec!r}")
        if self.crf is not None and self.crf < 0:
            raise ValueError(f"crf: expected a number >= 0, got {self.crf}")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
        if self.pix_fmt is not None:
            try:
                av.VideoFormat(self.pix_fmt)
            except ValueError:
                raise ValueError(f"pix_fmt: unknown pixel format {self.pix_fmt!r}") from None

    @property
    def container(self) -> str:
        """The output container: ``format``, else the file's extension (or the default)."""
        if self.format is not None:
            return self.format
        if self.path == "-":
            return _STDOUT_CONTAINER
        if is_folder(self.path):
            return _FOLDER_CONTAINER
        return Path(self.path).suffix.lower().lstrip(".")


def choose_codec(options: EncodeOptions, alpha: bool) -> tuple[str, str, dict[str, str]]:
    """The video encoder, its pixel format and its options for ``options.container``."""
    _, default_codec, alpha_choice = _CONTAINERS[options.container]
    if alpha and options.codec is None:
        if alpha_choice is None:
            raise ConfigError(
                f"encode: the pictures have alpha, which {options.container} cannot hold; "
                "write .mov (ProRes 4444) or .webm (VP9 with alpha)"
            )
        codec, pix_fmt = alpha_choice
    else:
        codec = options.codec or default_codec
        pix_fmt = _ALPHA_PIX_FMTS.get(codec, "yuv420p") if alpha else "yuv420p"
    codec_options = dict(_CODEC_OPTIONS.get(codec, {}))
    crf = options.crf if options.crf is not None else _DEFAULT_CRF.get(codec)
    if crf is not None and options.bitrate is None:
        codec_options["crf"] = str(crf)
        if codec.startswith("libvpx"):
            codec_options["b"] = "0"
    if options.preset is not None:
        codec_options["preset"] = options.preset
    return codec, options.pix_fmt or pix_fmt, codec_options


class _AudioCopy:
    """An input file's first audio stream, muxed beside the video as the video advances.

    Packets are copied when the output container can hold their codec and re-encoded
    otherwise; their times are shifted by the video's ``origin`` (its first frame's time).
    """

    def __init__(self, input: Any, output: Any) -> None:
        self.input = input
        self.source = input.streams.audio[0]
        self.output = output
        self.encoder = None
        try:
            self.stream = output.add_stream_from_template(self.source)
        except ValueError:  # the container cannot hold this codec
            codec = _FALLBACK_AUDIO.get(output.format.name, "aac")
            self.stream = self.encoder = output.add_stream(
                codec, rate=self.source.rate, layout=self.source.layout
            )
        self.packets: Iterator[av.Packet] = iter(())
        self.pending: av.Packet | None = None
        self.origin = Fraction(0)

    @staticmethod
    def open(info: StreamInfo, output: Any) -> _AudioCopy | None:
        """The audio of a file input, or ``None`` for other inputs and files without audio."""
        if info.container is None or not Path(info.uri).is_file():
            return None
        input = av.open(info.uri)
        if not input.streams.audio:
            input.close()
            return None
        try:
            return _AudioCopy(input, output)
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


class _Writer:
    """One stream's output: the video encoded frame by frame, the input's audio alongside."""

    def __init__(
        self, target: str | BinaryIO, options: EncodeOptions, info: StreamInfo, picture: np.ndarray
    ) -> None:
        height, width, channels = picture.shape
        self.codec, self.pix_fmt, self.codec_options = choose_codec(options, alpha=channels == 4)
        chroma = av.VideoFormat(self.pix_fmt)
        subsampled = chroma.chroma_width(3) != 3 or chroma.chroma_height(3) != 3
        self.pad = (height % 2, width % 2) if subsampled else (0, 0)
        self.picture_format = "rgba" if channels == 4 else "rgb24"
        self.rate = Fraction(info.rate) if info.rate else Fraction(25)
        self.time_base = Fraction(info.time_base) if info.time_base else 1 / self.rate
        self.origin: Fraction | None = None
        self.last_pts = -1
        self.end = Fraction(0)
        self.container = av.open(target, "w", format=_CONTAINERS[options.container][0])
        self.audio: _AudioCopy | None = None
        try:
            self.video = self.container.add_stream(
                self.codec, rate=self.rate, options=self.codec_options
            )
            self.video.width, self.video.height = width + self.pad[1], height + self.pad[0]
            self.video.pix_fmt = self.pix_fmt
            self.video.time_base = self.video.codec_context.time_base = self.time_base
            if options.bitrate is not None:
                self.video.bit_rate = parse_bitrate(options.bitrate)
            if options.audio:
                self.audio = _AudioCopy.open(info, self.container)
        except BaseException:
            self.close()
            raise

    def write(self, frame: Frame, picture: np.ndarray) -> None:
        """Encode one picture at the frame's time, relative to the stream's first frame."""
        if frame.pts is not None and frame.time_base is not None:
            time = frame.pts * Fraction(frame.time_base)
        else:
            time = frame.index / self.rate
        if self.origin is None:
            self.origin = time
            if self.audio is not None:
                self.audio.start(time)
        pts = max(round((time - self.origin) / self.time_base), self.last_pts + 1)
        if any(self.pad):
            picture = np.pad(picture, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(picture), format=self.picture_format
        )
        video_frame.pts, video_frame.time_base = pts, self.time_base
        try:
            packets = self.video.encode(video_frame)
        except av.error.FFmpegError as error:
            if self.last_pts >= 0:
                raise
            raise ConfigError(
                f"encode: {self.codec} rejects its settings (pix_fmt {self.pix_fmt}, "
                f"{self.video.width}x{self.video.height}, options {self.codec_options}): {error}"
            ) from None
        self.container.mux(packets)
        self.last_pts = pts
        self.end = pts * self.time_base + 1 / self.rate
        if self.audio is not None:
            self.audio.copy_until(self.end)

    def finish(self) -> None:
        """Flush the encoder, copy the audio up to the video's end, close the container."""
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.audio.finish(self.end)
        self.close()

    def close(self) -> None:
        if self.audio is not None:
            self.audio.close()
        self.container.close()


class Encode(Stage):
    """Writes each stream to a video file, one file per stream in a folder, or stdout."""

    name: ClassVar[str] = "encode"
    help: ClassVar[str] = (
        "write video files (mp4, mkv, mov, webm; alpha in mov and webm) or stdout, "
        "keeping timestamps and the input's audio"
    )
    kind: ClassVar[Literal["source", "transform", "sink"]] = "sink"
    Options: ClassVar[type] = EncodeOptions

    def __init__(self, options: EncodeOptions, context: Context) -> None:
        super().__init__(options, context)
        self._infos: dict[str, StreamInfo] = {}
        self._writers: dict[str, _Writer] = {}
        self._temporaries: dict[str, Path] = {}
        self._targets: set[str] = set()
        self._outputs = PendingOutputs()

    @classmethod
    def clip_output(cls, options: EncodeOptions, folder: str, stem: str) -> tuple[str, str]:
        path = str(Path(folder) / f"{stem}.{options.container}")
        return path, path

    def start_stream(self, info: StreamInfo) -> None:
        self._infos[info.id] = info

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            picture = to_numpy(frame.output if frame.output is not None else frame.image)
            writer = self._writers.get(frame.stream) or self._open(frame.stream, picture)
            writer.write(frame, picture)
        return frames

    def end_stream(self, stream: str) -> list[Frame]:
        info = self._infos.pop(stream, None)
        writer = self._writers.pop(stream, None)
        if writer is None:
            if info is not None:
                log.warning("encode: %s had no frames; nothing written", info.name)
            return []
        writer.finish()
        if stream in self._temporaries:
            self._outputs.complete(self._temporaries.pop(stream))
        else:
            sys.stdout.buffer.flush()
        return []

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._outputs.finish(failed=self.context.failed)

    def _open(self, stream: str, picture: np.ndarray) -> _Writer:
        """The writer of a stream's first frame (the picture fixes its size and alpha)."""
        info = self._infos.get(stream)
        if info is None:
            raise InputError(f"encode: a frame of stream {stream!r} came before its start")
        if picture.ndim != 3 or picture.shape[2] not in (3, 4) or picture.dtype != np.uint8:
            raise InputError(
                f"encode: expected HxWx3 or HxWx4 uint8 pictures, got {picture.dtype} "
                f"{'x'.join(map(str, picture.shape))}"
            )
        final, target = self._target(stream, info)
        try:
            writer = _Writer(target, self.options, info, picture)
        except av.error.FFmpegError as error:
            raise InputError(f"{final}: cannot write ({error.strerror or error})") from None
        self._writers[stream] = writer
        return writer

    def _target(self, stream: str, info: StreamInfo) -> tuple[str, str | BinaryIO]:
        """Where a stream goes: its final name, and the temporary name beside it (or stdout)."""
        path = self.options.path
        if path != "-" and is_folder(path):
            final = str(Path(path) / f"{info.name}.{self.options.container}")
        else:
            final = path
        if final in self._targets:
            raise ConfigError(
                f"encode: {final} already holds a stream; give a folder (a path ending with /) "
                "for one file per stream"
            )
        self._targets.add(final)
        if final == "-":
            if sys.stdout.isatty():
                raise ConfigError("encode: path '-' writes video to stdout; pipe it somewhere")
            return final, sys.stdout.buffer
        self._temporaries[stream] = self._outputs.reserve(Path(final))
        return final, str(self._temporaries[stream])
