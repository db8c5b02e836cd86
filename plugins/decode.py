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
                        ``rate`` (25 frames/s), ``preset`` (``default``; the presets of
                        ``ianet-stream synth``), e.g. ``synthetic:seed=3,size=320x192,frames=48``

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
from ianet_stream.stage import Context, Emit, Liveness, LiveOptions, Source
from ianet_stream.uris import parse_uri, redact
from ianet_stream.video import (
    DEFAULT_MAX_PIXELS,
    MIN_SIDE,
    PipeReader,
    VideoReader,
    describe_error,
)
from ianet_stream_plugins.live import (
    NETWORK_TIMEOUT_S,
    Reconnecting,
    ReconnectOptions,
    Timeline,
    check_camera,
    combined,
    is_fifo,
    liveness,
    network_options,
    paced,
    reconnects,
    timeout_reason,
    webcam_input,
)
from ianet_stream_plugins.multiplex import Multiplexer

log = logging.getLogger(__name__)

_HW_DEVICES = tuple(t.name for t in av.codec.hwaccel.HWDeviceType if t.name != "none")


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
    autorotate: bool = field(
        default=True,
        metadata={"help": "turn frames upright by their rotation metadata (phone clips)"},
    )
    max_pixels: int | None = field(
        default=DEFAULT_MAX_PIXELS,
        metadata={
            "help": "refuse frames larger than this many pixels (default 4K UHD); scale them "
            "with size instead; none: no limit"
        },
    )
    hwaccel: str | None = field(
        default=None,
        metadata={"help": "hardware decoding, e.g. 'cuda'; falls back to software with a warning"},
    )
    live: LiveOptions | bool | None = field(
        default=None,
        metadata={
            "help": "true, false or {policy: latest|all, max_latency_ms}; none decides: cameras, "
            "rtsp/rtmp/udp/srt and live HTTP streams keep the newest frames, stdin and named "
            "pipes lose none, files (also over http) are not live; live lavfi:/synthetic: "
            "inputs play at their frame rate"
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
            parse_size(self.size, minimum=MIN_SIDE)
        if self.max_pixels is not None and self.max_pixels < MIN_SIDE * MIN_SIDE:
            raise ValueError(f"max_pixels: expected at least {MIN_SIDE * MIN_SIDE}")
        if self.hwaccel is not None and self.hwaccel not in _HW_DEVICES:
            raise ValueError(
                f"hwaccel: expected one of {', '.join(_HW_DEVICES)}, got {self.hwaccel!r}"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: expected seconds > 0, got {self.timeout_s}")


class _Input:
    """An open PyAV input: its reader, what it is called, and how it is read."""

    def __init__(self, uri: str, options: DecodeOptions, stop: threading.Event) -> None:
        parsed = parse_uri(uri)
        self.uri, self.name = redact(uri), parsed.name  # messages never show credentials
        self.kind, self.reconnects = parsed.kind, reconnects(parsed)
        self.pipe = parsed.kind == "stdio" or (parsed.kind == "file" and is_fifo(uri))
        self.is_file = parsed.kind == "file" and not self.pipe
        size = parse_size(options.size) if options.size is not None else None
        source: Any = parsed.target
        format, settings, timeout = None, {}, None
        if parsed.kind == "stdio":
            source = PipeReader(sys.stdin.fileno(), "stdin", stop)
        elif self.pipe:
            source = PipeReader.open_fifo(uri, stop)
        elif parsed.kind == "lavfi":
            format = "lavfi"
        elif parsed.kind == "folder":
            raise InputError(
                f"{uri}: is a folder; decode reads one video "
                "(give the folder to 'ianet-stream run --input' to run one pipeline per clip)"
            )
        elif parsed.kind == "webcam":
            source, format, settings = webcam_input(
                parsed.target, options.pixel_format, size, options.fps
            )
            check_camera(source)
            timeout = options.timeout_s
        elif parsed.kind == "network":
            settings = network_options(uri, options.transport, options.timeout_s)
            timeout = options.timeout_s
        else:
            self._check_file(Path(uri))
        accel = _hardware_decoder(options.hwaccel) if options.hwaccel else None
        started = time.monotonic()
        try:
            self.reader = VideoReader(
                source,
                self.uri,
                format=format,
                options=settings,
                timeout=timeout,
                hwaccel=accel,
                start=options.start,
                size=None if parsed.kind == "webcam" and isinstance(size, tuple) else size,
                autorotate=options.autorotate,
                max_pixels=options.max_pixels,
                is_file=self.is_file,
            )
        except InputError as error:
            if self.reconnects and isinstance(error.__cause__, Exception):
                reason = timeout_reason(error.__cause__, time.monotonic() - started, timeout)
                if reason is not None:
                    raise InputError(f"{self.uri}: {reason}") from None
            raise
        stream = self.reader.stream
        if accel is not None and not stream.codec_context.is_hwaccel:
            log.warning(
                "%s: no %s decoder for %s; decoding in software",
                self.uri,
                options.hwaccel,
                stream.codec_context.name,
            )
        if self.pipe:
            self._check_pipe()

    def _check_pipe(self) -> None:
        """A pipe is read in one pass: say at once when its container needs seeking (an
        mp4 whose index comes last), and that its audio is not kept."""
        container = self.reader.container
        if self.reader.first_frame() is None and self.reader.read_error is not None:
            if "mp4" in container.format.name or "mov" in container.format.name:
                raise InputError(
                    f"{self.uri}: an mp4/mov whose index (moov) comes after the video cannot be "
                    "read from a pipe; pipe a streamable container (ffmpeg -i clip.mp4 -f nut -) "
                    "or an mp4 with its index first (ffmpeg -i clip.mp4 -c copy -movflags "
                    "+faststart fixed.mp4)"
                )
            raise InputError(f"{self.uri}: {self.reader.read_error}")
        if container.streams.audio:
            log.warning("%s: its audio is not kept (audio is copied from files only)", self.uri)

    @property
    def duration(self) -> float | None:
        """The input's announced duration in seconds (None: endless or unknown)."""
        duration = self.reader.container.duration
        return None if duration is None else duration / av.time_base

    @staticmethod
    def _check_file(path: Path) -> None:
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.is_dir():
            raise InputError(f"{path}: is a folder")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file")


def _hardware_decoder(device: str) -> av.codec.hwaccel.HWAccel | None:
    """A hardware-decoding setting for ``device``, or ``None`` (with a warning) without one."""
    accel = av.codec.hwaccel.HWAccel(device, allow_software_fallback=True)
    try:
        accel.create(av.Codec("h264", "r"))  # opens the device once: is it there?
    except (av.error.FFmpegError, NotImplementedError) as error:
        log.warning(
            "hwaccel %s unavailable (%s); decoding in software", device, describe_error(error)
        )
        return None
    return accel


class Decode(Source):
    """Decodes one input (or several, one stream each) to uint8 RGB frames with their
    timestamps."""

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

    def __init__(self, options: DecodeOptions, context: Context) -> None:
        super().__init__(options, context)
        self._stop = threading.Event()
        self._input: _Input | None = None
        self._synthetic: tuple[Any, int] | None = None
        self._liveness: Liveness | None = None
        self._inputs: Multiplexer | None = None  # a list of URIs: one Decode per input
        if isinstance(options.uri, list):
            inputs = [Decode(replace(options, uri=uri), context) for uri in options.uri]
            self._inputs = Multiplexer(inputs, options.uri)

    def open(self) -> None:
        """Open the input: errors about it surface here, before the pipeline starts."""
        if self._inputs is not None:
            self._inputs.open()
        elif self.options.uri.startswith("synthetic:"):
            self._synthetic = _synthetic_video(self.options.uri)
        else:
            self._input = _Input(self.options.uri, self.options, self._stop)

    def live(self) -> Liveness:
        """Whether the input is live (``live.liveness``), decided once it is open."""
        if self._liveness is None:
            if self._inputs is not None:
                self._liveness = combined([source.live() for source in self._inputs.sources])
            else:
                duration = self._input.duration if self._input is not None else None
                self._liveness = liveness(self.options.live, self.options.uri, duration)
        return self._liveness

    def close(self) -> None:
        if self._inputs is not None:
            self._inputs.close()
        if self._input is not None:
            self._input.reader.close()
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
        reader, options = source.reader, self.options
        live = self.live().options
        resample = options.fps and source.kind != "webcam"  # a webcam was asked for the rate
        rate = Fraction(options.fps).limit_denominator(1001) if resample else None
        first = reader.first_frame()
        width, height = reader.picture_size(first) if first is not None else (0, 0)
        info = StreamInfo(
            id=source.name,
            name=source.name,
            uri=source.uri,
            width=width,
            height=height,
            rate=rate or reader.rate,
            time_base=1 / rate if rate else reader.stream.time_base,
            live=live is not None,
            audio=options.uri if source.is_file else None,
            frames=None if live is not None else self._expected(source, rate),
        )
        frames = reader.frames()
        session = None
        if live is not None and source.reconnects:
            frames = session = self._reconnecting(source)
        elif live is not None and source.kind == "lavfi" and self.options.live is not None:
            frames = paced(frames, lambda frame: frame.time, self._stop)
        if rate is not None:
            frames = _resample(frames, rate)
        pictures = ((reader.to_rgb(frame), frame.pts, None) for frame in frames)
        count = self._emit_frames(info, pictures, emit)
        if session is not None and session.lost:
            raise InputError(session.lost)  # after StreamEnd: the outputs so far are complete
        complete = self._stop.is_set() or count == options.max_frames
        if not complete and (problems := reader.problems()):
            log.warning("%s: truncated or damaged: %s", source.uri, "; ".join(problems))

    def _expected(self, source: _Input, rate: Fraction | None) -> int | None:
        """How many frames the input will give: its frame count, or its duration at its
        rate (after ``start``, up to ``max_frames``); None when it does not say."""
        stream, options = source.reader.stream, self.options
        if rate is None and stream.frames and not options.start:
            count = stream.frames
        elif source.duration is not None and (rate or source.reader.rate):
            count = round((source.duration - options.start) * float(rate or source.reader.rate))
        else:
            return None
        return self._limited(max(0, count))

    def _limited(self, count: int | None) -> int | None:
        """``count`` frames (None: endless) cut to ``max_frames``."""
        if count is None:
            return self.options.max_frames
        return count if self.options.max_frames is None else min(count, self.options.max_frames)

    def _reconnecting(self, source: _Input) -> Reconnecting:
        """The frames of a live camera or network stream, reopened when lost (``live.py``)."""
        reader = source.reader
        return Reconnecting(
            source.uri,
            reader,
            lambda: _Input(self.options.uri, replace(self.options, start=0.0), self._stop).reader,
            self.options.reconnect,
            Timeline(reader.stream.time_base, reader.rate or 25),
            endless=source.duration is None,
            stop=self._stop,
            stats=self.context.stats,
            report=lambda state: self.context.report(source.name, state),
        )

    def _run_synthetic(self, video: Any, rate: int, emit: Emit) -> None:
        width, height = video.size
        live = self.live().options
        info = StreamInfo(
            id="synthetic",
            name="synthetic",
            uri=self.options.uri,
            width=width,
            height=height,
            rate=Fraction(rate),
            time_base=Fraction(1, rate),
            live=live is not None,
            frames=self._limited(video.frames),
        )
        pictures = ((sample.image, sample.index, sample.mask) for sample in video)
        if live is not None:  # a live camera: frames at its rate, in real time
            pictures = paced(pictures, lambda picture: picture[1] / rate, self._stop)
        self._emit_frames(info, pictures, emit)


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
