"""Live inputs for the decode source: cameras, network streams and pipes.

What makes an input live (``liveness``), how FFmpeg is asked to open a camera
(``webcam_input``) or a network stream (``network_options``, with timeouts that fire),
pacing a generated source at its frame rate (``paced``), and reading a camera or stream
across lost connections (``Reconnecting``): the input is reopened with exponential back-off
and the frames' timestamps continue after the last frame's, in one time base, so that an
encoder downstream writes one valid file across the gap.
"""

from __future__ import annotations

import logging
import os
import platform
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import av

from ianet_stream.errors import InputError
from ianet_stream.stage import Liveness, LiveOptions
from ianet_stream.uris import Uri, parse_uri

log = logging.getLogger(__name__)

NETWORK_TIMEOUT_S = 10.0  # open and read timeout of cameras and network streams by default
FILE_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "sftp"})  # may serve a plain file
_COMPRESSED_CAMERA_FORMATS = frozenset({"mjpeg", "h264", "hevc"})
_counter_lock = threading.Lock()
T = TypeVar("T")


@dataclass
class ReconnectOptions:
    """How a live camera or network stream is reopened after an error or a silence."""

    first_delay_s: float = field(
        default=0.5, metadata={"help": "wait before the first reconnection attempt (seconds)"}
    )
    max_delay_s: float = field(
        default=10.0, metadata={"help": "the wait doubles after each failed attempt, up to this"}
    )
    attempts: int = field(
        default=10,
        metadata={"help": "failed attempts in a row before giving up; 0: never reconnect"},
    )

    def __post_init__(self) -> None:
        if self.first_delay_s < 0:
            raise ValueError(f"first_delay_s: expected seconds >= 0, got {self.first_delay_s}")
        if self.max_delay_s < self.first_delay_s:
            raise ValueError(
                f"max_delay_s: expected >= first_delay_s ({self.first_delay_s}), "
                f"got {self.max_delay_s}"
            )
        if self.attempts < 0:
            raise ValueError(f"attempts: expected a number >= 0, got {self.attempts}")

    def delays(self) -> Iterator[float]:
        """The wait before each attempt: ``first_delay_s``, doubling up to ``max_delay_s``."""
        delay = self.first_delay_s
        for _ in range(self.attempts):
            yield delay
            delay = min(2 * delay, self.max_delay_s)


def is_fifo(path: str | Path) -> bool:
    """Whether ``path`` is a named pipe."""
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def liveness(live: LiveOptions | bool | None, uri: str, duration: float | None = None) -> Liveness:
    """Whether an input is live, and why: the ``live`` option, else what the input is.

    ``True`` is the default ``LiveOptions``, ``False`` none. ``None`` decides by the input
    (``duration``: its announced length in seconds, once open): cameras, streaming
    protocols (rtsp, rtmp, udp, srt, ...) and HTTP/FTP inputs without a duration (a live
    HLS playlist) are live and keep the newest frames; stdin and named pipes are live
    without dropping frames (``policy: all``: ``cat clip.mp4 | ...`` must lose nothing;
    give ``live: {policy: latest}`` for a real-time producer); files, files served over
    HTTP or FTP (they have a duration), ``lavfi:`` and ``synthetic:`` are not.
    """
    if isinstance(live, LiveOptions):
        return Liveness(live, f"live: {{policy: {live.policy}}} in the pipeline")
    if live is not None:
        return Liveness(LiveOptions(), "live: true") if live else Liveness(None, "live: false")
    parsed = parse_uri(uri)
    if parsed.kind == "webcam":
        return Liveness(LiveOptions(), "a camera")
    if parsed.kind == "network":
        scheme = parsed.target.split(":", 1)[0].lower()
        if scheme in FILE_SCHEMES and duration is not None:
            return Liveness(None, f"a {duration:.1f} s file over {scheme}")
        return Liveness(LiveOptions(), f"a live {scheme} stream")
    if parsed.kind == "stdio":
        return Liveness(LiveOptions(policy="all"), "stdin: a pipe, every frame kept")
    if parsed.kind == "file" and is_fifo(parsed.target):
        return Liveness(LiveOptions(policy="all"), "a named pipe, every frame kept")
    described = {"lavfi": "an FFmpeg graph", "synthetic": "the synthetic generator"}
    return Liveness(None, described.get(parsed.kind, "a file"))


def combined(inputs: Sequence[Liveness]) -> Liveness:
    """One pipeline's liveness for several inputs: the freshest policy any of them needs."""
    for policy in ("latest", "all"):
        for live in inputs:
            if live.options is not None and live.options.policy == policy:
                return Liveness(live.options, f"{live.reason} (one of {len(inputs)} inputs)")
    return Liveness(None, ", ".join(sorted({live.reason for live in inputs})))


def reconnects(uri: Uri) -> bool:
    """Whether an input of this kind is reopened when it is lost (cameras, network)."""
    return uri.kind in ("webcam", "network")


class CaptureInput(NamedTuple):
    """What ``av.open`` is given to read a camera: the device, the format and its options."""

    device: str
    format: str
    options: dict[str, str]


def webcam_input(
    target: str,
    pixel_format: str | None = None,
    size: tuple[int, int] | int | None = None,
    fps: float | None = None,
    system: str | None = None,
) -> CaptureInput:
    """How FFmpeg opens the camera ``target`` (``webcam:TARGET``) on ``system``.

    Linux: video4linux2, ``0`` or ``/dev/video0``, the pixel format as ``input_format``
    (``mjpeg``, ``yuyv422``); macOS: avfoundation, the device index or name; Windows:
    dshow, the device name (``video=NAME``), compressed formats as ``vcodec``. ``size``
    (width, height) and ``fps`` are asked of the device (``video_size``, ``framerate``); a
    single number (a short side to scale to) is not.
    """
    system = system or platform.system()
    options: dict[str, str] = {}
    if isinstance(size, tuple):
        options["video_size"] = f"{size[0]}x{size[1]}"
    if fps is not None:
        options["framerate"] = f"{fps:g}"
    if system == "Linux":
        if not (target.isdigit() or target.startswith("/dev/")):
            raise InputError(f"webcam:{target}: expected a camera number or a /dev/video* path")
        device = f"/dev/video{target}" if target.isdigit() else target
        if pixel_format:
            options["input_format"] = pixel_format
        return CaptureInput(device, "v4l2", options)
    if system == "Darwin":
        if pixel_format:
            options["pixel_format"] = pixel_format
        return CaptureInput(target, "avfoundation", options)
    if system == "Windows":
        name = target.removeprefix("video=")
        if name.isdigit():
            raise InputError(
                f"webcam:{target}: DirectShow opens cameras by name: webcam:video=NAME "
                "('ffmpeg -list_devices true -f dshow -i dummy' lists them)"
            )
        if pixel_format:
            key = "vcodec" if pixel_format in _COMPRESSED_CAMERA_FORMATS else "pixel_format"
            options[key] = pixel_format
        return CaptureInput(f"video={name}", "dshow", options)
    raise InputError(f"webcam:{target}: cameras are read on Linux, macOS and Windows, not {system}")


def check_camera(device: str, system: str | None = None) -> None:
    """Fail at once, naming it, when a Linux camera device does not exist."""
    if (system or platform.system()) == "Linux" and not os.path.exists(device):
        raise InputError(f"{device}: no such camera device")


def network_options(
    url: str, transport: str = "tcp", timeout_s: float = NETWORK_TIMEOUT_S
) -> dict[str, str]:
    """FFmpeg's options to open a network stream at ``url`` with ``timeout_s`` for the
    connection and every read: RTSP's ``timeout`` and its ``rtsp_transport``; the generic
    ``rw_timeout`` of FFmpeg's protocols (HTTP, HLS, UDP, SRT, RTMP, TCP). Microseconds."""
    microseconds = str(round(timeout_s * 1_000_000))
    if url.split(":", 1)[0].lower() in ("rtsp", "rtsps"):
        return {"rtsp_transport": transport, "timeout": microseconds}
    return {"rw_timeout": microseconds}


def timeout_reason(error: Exception, elapsed: float, timeout_s: float) -> str | None:
    """``no answer within N s`` when an FFmpeg error came from a timeout, else ``None``.

    PyAV's timeout interrupts FFmpeg (``ExitError``); a protocol's own raises
    ``TimeoutError``, or a silent RTSP server leaves "invalid data" once the time is up.
    """
    if isinstance(error, av.error.ExitError | TimeoutError) or elapsed >= 0.9 * timeout_s:
        return f"no answer within {timeout_s:g} s"
    return None


def paced(
    items: Iterable[T], seconds: Callable[[T], float | None], stop: threading.Event
) -> Iterator[T]:
    """``items`` released in real time, each once ``seconds(item)`` (its presentation
    time) have passed since the first one's; items without a time go at once."""
    clock: tuple[float, float] | None = None  # (monotonic time, presentation time) of the first
    for item in items:
        due = seconds(item)
        if due is not None:
            if clock is None:
                clock = (time.monotonic(), due)
            if stop.wait(max(0.0, clock[0] + due - clock[1] - time.monotonic())):
                return
        yield item


def count(stats: dict[str, Any], key: str) -> None:
    """Add one to ``stats[key]`` (the run's table shows it); safe across input threads."""
    with _counter_lock:
        stats[key] = stats.get(key, 0) + 1


class Connection(Protocol):
    """One open connection to an input: its decoded frames, why they ended, ``close``."""

    read_error: str | None

    def frames(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class Timeline:
    """Presentation timestamps in one time base that keep increasing across connections.

    Within a connection a frame keeps its distance from the connection's first frame; the
    first frame of a connection comes one frame duration after the last frame placed.
    """

    def __init__(self, time_base: Fraction, rate: Fraction | float) -> None:
        self.time_base = time_base
        self.frame_duration = max(1, round(1 / (Fraction(rate) * time_base)))
        self.last: int | None = None
        self._origin: tuple[int, int, Fraction] | None = None  # (its pts, placed at, time base)

    def restart(self) -> None:
        """A new connection begins: its first frame follows the last one placed."""
        self._origin = None

    def place(self, frame: Any) -> bool:
        """Give ``frame`` (an ``av.VideoFrame``) its timestamp on this timeline; ``False``
        (frame untouched) when it would not come after the last frame placed."""
        following = 0 if self.last is None else self.last + self.frame_duration
        if frame.pts is None or frame.time_base is None:
            pts = following
        elif self._origin is None:
            self._origin = (frame.pts, following, frame.time_base)
            pts = following
        else:
            first, placed_at, time_base = self._origin
            pts = placed_at + round((frame.pts - first) * time_base / self.time_base)
        if self.last is not None and pts <= self.last:
            return False
        frame.pts, frame.time_base, self.last = pts, self.time_base, pts
        return True


class Reconnecting:
    """The frames of a live input, reopened after an error, a silence or its end.

    ``first`` is the open connection; ``connect()`` opens a new one (raising ``InputError``
    when it cannot). After a lost connection the input is reopened after the delays of
    ``options``; each attempt is counted in ``stats["reconnects"]`` and logged (``uri`` is
    the redacted URI). Frames come out on ``timeline``. A connection that ends cleanly
    when the input has an end (``endless=False``: a file served over HTTP) ends the
    frames. When the attempts run out the frames end and ``lost`` holds the error message.
    ``report`` hears ``reconnecting`` when the connection is lost, ``running`` when it is
    back and ``failed`` when it is given up (the stream's health).
    """

    def __init__(
        self,
        uri: str,
        first: Connection,
        connect: Callable[[], Connection],
        options: ReconnectOptions,
        timeline: Timeline,
        *,
        endless: bool,
        stop: threading.Event,
        stats: dict[str, Any],
        report: Callable[[str], None] = lambda state: None,
    ) -> None:
        self.uri = uri
        self.lost: str | None = None
        self._first, self._connect = first, connect
        self._options, self._timeline = options, timeline
        self._endless, self._stop, self._stats = endless, stop, stats
        self._report = report

    def __iter__(self) -> Iterator[Any]:
        connection: Connection | None = self._first
        try:
            while connection is not None:
                self._timeline.restart()
                for frame in connection.frames():
                    if self._stop.is_set():
                        return
                    if self._timeline.place(frame):
                        yield frame
                    else:
                        count(self._stats, "drops")
                if self._stop.is_set() or (connection.read_error is None and not self._endless):
                    return
                connection.close()
                connection = self._reconnect(connection.read_error or "the stream ended")
        finally:
            if connection is not None:
                connection.close()

    def _reconnect(self, reason: str) -> Connection | None:
        """A new connection, or ``None`` when stopped or out of attempts (``lost`` set)."""
        attempts = self._options.attempts
        self._report("reconnecting")
        for attempt, delay in enumerate(self._options.delays(), start=1):
            log.warning(
                "%s: %s; reconnecting in %.1f s (attempt %d of %d)",
                self.uri,
                reason,
                delay,
                attempt,
                attempts,
            )
            if self._stop.wait(delay):
                return None
            count(self._stats, "reconnects")
            try:
                connection = self._connect()
            except InputError as error:
                reason = str(error).removeprefix(f"{self.uri}: ")
                continue
            log.warning("%s: reconnected", self.uri)
            self._report("running")
            return connection
        if attempts:
            self.lost = f"{self.uri}: lost after {attempts} reconnect attempts ({reason})"
        else:
            self.lost = f"{self.uri}: lost ({reason}; reconnect.attempts is 0)"
        self._report("failed")
        return None
