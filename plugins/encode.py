"""The encode sink: writes each stream's frames to a video file, stdout or a network
receiver with PyAV.

It writes ``frame.output`` when a stage set it and ``frame.image`` otherwise. Timestamps
are the input's, shifted so the output starts at zero (variable frame rates survive). A
file input's first audio stream is copied alongside (re-encoded to AAC, or Opus in WebM,
when the container cannot hold its codec). Files are written under a hidden temporary name
beside the final one and renamed when the run succeeds; a failed run leaves nothing. mp4
and mov files have their index first (they play while downloading and can be piped).

Pushes (``rtsp://``, ``rtmp://``, ``udp://``, ``tcp://``, ``srt://``) go through FFmpeg's
own muxers and protocols: RTSP ANNOUNCE/RECORD (over TCP unless ``rtsp_transport`` says
otherwise), FLV over RTMP, MPEG-TS over the others. Pushes and stdout default to low
latency: no B-frames or look-ahead, a keyframe every second, every packet flushed to the
receiver as it is made (a Matroska pipe lags one frame behind, NUT and MPEG-TS none).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, ClassVar, Literal, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import numpy as np

from ianet_stream.errors import ConfigError, InputError
from ianet_stream.frame import Frame, StreamInfo, to_numpy
from ianet_stream.outputs import PendingOutputs
from ianet_stream.stage import Context, PlannedOutput, Stage
from ianet_stream.uris import redact
from ianet_stream.video import VideoWriter

log = logging.getLogger(__name__)

Container = Literal["mp4", "mkv", "mov", "webm", "nut", "ts", "flv"]
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
    "flv": ("flv", "libx264", None),
    "rtsp": ("rtsp", "libx264", None),  # a push only, never a file
}
_STREAMING = ("mkv", "webm", "nut", "ts", "flv")  # containers a pipe or a socket can carry
# push scheme -> its fixed container, or None where ``format`` may choose one of _STREAMING
_PUSH_SCHEMES: dict[str, str | None] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "rtmp": "flv",
    "rtmps": "flv",
    "udp": None,
    "tcp": None,
    "srt": None,
}
_PUSH_CONTAINER = "ts"
_FOLDER_CONTAINER = "mp4"
_STDOUT_CONTAINER = "mkv"  # Matroska streams to a pipe: `... | ffplay -` plays it
_ALPHA_PIX_FMTS = {"prores_ks": "yuva444p10le", "libvpx-vp9": "yuva420p", "libvpx": "yuva420p"}
_CODEC_OPTIONS = {
    "prores_ks": {"profile": "4444"},
    "libvpx-vp9": {"deadline": "good", "cpu-used": "4", "row-mt": "1"},
}
_DEFAULT_CRF = {"libvpx-vp9": 32, "libvpx": 10}  # libvpx needs one for constant quality
# encoder settings that hand out each frame's packet as soon as the frame is in (with bf=0)
_LOW_LATENCY: dict[str, dict[str, str]] = {
    "libx264": {"tune": "zerolatency", "preset": "veryfast"},
    "libx265": {"tune": "zerolatency", "preset": "veryfast"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "row-mt": "1"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
}
# muxer settings that send each packet on as it comes (microseconds for the delays)
_FLUSHING = {"flush_packets": "1", "max_interleave_delta": "100000"}
_MATROSKA_FLUSHING = {"cluster_time_limit": "0"}  # a cluster per frame, written at the next
_RTSP_DEFAULTS = {"rtsp_transport": "tcp", "timeout": "10000000"}
_UDP_PACKET = "1316"  # 7 MPEG-TS packets per datagram, what receivers expect


def push_scheme(path: str) -> str | None:
    """The network scheme of an output ``path`` (``rtsp``, ``udp``, ...), ``None`` for files."""
    scheme, separator, _ = path.partition("://")
    return scheme.lower() if separator and scheme.lower() in _PUSH_SCHEMES else None


def is_folder(path: str) -> bool:
    """Whether an output ``path`` names a folder: it ends with a slash, has no extension (a
    file's extension names its container), or is a folder whose name has no container's
    extension (``out.mp4`` is a file, also where a folder of that name is in the way)."""
    if push_scheme(path) is not None:
        return False
    suffix = Path(path).suffix.lower().lstrip(".")
    if path.endswith(("/", os.sep)) or not suffix:
        return True
    return Path(path).is_dir() and suffix not in get_args(Container)


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
            "help": "where to write: a file (.mp4, .mkv, .mov, .webm, .nut, .ts, .flv), a folder "
            "(one <stream name>.mp4 per stream), '-' (Matroska on stdout, e.g. | ffplay -) or a "
            "push: rtsp://HOST:PORT/PATH (RTSP record), rtmp://... (FLV), udp://HOST:PORT, "
            "tcp://HOST:PORT or srt://HOST:PORT (MPEG-TS; srt only where FFmpeg has libsrt)"
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
        default=None,
        metadata={"help": "encoder speed preset, e.g. veryfast (libx264; the low-latency default)"},
    )
    pix_fmt: str | None = field(
        default=None,
        metadata={"help": "pixel format; default yuv420p (odd sizes padded by one pixel)"},
    )
    format: Container | None = field(
        default=None,
        metadata={
            "help": "container; default from the file's extension, mp4 in a folder, mkv on "
            "stdout, ts for udp/tcp/srt pushes (rtsp and rtmp fix theirs); mkv, webm, nut, ts "
            "and flv stream (nut and ts with no delay, mkv one frame behind)"
        },
    )
    audio: bool = field(
        default=True, metadata={"help": "copy the audio of file inputs (re-encoded if needed)"}
    )
    low_latency: bool | None = field(
        default=None,
        metadata={
            "help": "send each frame on as soon as it is encoded: no B-frames or look-ahead "
            "(libx264 tune=zerolatency, preset veryfast; VP9 realtime), a keyframe every gop "
            "frames, packets flushed at once; default: on for pushes and stdout, off for files"
        },
    )
    gop: int | None = field(
        default=None,
        metadata={
            "help": "frames between keyframes (how long a viewer joining a stream waits); "
            "default one second of frames with low_latency, the codec's otherwise"
        },
    )
    muxer_options: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "FFmpeg options of the muxer, e.g. {rtsp_transport: udp} (pushes to rtsp:// "
            "default to tcp and a 10 s timeout); protocol options go in the URL, e.g. "
            "udp://HOST:PORT?pkt_size=1316 (the default) or tcp://HOST:PORT?timeout=5000000"
        },
    )

    def __post_init__(self) -> None:
        if not self.path.strip():
            raise ValueError("path: expected a file, a folder, '-' or a rtsp://, udp://... URL")
        self._check_container()
        if self.codec is not None and (
            self.codec not in av.codecs_available or av.Codec(self.codec, "w").type != "video"
        ):
            raise ValueError(f"codec: FFmpeg has no video encoder {self.codec!r}")
        if self.crf is not None and self.crf < 0:
            raise ValueError(f"crf: expected a number >= 0, got {self.crf}")
        if self.gop is not None and self.gop < 1:
            raise ValueError(f"gop: expected a number of frames >= 1, got {self.gop}")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
        if self.pix_fmt is not None:
            try:
                av.VideoFormat(self.pix_fmt)
            except ValueError:
                raise ValueError(f"pix_fmt: unknown pixel format {self.pix_fmt!r}") from None

    def _check_container(self) -> None:
        scheme = push_scheme(self.path)
        if scheme is not None:
            fixed = _PUSH_SCHEMES[scheme]
            if fixed is not None and self.format not in (None, fixed):
                raise ValueError(f"format: {scheme}:// pushes are {fixed}; leave format unset")
            if fixed is None and self.container not in _STREAMING:
                raise ValueError(f"format: {scheme}:// carries {', '.join(_STREAMING)}")
            return
        if self.container not in get_args(Container):
            raise ValueError(
                f"path: {self.path!r}: use a .mp4, .mkv, .mov, .webm, .nut, .ts or .flv file "
                "(or set format)"
            )
        if self.path == "-" and self.container not in _STREAMING:
            raise ValueError(
                f"format: {self.container} cannot stream; use mkv, nut or ts on stdout"
            )

    @property
    def container(self) -> str:
        """The output container: ``format``, else the file's extension, the push's (or the
        default)."""
        scheme = push_scheme(self.path)
        if scheme is not None:
            return _PUSH_SCHEMES[scheme] or self.format or _PUSH_CONTAINER
        if self.format is not None:
            return self.format
        if self.path == "-":
            return _STDOUT_CONTAINER
        if is_folder(self.path):
            return _FOLDER_CONTAINER
        return Path(self.path).suffix.lower().lstrip(".")

    @property
    def is_push(self) -> bool:
        """Whether the output is a network receiver."""
        return push_scheme(self.path) is not None

    @property
    def is_live(self) -> bool:
        """Whether frames are sent on as they come (``low_latency``, or its default)."""
        if self.low_latency is not None:
            return self.low_latency
        return self.is_push or self.path == "-"


def container_options(options: EncodeOptions) -> dict[str, str]:
    """The muxer's options: live flushing, RTSP's transport and timeout, then the user's."""
    muxer = _CONTAINERS[options.container][0]
    chosen: dict[str, str] = {}
    if options.is_live:
        chosen |= _FLUSHING
        if muxer in ("matroska", "webm"):
            chosen |= _MATROSKA_FLUSHING
    if muxer == "rtsp":
        chosen |= _RTSP_DEFAULTS
    return chosen | options.muxer_options


def push_url(options: EncodeOptions) -> str:
    """The URL FFmpeg opens: MPEG-TS over UDP gets 1316-byte datagrams unless the URL says."""
    if push_scheme(options.path) != "udp" or options.container != "ts":
        return options.path
    parts = urlsplit(options.path)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "pkt_size" for key, _ in query):
        return options.path
    return urlunsplit(parts._replace(query=urlencode([*query, ("pkt_size", _UDP_PACKET)])))


def choose_codec(
    options: EncodeOptions, alpha: bool, rate: Fraction = Fraction(25)
) -> tuple[str, str, dict[str, str]]:
    """The video encoder, its pixel format and its options for ``options.container``
    (low-latency ones with ``options.is_live``, a keyframe every second of ``rate``)."""
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
    gop = options.gop
    if options.is_live:
        codec_options |= _LOW_LATENCY.get(codec, {}) | {"bf": "0"}
        gop = gop or max(1, round(rate))
    if gop is not None:
        codec_options["g"] = str(gop)
    crf = options.crf if options.crf is not None else _DEFAULT_CRF.get(codec)
    if crf is not None and options.bitrate is None:
        codec_options["crf"] = str(crf)
        if codec.startswith("libvpx"):
            codec_options["b"] = "0"
    if options.preset is not None:
        codec_options["preset"] = options.preset
    return codec, options.pix_fmt or pix_fmt, codec_options


class _Output:
    """One stream's output: a ``VideoWriter`` whose FFmpeg errors (a missing protocol, a
    refused connection, a full disk) become one line that names the output."""

    def __init__(
        self,
        target: str | BinaryIO,
        name: str,
        options: EncodeOptions,
        info: StreamInfo,
        picture: np.ndarray,
    ) -> None:
        height, width, channels = picture.shape
        self.name = name
        self.is_push = options.is_push
        self.rate = Fraction(info.rate) if info.rate else Fraction(25)
        codec, pix_fmt, codec_options = choose_codec(options, alpha=channels == 4, rate=self.rate)
        self.written = 0
        with self._sending():
            self.writer = VideoWriter(
                target,
                name,
                muxer=_CONTAINERS[options.container][0],
                codec=codec,
                pix_fmt=pix_fmt,
                codec_options=codec_options,
                container_options=container_options(options),
                width=width,
                height=height,
                channels=channels,
                rate=self.rate,
                time_base=Fraction(info.time_base) if info.time_base else None,
                bit_rate=parse_bitrate(options.bitrate) if options.bitrate else None,
                audio_from=info.audio if options.audio else None,
                flush=options.is_live,
            )

    def write(self, frame: Frame, picture: np.ndarray) -> None:
        """Encode one picture at the frame's time (its index over the rate without one)."""
        if frame.pts is not None and frame.time_base is not None:
            time = frame.pts * Fraction(frame.time_base)
        else:
            time = frame.index / self.rate
        with self._sending():
            self.writer.write(picture, time)
        self.written += 1

    def finish(self) -> None:
        with self._sending():
            self.writer.finish()

    def close(self) -> None:
        self.writer.close()

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        try:
            yield
        except av.ProtocolNotFoundError:
            scheme = self.name.partition("://")[0]
            raise InputError(
                f"{self.name}: this FFmpeg build has no {scheme} protocol; "
                "push with udp://, tcp://, rtsp:// or rtmp:// instead"
            ) from None
        except (av.error.FFmpegError, OSError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            if not self.is_push:
                raise InputError(f"{self.name}: cannot write ({reason})") from None
            if self.written == 0:
                raise InputError(
                    f"{self.name}: cannot push ({reason}); is a receiver listening there?"
                ) from None
            raise InputError(f"{self.name}: the push broke off ({reason})") from None


class Encode(Stage):
    """Writes each stream to a video file, one file per stream in a folder, stdout, or a
    network receiver."""

    name: ClassVar[str] = "encode"
    help: ClassVar[str] = (
        "write video files (mp4, mkv, mov, webm; alpha in mov and webm), stdout, or push to "
        "rtsp://, rtmp://, udp://, tcp://, srt:// receivers, keeping timestamps and the "
        "input's audio"
    )
    kind: ClassVar[Literal["source", "transform", "sink"]] = "sink"
    Options: ClassVar[type] = EncodeOptions
    requires: ClassVar[tuple[str, ...]] = ("image",)
    output_option: ClassVar[str | None] = "path"

    def __init__(self, options: EncodeOptions, context: Context) -> None:
        super().__init__(options, context)
        self._infos: dict[str, StreamInfo] = {}
        self._writers: dict[str, _Output] = {}
        self._temporaries: dict[str, Path] = {}
        self._targets: set[str] = set()
        self._outputs = PendingOutputs()

    @classmethod
    def clip_output(cls, options: EncodeOptions, folder: str, stem: str) -> tuple[str, str]:
        if options.is_push:
            raise ConfigError(
                f"encode: a folder run writes one file per clip; {redact(folder)} takes one stream"
            )
        path = str(Path(folder) / f"{stem}.{options.container}")
        return path, path

    @classmethod
    def outputs(cls, options: EncodeOptions, streams: Sequence[str]) -> list[PlannedOutput]:
        if options.is_push or options.path == "-":
            return []
        if is_folder(options.path):
            folder = Path(options.path)
            return [PlannedOutput(folder / f"{name}.{options.container}") for name in streams]
        return [PlannedOutput(Path(options.path))]

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
        writer = self._writers.get(stream)
        if writer is None:
            if info is not None:
                log.warning("encode: %s had no frames; nothing written", info.name)
            return []
        writer.finish()
        del self._writers[stream]
        if stream in self._temporaries:
            self._outputs.complete(self._temporaries.pop(stream))
        elif self.options.path == "-":
            sys.stdout.buffer.flush()
        return []

    def close(self) -> None:
        try:
            with contextlib.ExitStack() as closing:
                for writer in self._writers.values():
                    closing.callback(writer.close)
        finally:
            self._writers.clear()
            self._outputs.finish(failed=self.context.failed)

    def _open(self, stream: str, picture: np.ndarray) -> _Output:
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
        muxer = _CONTAINERS[self.options.container][0]
        if muxer not in av.formats_available:
            raise InputError(f"{final}: this FFmpeg build has no {muxer} muxer")
        writer = self._writers[stream] = _Output(target, final, self.options, info, picture)
        return writer

    def _target(self, stream: str, info: StreamInfo) -> tuple[str, str | BinaryIO]:
        """Where a stream goes: its final name, and the temporary name beside it (or stdout,
        or the receiver's URL; the name is then the URL without its secrets)."""
        path = self.options.path
        if self.options.is_push:
            if self._targets:
                raise ConfigError(f"encode: {redact(path)} already carries a stream (one per push)")
            self._targets.add(path)
            return redact(path), push_url(self.options)
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
