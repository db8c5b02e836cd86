"""Outputs for live use: pushes to real receivers on loopback (FFmpeg's RTSP and RTMP servers
in listen mode, MPEG-TS readers on UDP and TCP), errors that name the URL without its secrets, and a
stdout stream whose frames arrive while they are made."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from ianet_stream.config import parse_pipeline
from ianet_stream.runner import run_pipeline
from ianet_stream_plugins.encode import EncodeOptions, container_options, push_url

TESTSRC = "lavfi:testsrc2=size=160x120:rate=15:duration=2"  # 30 frames
FRAMES = 30
_LISTENING = {"tcp": "0A", "udp": "07"}  # socket states in /proc/net/{tcp,udp}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_bound(port: int, protocol: str, seconds: float = 10.0) -> None:
    """Wait until a socket of this machine listens on (tcp) or is bound to (udp) ``port``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state == _LISTENING[protocol]:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing bound {protocol} port {port}")


class Receiver(threading.Thread):
    """Opens ``url`` with PyAV (a server or reader) and decodes its video until it ends."""

    def __init__(self, url: str, **open_arguments) -> None:
        super().__init__(daemon=True)
        self.url, self.open_arguments = url, open_arguments
        self.pictures: list[np.ndarray] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with av.open(self.url, **self.open_arguments) as container:
                for frame in container.decode(video=0):
                    self.pictures.append(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as error:  # a reader's timeout after the sender has gone
            self.error = error


def push(url: str, **options) -> dict:
    """Run ``decode TESTSRC -> encode url``; the run's summary."""
    spec = parse_pipeline(
        {"stages": [{"decode": {"uri": TESTSRC}}, {"encode": {"path": url, **options}}]}
    )
    return run_pipeline(spec, quiet=True, signals=()).as_dict()


@pytest.fixture(scope="module")
def testsrc_pictures() -> list[np.ndarray]:
    with av.open(TESTSRC.removeprefix("lavfi:"), format="lavfi") as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def assert_received(receiver: Receiver, testsrc_pictures: list[np.ndarray], least: int) -> None:
    receiver.join(20)
    assert not receiver.is_alive()
    assert len(receiver.pictures) >= least
    assert {picture.shape for picture in receiver.pictures} == {(120, 160, 3)}
    # the pictures are the source's: testsrc2's first frame, through a lossy codec
    difference = np.abs(receiver.pictures[0].astype(int) - testsrc_pictures[0]).mean()
    assert difference < 8


# FFmpeg's own servers: RTSP in record mode, RTMP (which ends its input with an I/O error)
_SERVERS = {
    "rtsp": {"options": {"rtsp_flags": "listen", "listen_timeout": "15"}},
    "rtmp": {"format": "flv", "options": {"listen": "1", "timeout": "15"}},
}


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_push_to_an_ffmpeg_server(scheme: str, testsrc_pictures) -> None:
    port = free_port()
    url = f"{scheme}://127.0.0.1:{port}/live/stream"
    server = Receiver(url, **_SERVERS[scheme])
    server.start()
    wait_until_bound(port, "tcp")
    summary = push(url)
    assert summary["status"] == "done", summary
    assert_received(server, testsrc_pictures, least=FRAMES)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_mpegts_push_to_a_reader(protocol: str, testsrc_pictures) -> None:
    port = free_port(socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM)
    if protocol == "udp":  # the reader gives up 1 s after the last datagram
        reader_url = f"udp://127.0.0.1:{port}?timeout=1000000&fifo_size=100000"
    else:
        reader_url = f"tcp://127.0.0.1:{port}?listen=1&listen_timeout=15000"
    reader = Receiver(reader_url, format="mpegts")
    reader.start()
    wait_until_bound(port, protocol)
    summary = push(f"{protocol}://127.0.0.1:{port}")
    assert summary["status"] == "done", summary
    # UDP may lose a datagram on a busy machine; TCP loses nothing
    assert_received(reader, testsrc_pictures, least=FRAMES - 5 if protocol == "udp" else FRAMES)


def test_refused_push_names_the_url_without_its_password() -> None:
    port = free_port()  # nothing listens there
    summary = push(f"rtsp://viewer:s3cret@127.0.0.1:{port}/live")
    assert summary["status"] == "failed"
    error = summary["error"]
    assert "\n" not in error and "s3cret" not in error
    assert f"rtsp://viewer:***@127.0.0.1:{port}/live: cannot push (Connection refused)" in error


def test_missing_protocol_is_one_clear_line() -> None:
    port = free_port(socket.SOCK_DGRAM)
    summary = push(f"srt://127.0.0.1:{port}?passphrase=hunter2hunter2", low_latency=True)
    assert summary["status"] == "failed"
    error = summary["error"]
    assert "\n" not in error and "hunter2" not in error
    assert f"srt://127.0.0.1:{port}?passphrase=***" in error
    # PyAV's wheels have no libsrt; an FFmpeg with it finds no listener instead
    assert "has no srt protocol" in error or "cannot push" in error


def test_push_options_and_their_defaults() -> None:
    rtsp = EncodeOptions(path="rtsp://cam.local:8554/out")
    assert rtsp.container == "rtsp" and rtsp.is_live
    assert container_options(rtsp)["rtsp_transport"] == "tcp"
    udp_rtsp = EncodeOptions(path="rtsp://h/o", muxer_options={"rtsp_transport": "udp"})
    assert container_options(udp_rtsp)["rtsp_transport"] == "udp"
    assert EncodeOptions(path="rtmp://h/app/key").container == "flv"
    assert push_url(EncodeOptions(path="udp://239.0.0.1:5000")).endswith("?pkt_size=1316")
    assert push_url(EncodeOptions(path="udp://h:5000?pkt_size=188")) == "udp://h:5000?pkt_size=188"
    assert EncodeOptions(path="tcp://h:9000", format="nut").container == "nut"
    assert not EncodeOptions(path="out.mkv").is_live
    for streaming in ("mkv", "nut", "ts", "flv"):
        assert EncodeOptions(path="-", format=streaming).is_live
    for impossible in (
        {"path": "rtsp://h/o", "format": "mkv"},
        {"path": "udp://h:5000", "format": "mp4"},
        {"path": "out.rtsp"},
        {"path": "out.mp4", "gop": 0},
    ):
        with pytest.raises(ValueError):
            EncodeOptions(**impossible)


_SLOW_WRITER = """
import sys, time
from ianet_stream.frame import Frame, StreamEnd, StreamStart
from ianet_stream.stage import Context
from ianet_stream_plugins.decode import Decode, DecodeOptions
from ianet_stream_plugins.encode import Encode, EncodeOptions
sink = Encode(EncodeOptions(path="-", format=sys.argv[1]), Context())
def emit(message):
    if isinstance(message, StreamStart):
        sink.start_stream(message.info)
    elif isinstance(message, StreamEnd):
        print(time.monotonic(), file=sys.stderr, flush=True)
        sink.end_stream(message.stream)
    else:
        sink.process([message])
        time.sleep(0.15)
source = Decode(DecodeOptions(uri="lavfi:testsrc2=size=160x120:rate=15:duration=0.8"), Context())
source.open(); source.run(emit); source.close(); sink.close()
"""


@pytest.mark.parametrize(("container", "muxer"), [("mkv", "matroska"), ("nut", "nut")])
def test_stdout_streams_frames_as_they_are_made(container: str, muxer: str) -> None:
    """A writer handing a frame every 0.15 s: most frames reach a player before the last one
    is handed over (a buffered stream would deliver them all at the end)."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, container],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    arrivals: list[float] = []
    # a player reading the pipe as `ffplay -probesize 32 -` does, without waiting to probe
    player_options = {"probesize": "32", "analyzeduration": "1"}
    pipe = f"pipe:{writer.stdout.fileno()}"
    with av.open(pipe, format=muxer, options=player_options) as player:
        player.streams.video[0].thread_count = 1
        for _ in player.decode(video=0):
            arrivals.append(time.monotonic())
    _, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors.decode()
    last_handed = float(errors.decode().split()[-1])
    assert len(arrivals) == 12
    assert sum(arrival < last_handed for arrival in arrivals) >= 6
