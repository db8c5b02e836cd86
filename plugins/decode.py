"""The decode source: video files, stdin, cameras, network streams, FFmpeg test sources and
the synthetic generator.

URIs:
    ``clip.mp4``        a file of any container FFmpeg reads (a URL FFmpeg opens works too)
    ``-``               a stream on stdin (container probed), e.g. ``cat clip.mkv | ...``; a
                        named pipe (FIFO) is read as a file is
    ``webcam:N``        a camera: ``/dev/videoN`` (v4l2) on Linux (or give the device path),
                        device N (avfoundation) on macOS, ``webcam:video=NAME`` (dshow) on Windows
    ``rtsp://...``      a network stream (``rtsp``, ``http(s)`` and HLS ``.m3u8``, ``udp``,
                        ``rtmp``, ``srt`` where FFmpeg has it), with open and read timeouts
    ``lavfi:GRAPH``     an FFmpeg source, e.g. ``lavfi:testsrc2=size=320x240:rate=25:duration=2``
    ``synthetic:KEYS``  the built-in synthetic generator; its frames carry their ground-truth
                        ``mask``. KEYS are ``key=value`` pairs joined by ``,`` (or ``&``, after an
                        optional ``?``): ``seed`` (0), ``size`` (320x192), ``frames`` (endless),
                        ``rate`` (25 frames/s), ``preset`` (default or hard), e.g.
                        ``synthetic:seed=3,size=320x192,frames=48``

A folder is not a URI here: ``ianet-stream run --input DIR`` runs one pipeline per clip.

Live inputs (option ``live``, see ``live.py``): cameras and network streams are reopened
after an error or a silence (``reconnect``), their timestamps continuing after the gap;
live ``lavfi:`` and ``synthetic:`` inputs produce their frames in real time, at their rate.

A list of URIs (``uri: [a.mp4, b.mp4, "synthetic:seed=1"]``) reads every input at once, each
in its own thread, as a stream of its own (names made unique: ``clip``, ``clip-2``); the
frames interleave as they come, so the stages batch frames of several streams together.
``max_frames``, ``start``, ``fps`` and ``size`` apply to each stream. An input's error fails
the run and names that input, as with a single input (see ``multiplex.py``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

import av
import av.codec.hwaccel
import numpy as np

from ianet_stream.config import parse_size
from ianet_stream.errors import InputError
from ianet_stream.frame import Frame, StreamEnd, StreamInfo, StreamStart
from ianet_stream.stage import Context, Emit, LiveOptions, Source
from ianet_stream.uris import parse_uri, redact
from ianet_stream_plugins.live import (
    NETWORK_TIMEOUT_S,
    Reconnecting,
    ReconnectOptions,
    Timeline,
    check_camera,
    is_fifo,
    network_options,
    paced,
    reconnects,
    resolve_live,
    timeout_reason,
    webcam_input,
)
from ianet_stream_plugins.multiplex import Multiplexer

log = logging.getLogger(__name__)

_HW_DEVICES = tuple(t.name for t in av.codec.hwaccel.HWDeviceType if t.name != "none")
# A file whose last frame ends this much (seconds) before its announced duration is reported
# as truncated.
_TRUNCATION_TOLERANCE = 0.5


def scaled_size(width: int, height: int, size: tuple[int, int] | int | None) -> tuple[int, int]:
    """The picture size after scaling ``width x height`` to ``size``.

    A single number is the short side; the long side keeps the aspect ratio, and both are
    rounded to even numbers (what 4:2:0 video codecs need).
    """
    if size is None:
        return width, height
    if isinstance(size, tuple):
        return size
    scale = size / min(width, height)

    def even(value: float) -> int:
        return max(2, 2 * round(value / 2))

    return even(width * scale), even(height * scale)


def _synthetic_video(uri: str) -> tuple[Any, int]:
    """The generator a ``synthetic:`` URI names, and its frame rate."""
    from ianet.data.synthetic import PRESETS, SyntheticVideo

    keys: dict[str, Any] = {
        "seed": "0",
        "size": "320x192",
        "frames": None,
        "rate": "25",
        "preset": "default",
    }
    query = uri.removeprefix("synthetic:").lstrip("?")
    for item in filter(None, query.replace("&", ",").split(",")):
        key, _, value = item.partition("=")
        if key not in keys or not value:
            raise InputError(
                f"{uri}: expected key=value pairs with keys {', '.join(keys)}, got {item!r}"
            )
        keys[key] = value
    try:
        size = parse_size(keys["size"], short_side=False)
        if keys["preset"] not in PRESETS:
            raise ValueError(f"preset: expected one of {', '.join(PRESETS)}")
        frames = None if keys["frames"] is None else int(keys["frames"])
        rate = int(keys["rate"])
        if rate <= 0:
            raise ValueError(f"rate: expected a positive number, got {rate}")
        video = SyntheticVideo(int(keys["seed"]), size, frames, PRESETS[keys["preset"]])
    except ValueError as error:
        raise InputError(f"{uri}: {error}") from None
    return video, rate


@dataclass
class DecodeOptions:
    """Options of the decode source."""

    uri: str | list[str] = field(
        metadata={
            "help": "the input: a video file, '-' (stdin), a named pipe, 'webcam:0', "
            "'rtsp://user:password@host/path' (or http(s), HLS, udp, rtmp, srt), "
            "'lavfi:GRAPH' (an FFmpeg test source) "
            "or 'synthetic:seed=3,size=320x192,frames=48' (frames with ground-truth masks); "
            "a list of them: all read at once, one stream each"
        }
    )
    max_frames: int | None = field(
        default=None, metadata={"help": "stop after this many frames; none for all"}
    )
    start: float = field(default=0.0, metadata={"help": "seek: skip the first seconds"})
    fps: float | None = field(
        default=None,
        metadata={
            "help": "resample to this constant rate (frames dropped or repeated); none keeps; "
            "a webcam is asked for this rate"
        },
    )
    size: int | str | None = field(
        default=None,
        metadata={
            "help": "scale at decode: WxH, or one number for the short side (keeps aspect); "
            "a webcam is asked for WxH"
        },
    )
    hwaccel: str | None = field(
        default=None,
        metadata={"help": "hardware decoding, e.g. 'cuda'; falls back to software with a warning"},
    )
    live: LiveOptions | bool | None = field(
        default=None,
        metadata={
            "help": "true, false or {policy: latest|all, max_latency_ms}; none decides: cameras "
            "and network streams keep the newest frames, stdin and named pipes lose none, "
            "files are not live; live lavfi:/synthetic: inputs play at their frame rate"
        },
    )
    reconnect: ReconnectOptions = field(
        default_factory=ReconnectOptions,
        metadata={
            "help": "live cameras and network streams: reopen after an error or a silence "
            "({first_delay_s, max_delay_s, attempts})"
        },
    )
    timeout_s: float = field(
        default=NETWORK_TIMEOUT_S,
        metadata={"help": "cameras and network streams: open and read timeout (seconds)"},
    )
    transport: Literal["tcp", "udp"] = field(
        default="tcp", metadata={"help": "rtsp:// streams: the transport of the media"}
    )
    pixel_format: str | None = field(
        default=None,
        metadata={"help": "webcams: the capture format asked of the camera, e.g. mjpeg, yuyv422"},
    )

    def __post_init__(self) -> None:
        uris = [self.uri] if isinstance(self.uri, str) else list(self.uri)
        if not uris or not all(uri.strip() for uri in uris):
            raise ValueError("uri: expected a file, '-', 'lavfi:...' or 'synthetic:...'")
        if uris.count("-") > 1:
            raise ValueError("uri: '-' (stdin) can be read only once")
        self.uri = uris[0] if len(uris) == 1 else uris
        if self.max_frames is not None and self.max_frames <= 0:
            raise ValueError(f"max_frames: expected a positive number, got {self.max_frames}")
        if self.start < 0:
            raise ValueError(f"start: expected seconds >= 0, got {self.start}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps: expected a positive rate, got {self.fps}")
        if self.size is not None:
            parse_size(self.size)
        if self.hwaccel is not None and self.hwaccel not in _HW_DEVICES:
            raise ValueError(
                f"hwaccel: expected one of {', '.join(_HW_DEVICES)}, got {self.hwaccel!r}"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: expected seconds > 0, got {self.timeout_s}")
        self.live = resolve_live(self.live, uris)


class _Input:
    """An open PyAV input: its container, video stream and what the stream is called."""

    def __init__(self, uri: str, options: DecodeOptions) -> None:
        parsed = parse_uri(uri)
        self.uri, self.name = redact(uri), parsed.name  # messages never show credentials
        self.is_file = parsed.kind == "file" and not is_fifo(uri)
        self.kind, self.reconnects = parsed.kind, reconnects(parsed)
        source, format, settings, timeout = parsed.target, None, {}, 30.0
        if parsed.kind == "stdio":
            source = sys.stdin.buffer
        elif parsed.kind == "lavfi":
            format = "lavfi"
        elif parsed.kind == "folder":
            raise InputError(
                f"{uri}: is a folder; decode reads one video "
                "(give the folder to 'ianet-stream run --input' to run one pipeline per clip)"
            )
        elif parsed.kind == "webcam":
            size = parse_size(options.size) if options.size is not None else None
            source, format, settings = webcam_input(
                parsed.target, options.pixel_format, size, options.fps
            )
            check_camera(source)
            timeout = options.timeout_s
        elif parsed.kind == "network":
            settings = network_options(uri, options.transport, options.timeout_s)
            timeout = options.timeout_s
        elif self.is_file:
            self._check_file(Path(uri))
        hwaccel = options.hwaccel
        accel = _hardware_decoder(hwaccel) if hwaccel else None
        started = time.monotonic()
        try:
            self.container = av.open(
                source, "r", format=format, options=settings, hwaccel=accel, timeout=timeout
            )
        except av.error.FFmpegError as error:
            reason = _describe(error)
            if self.reconnects:
                reason = timeout_reason(error, time.monotonic() - started, timeout) or reason
            raise InputError(f"{self.uri}: {reason}") from None
        videos = self.container.streams.video
        if not videos:
            kinds = ", ".join(sorted({s.type for s in self.container.streams})) or "none"
            self.container.close()
            raise InputError(f"{self.uri}: no video stream (streams: {kinds})")
        self.stream = videos[0]
        self.stream.thread_type = "AUTO"
        if accel is not None and not self.stream.codec_context.is_hwaccel:
            log.warning(
                "%s: no %s decoder for %s; decoding in software",
                self.uri,
                hwaccel,
                self.stream.codec_context.name,
            )

    @staticmethod
    def _check_file(path: Path) -> None:
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file")


def _hardware_decoder(device: str) -> av.codec.hwaccel.HWAccel | None:
    """A hardware-decoding setting for ``device``, or ``None`` (with a warning) without one."""
    accel = av.codec.hwaccel.HWAccel(device, allow_software_fallback=True)
    try:
        accel.create(av.Codec("h264", "r"))  # opens the device once: is it there?
    except (av.error.FFmpegError, NotImplementedError) as error:
        log.warning("hwaccel %s unavailable (%s); decoding in software", device, _describe(error))
        return None
    return accel


def _describe(error: Exception) -> str:
    """A short reason from an FFmpeg error (its message without the file name)."""
    reason = getattr(error, "strerror", None) or str(error)
    reason = reason[:1].lower() + reason[1:]
    if isinstance(error, av.error.InvalidDataError):
        return f"not a video FFmpeg can read ({reason})"
    if isinstance(error, av.error.ExitError):  # PyAV's timeout interrupted FFmpeg
        return "timed out"
    return reason


class Decode(Source):
    """Decodes one input to uint8 RGB frames with their timestamps."""

    name: ClassVar[str] = "decode"
    help: ClassVar[str] = (
        "decode a video file, stdin ('-'), a camera ('webcam:0'), a network stream "
        "('rtsp://...'), an FFmpeg test source ('lavfi:...') or the synthetic generator "
        "('synthetic:...') with PyAV; live inputs reconnect"
    )
    Options: ClassVar[type] = DecodeOptions
    input_option: ClassVar[str | None] = "uri"

    @classmethod
    def provided_fields(cls, options: DecodeOptions) -> frozenset[str]:
        """``image``; ``mask`` too when an input is the synthetic generator."""
        uris = [options.uri] if isinstance(options.uri, str) else options.uri
        synthetic = any(uri.startswith("synthetic:") for uri in uris)
        return frozenset({"image", "mask"} if synthetic else {"image"})

    def live(self) -> LiveOptions | None:
        return self.options.live

    def __init__(self, options: DecodeOptions, context: Context) -> None:
        super().__init__(options, context)
        self._stop = threading.Event()
        self._input: _Input | None = None
        self._synthetic: tuple[Any, int] | None = None
        self._size = parse_size(options.size) if options.size is not None else None
        self._inputs: Multiplexer | None = None  # a list of URIs: one Decode per input
        if isinstance(options.uri, list):
            live = options.live or False  # resolved once, for every input
            inputs = [Decode(replace(options, uri=uri, live=live), context) for uri in options.uri]
            self._inputs = Multiplexer(inputs, options.uri)

    def open(self) -> None:
        """Open the input: errors about it surface here, before the pipeline starts."""
        if self._inputs is not None:
            self._inputs.open()
        elif self.options.uri.startswith("synthetic:"):
            self._synthetic = _synthetic_video(self.options.uri)
        else:
            self._input = _Input(self.options.uri, self.options)

    def close(self) -> None:
        if self._inputs is not None:
            self._inputs.close()
        if self._input is not None:
            self._input.container.close()
            self._input = None

    def stop(self) -> None:
        self._stop.set()
        if self._inputs is not None:
            self._inputs.stop()

    def run(self, emit: Emit) -> None:
        if self._inputs is not None:
            self._inputs.run(emit)
            return
        if self._input is None and self._synthetic is None:
            self.open()
        if self._input is not None:
            self._run_input(self._input, emit)
        else:
            self._run_synthetic(*self._synthetic, emit)

    def _emit_frames(
        self, info: StreamInfo, pictures: Iterator[tuple[np.ndarray, int | None, Any]], emit: Emit
    ) -> int:
        """Emit ``StreamStart``, the frames (up to ``max_frames``) and ``StreamEnd``; the count.

        ``pictures`` yields (HxWx3 uint8 RGB image, pts in ``info.time_base``, HxW mask or None).
        """
        emit(StreamStart(info))
        count = 0
        for image, pts, mask in pictures:
            if self._stop.is_set():
                break
            frame = Frame(
                image=image, index=count, stream=info.id, pts=pts, time_base=info.time_base
            )
            if mask is not None:
                frame.mask = mask
            emit(frame)
            count += 1
            if count == self.options.max_frames:
                break
        emit(StreamEnd(info.id))
        return count

    def _run_input(self, source: _Input, emit: Emit) -> None:
        stream = source.stream
        options = self.options
        resample = options.fps and source.kind != "webcam"  # a webcam was asked for the rate
        rate = Fraction(options.fps).limit_denominator(1001) if resample else None
        width, height = scaled_size(
            stream.codec_context.width, stream.codec_context.height, self._size
        )
        info = StreamInfo(
            id=source.name,
            name=source.name,
            uri=source.uri,
            width=width,
            height=height,
            rate=rate or stream.average_rate or stream.guessed_rate,
            time_base=1 / rate if rate else stream.time_base,
            live=options.live is not None,
            container=source.container if source.is_file else None,
        )
        reader = _FrameReader(source, options.start)
        frames = reader.frames()
        session = None
        if options.live is not None and source.reconnects:
            frames = session = self._reconnecting(source, reader)
        elif options.live is not None and source.kind == "lavfi":
            frames = paced(frames, lambda frame: frame.time, self._stop)
        if rate is not None:
            frames = _resample(frames, rate)
        pictures = (
            (frame.to_ndarray(format="rgb24", width=width, height=height), frame.pts, None)
            for frame in frames
        )
        count = self._emit_frames(info, pictures, emit)
        if session is not None and session.lost:
            raise InputError(session.lost)  # after StreamEnd: the outputs so far are complete
        if not self._stop.is_set() and count != options.max_frames:
            reader.warn_if_incomplete()

    def _reconnecting(self, source: _Input, reader: _FrameReader) -> Reconnecting:
        """The frames of a live camera or network stream, reopened when lost (``live.py``)."""
        stream = source.stream
        return Reconnecting(
            source.uri,
            reader,
            lambda: _FrameReader(_Input(self.options.uri, self.options), 0.0),
            self.options.reconnect,
            Timeline(stream.time_base, stream.average_rate or stream.guessed_rate or 25),
            endless=source.container.duration is None,
            stop=self._stop,
            stats=self.context.stats,
        )

    def _run_synthetic(self, video: Any, rate: int, emit: Emit) -> None:
        width, height = video.size
        info = StreamInfo(
            id="synthetic",
            name="synthetic",
            uri=self.options.uri,
            width=width,
            height=height,
            rate=Fraction(rate),
            time_base=Fraction(1, rate),
            live=self.options.live is not None,
        )
        pictures = ((sample.image, sample.index, sample.mask) for sample in video)
        if self.options.live is not None:  # a live camera: frames at its rate, in real time
            pictures = paced(pictures, lambda picture: picture[1] / rate, self._stop)
        self._emit_frames(info, pictures, emit)


class _FrameReader:
    """Decoded frames of an input's video stream from ``start`` seconds on.

    A damaged packet is skipped and a read error ends the stream; ``warn_if_incomplete``
    then reports what was lost, as does a file whose frames end well before its duration.
    """

    def __init__(self, source: _Input, start: float) -> None:
        self.source = source
        stream = source.stream
        self._origin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        self._start = self._origin + start
        self.damaged = 0
        self.read_error: str | None = None
        self.end = self._origin
        if start > 0 and source.is_file:
            # where the file cannot seek, the frames before start are decoded and dropped
            with contextlib.suppress(av.error.FFmpegError):
                source.container.seek(int(self._start / stream.time_base), stream=stream)

    def close(self) -> None:
        self.source.container.close()

    def frames(self) -> Iterator[av.VideoFrame]:
        stream = self.source.stream
        frame_duration = 1 / float(stream.average_rate or stream.guessed_rate or 25)
        try:
            for packet in self.source.container.demux(stream):
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
                    yield frame
        except av.error.FFmpegError as error:
            self.read_error = _describe(error)

    def warn_if_incomplete(self) -> None:
        source, stream = self.source, self.source.stream
        if stream.duration is not None:
            expected = float(stream.duration * stream.time_base)
        elif source.container.duration is not None:
            expected = source.container.duration / av.time_base
        else:
            expected = None
        problems = []
        if self.read_error:
            problems.append(f"read error ({self.read_error})")
        if self.damaged:
            problems.append(f"{self.damaged} damaged packet(s) skipped")
        elapsed = self.end - self._origin
        if expected is not None and source.is_file and elapsed < expected - _TRUNCATION_TOLERANCE:
            problems.append(f"frames end at {elapsed:.2f} s of {expected:.2f} s")
        if problems:
            log.warning("%s: truncated or damaged: %s", source.uri, "; ".join(problems))


def _resample(frames: Iterator[av.VideoFrame], rate: Fraction) -> Iterator[av.VideoFrame]:
    """Frames at a constant ``rate`` (FFmpeg's ``fps`` filter: drops or repeats frames).

    The frames come out with time base ``1/rate``.
    """
    graph = None
    for frame in frames:
        if graph is None:
            graph = av.filter.Graph()
            source = graph.add_buffer(
                width=frame.width,
                height=frame.height,
                format=frame.format,
                time_base=frame.time_base,
            )
            fps = graph.add("fps", f"{rate.numerator}/{rate.denominator}")
            sink = graph.add("buffersink")
            source.link_to(fps)
            fps.link_to(sink)
            graph.configure()
        graph.push(frame)
        yield from _pull_all(graph)
    if graph is not None:
        graph.push(None)
        yield from _pull_all(graph)


def _pull_all(graph: av.filter.Graph) -> Iterator[av.VideoFrame]:
    while True:
        try:
            yield graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
