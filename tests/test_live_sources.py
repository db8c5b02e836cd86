"""Live inputs of the decode source: cameras (the options FFmpeg gets), network streams
(timeouts that fire, credentials kept out of messages), pipes, paced generators, and a real
RTSP camera on loopback (GStreamer's server, ``rtsp_server.py``) that goes away and comes
back while a pipeline records it."""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_decode import decode

from ianet.errors import InputError
from ianet_stream.config import parse_pipeline
from ianet_stream.errors import ConfigError
from ianet_stream.frame import Frame, StreamStart
from ianet_stream.stage import LiveOptions
from ianet_stream_plugins.live import (
    ReconnectOptions,
    Timeline,
    combined,
    liveness,
    network_options,
    webcam_input,
)

TESTS = Path(__file__).parent
SYSTEM_PYTHON = "/usr/bin/python3"
CAMERA_FPS = 15  # rtsp_server.py's frame rate
CLI = "import sys; from ianet_stream.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_webcam_capture_options_per_platform():
    linux = webcam_input("2", "mjpeg", (640, 480), 30, system="Linux")
    assert linux == (
        "/dev/video2",
        "v4l2",
        {"video_size": "640x480", "framerate": "30", "input_format": "mjpeg"},
    )
    assert webcam_input("/dev/video5", system="Linux") == ("/dev/video5", "v4l2", {})
    mac = webcam_input("0", "uyvy422", (1280, 720), 29.97, system="Darwin")
    assert mac == (
        "0",
        "avfoundation",
        {"video_size": "1280x720", "framerate": "29.97", "pixel_format": "uyvy422"},
    )
    windows = webcam_input("video=USB Camera", "mjpeg", 360, None, system="Windows")
    assert windows == ("video=USB Camera", "dshow", {"vcodec": "mjpeg"})  # 360: scaling only
    assert webcam_input("USB Camera", "yuyv422", system="Windows").options == {
        "pixel_format": "yuyv422"
    }
    with pytest.raises(InputError, match="DirectShow opens cameras by name"):
        webcam_input("0", system="Windows")
    with pytest.raises(InputError, match="not Plan9"):
        webcam_input("0", system="Plan9")


@pytest.mark.parametrize("uri", ["/dev/video9", "webcam:9"])
def test_a_missing_camera_fails_at_once_naming_the_device(uri):
    if os.path.exists("/dev/video9"):
        pytest.skip("this machine has a /dev/video9")
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        decode(uri)
    assert time.monotonic() - started < 1
    assert str(caught.value) == "/dev/video9: no such camera device"


def test_network_options_set_the_timeouts_and_the_rtsp_transport():
    assert network_options("rtsp://cam/live", "tcp", 2.5) == {
        "rtsp_transport": "tcp",
        "timeout": "2500000",
    }
    assert network_options("RTSPS://cam/live", "udp", 1)["rtsp_transport"] == "udp"
    assert network_options("https://cdn/live.m3u8", "tcp", 10) == {"rw_timeout": "10000000"}
    assert network_options("udp://239.0.0.1:1234", "tcp", 0.5) == {"rw_timeout": "500000"}


def test_live_is_decided_by_the_kind_of_input(tmp_path):
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    (tmp_path / "clip.mp4").write_bytes(b"")
    latest, keep_all = LiveOptions(), LiveOptions(policy="all")
    assert liveness(None, "rtsp://cam.local/stream") == (latest, "a live rtsp stream")
    assert liveness(None, "webcam:0").options == latest
    assert liveness(None, "/dev/video0").options == latest
    assert liveness(None, "https://cdn.example/live.m3u8").options == latest  # no duration
    assert liveness(None, "https://cdn.example/clip.mp4", 12.0) == (
        None,
        "a 12.0 s file over https",
    )
    assert liveness(None, "ftp://files.example/clip.mp4", 3.0).options is None
    assert liveness(None, "-").options == keep_all
    assert liveness(None, str(fifo)).options == keep_all
    assert liveness(None, str(tmp_path / "clip.mp4")) == (None, "a file")
    assert liveness(None, "synthetic:frames=2").options is None
    assert liveness(None, "lavfi:testsrc2").options is None
    assert liveness(True, "synthetic:frames=2").options == latest
    assert liveness(False, "rtsp://cam.local/stream").options is None
    mixed = combined([liveness(None, "-"), liveness(None, "rtsp://cam/x"), (None, "a file")])
    assert mixed.options == latest and mixed.policy == "latest"


def test_live_and_reconnect_options_from_yaml():
    def source_options(options: dict):
        raw = {"stages": [{"decode": options}, {"encode": {"path": "out.mp4"}}]}
        return parse_pipeline(raw).source.options

    options = source_options(
        {
            "uri": "rtsp://cam.local/stream",
            "live": {"policy": "all", "max_latency_ms": 200},
            "reconnect": {"first_delay_s": 1, "attempts": 0},
            "transport": "udp",
        }
    )
    assert options.live == LiveOptions(policy="all", max_latency_ms=200)
    assert options.reconnect == ReconnectOptions(first_delay_s=1.0, max_delay_s=10.0, attempts=0)
    assert source_options({"uri": "synthetic:", "live": True}).live is True
    with pytest.raises(ConfigError, match=r"stages\[0\]\.decode\.reconnect: attempts: expected"):
        source_options({"uri": "rtsp://cam/x", "reconnect": {"attempts": -1}})
    with pytest.raises(ConfigError, match=r"stages\[0\]\.decode\.transport: expected one of"):
        source_options({"uri": "rtsp://cam/x", "transport": "quic"})


def test_the_reconnect_delay_doubles_up_to_its_cap():
    assert list(ReconnectOptions(0.5, 2, 5).delays()) == [0.5, 1, 2, 2, 2]
    assert list(ReconnectOptions(attempts=0).delays()) == []
    with pytest.raises(ValueError, match="max_delay_s"):
        ReconnectOptions(first_delay_s=5, max_delay_s=1)


def test_timestamps_continue_after_the_last_frame_across_connections():
    timeline = Timeline(Fraction(1, 90000), 15)

    def place(pts: int | None, time_base: Fraction) -> int | None:
        frame = av.VideoFrame(16, 16, "rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame.pts if timeline.place(frame) else None

    first = [place(pts, Fraction(1, 90000)) for pts in (None, 96000, 102000, 108000)]
    timeline.restart()  # the camera is back, its clock starts again at another time base
    second = [place(pts, Fraction(1, 1000)) for pts in (40, 107, 107, 173)]
    assert first == [0, 6000, 12000, 18000]
    assert second == [24000, 30030, None, 35970]  # a frame not after the last is dropped


def test_a_live_synthetic_camera_produces_frames_in_real_time():
    started = time.monotonic()
    messages = decode("synthetic:rate=30,frames=16,size=64x48", live=True)
    elapsed = time.monotonic() - started
    frames = [m for m in messages if isinstance(m, Frame)]
    assert messages[0].info.live and len(frames) == 16
    assert elapsed >= 15 / 30 - 0.02
    captured = np.diff([frame.captured for frame in frames])
    assert abs(float(np.median(captured)) - 1 / 30) < 0.01
    assert [frame.pts for frame in frames] == list(range(16))

    started = time.monotonic()
    messages = decode("synthetic:rate=30,frames=16,size=64x48")
    assert not messages[0].info.live and time.monotonic() - started < 15 / 30


def test_a_named_pipe_is_read_as_a_live_stream(tmp_path):
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)

    def write() -> None:
        with av.open(str(fifo), "w", format="nut") as container:
            stream = container.add_stream("ffv1", rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
            for index in range(5):
                picture = np.full((24, 32, 3), 40 * index, np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            container.mux(stream.encode(None))

    writer = threading.Thread(target=write)
    writer.start()
    messages = decode(str(fifo))
    writer.join()
    frames = [m for m in messages if isinstance(m, Frame)]
    assert messages[0].info.live and messages[0].info.name == "feed"
    assert [round(float(f.image.mean()) / 40) for f in frames] == [0, 1, 2, 3, 4]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    "template",
    ["rtsp://user:secret@127.0.0.1:{port}/cam", "http://user:secret@127.0.0.1:{port}/live.m3u8"],
)
def test_a_silent_server_fails_within_the_timeout_without_the_password(silent_server, template):
    uri = template.format(port=silent_server)
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        decode(uri, timeout_s=1)
    assert 1 <= time.monotonic() - started < 1.5
    redacted = uri.replace(":secret@", ":***@")
    assert str(caught.value) == f"{redacted}: no answer within 1 s"


def test_a_closed_port_fails_at_once():
    uri = f"rtsp://user:secret@127.0.0.1:{free_port()}/cam"
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        decode(uri)
    assert time.monotonic() - started < 1
    assert str(caught.value) == f"{uri.replace(':secret@', ':***@')}: connection refused"


def _has_rtsp_server() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0
    except OSError:
        return False


needs_rtsp_server = pytest.mark.skipif(
    not _has_rtsp_server(),
    reason=f"{SYSTEM_PYTHON} cannot import GStreamer's RTSP server (apt: python3-gi "
    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base/good/ugly)",
)


class Camera:
    """``rtsp_server.py`` serving on ``port`` (with a user and password), in a process."""

    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(TESTS / "rtsp_server.py"), str(port), "--user", "user:secret"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.said = time.monotonic()
        try:
            self.wait_for("READY")
        except BaseException:
            self.kill()
            raise

    def wait_for(self, line: str, timeout: float = 30) -> None:
        """Wait for the server to print ``line`` (its next line)."""
        said, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert said, f"rtsp_server.py did not print {line} within {timeout} s"
        assert self.process.stdout.readline().strip() == line
        self.said = time.monotonic()

    def kill(self) -> float:
        """Stop serving at once; how long ago it said its last line."""
        self.process.kill()
        self.process.wait()
        return time.monotonic() - self.said


@pytest.fixture
def cameras() -> Iterator[list[Camera]]:
    """The cameras a test starts, all killed at its end."""
    started: list[Camera] = []
    yield started
    for camera in started:
        camera.kill()
        camera.process.stdout.close()


def start_recording(
    tmp_path: Path, cameras: list[Camera], reconnect: str, *options: str
) -> subprocess.Popen:
    """A new camera, and ``ianet-stream run`` recording it (decode -> encode to out.mp4,
    the summary in run.json, more ``options``) in a process; returns once frames flow."""
    port = free_port()
    cameras.append(Camera(port))
    config = tmp_path / "camera.yaml"
    config.write_text(
        "stages:\n"
        f"  - decode: {{uri: 'rtsp://user:secret@127.0.0.1:{port}/cam', timeout_s: 2, "
        f"reconnect: {reconnect}}}\n"
        f"  - encode: {{path: '{tmp_path / 'out.mp4'}', preset: ultrafast}}\n"
    )
    command = [sys.executable, "-c", CLI, "run", str(config), "--json", str(tmp_path / "run.json")]
    command += options
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cameras[0].wait_for("PLAYING")
    time.sleep(2.5)  # opening an RTSP stream reads about 2 s of it
    return run


def finish(run: subprocess.Popen, tmp_path: Path) -> tuple[str, dict, list[int]]:
    """Wait for the recording: its stderr, its summary and the pts of every frame it wrote,
    after checking that the password shows nowhere and that the pts increase."""
    out, err = run.communicate(timeout=30)
    report = json.loads((tmp_path / "run.json").read_text())
    assert "secret" not in out + err + json.dumps(report)
    assert (tmp_path / "out.mp4").is_file(), f"the recording was not kept: {err}"
    with av.open(str(tmp_path / "out.mp4")) as container:
        pts = [frame.pts for frame in container.decode(video=0)]
    assert all(b > a for a, b in itertools.pairwise(pts))
    return " ".join(err.split()), report, pts


@needs_rtsp_server
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_frames_from_an_rtsp_camera(cameras, transport):
    port = free_port()
    cameras.append(Camera(port))
    uri = f"rtsp://user:secret@127.0.0.1:{port}/cam"
    messages = decode(uri, max_frames=8, transport=transport)
    start, frames = messages[0], [m for m in messages if isinstance(m, Frame)]
    assert isinstance(start, StreamStart)
    assert start.info.live and start.info.rate == CAMERA_FPS
    assert start.info.uri == f"rtsp://user:***@127.0.0.1:{port}/cam"
    assert len(frames) == 8 and frames[0].image.shape == (120, 160, 3)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))


@needs_rtsp_server
def stream_state(metrics_port: int) -> str | None:
    """The state the Prometheus endpoint gives the recording's one stream."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ianet_stream_stream_state" and sample.value == 1:
                return sample.labels["state"]
    return None


def wait_for_state(
    run: subprocess.Popen, metrics_port: int, wanted: str, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    while (state := stream_state(metrics_port)) != wanted:
        if run.poll() is not None:
            _, err = run.communicate()
            pytest.fail(f"the recording ended (exit {run.returncode}) before {wanted}: {err}")
        assert time.monotonic() < deadline, f"the stream stayed {state}, not {wanted}"
        time.sleep(0.1)


@needs_rtsp_server
def test_a_recording_goes_on_when_the_camera_comes_back(tmp_path, cameras):
    metrics = free_port()
    run = start_recording(
        tmp_path, cameras, "{first_delay_s: 0.2, max_delay_s: 1, attempts: 6}",
        "--metrics-port", str(metrics),
    )  # fmt: skip
    port = int(cameras[0].process.args[2])
    wait_for_state(run, metrics, "running")
    first_session = cameras[0].kill() + 0.2  # a camera starts with its first client
    wait_for_state(run, metrics, "reconnecting")
    cameras.append(Camera(port))
    cameras[1].wait_for("PLAYING")  # the recording reconnected
    wait_for_state(run, metrics, "running")
    time.sleep(2.5)
    run.send_signal(signal.SIGINT)
    err, report, pts = finish(run, tmp_path)
    assert run.returncode == 130, err
    assert report["reconnects"] >= 1 and report["status"] == "interrupted"
    assert f"rtsp://user:***@127.0.0.1:{port}/cam: reconnected" in err
    assert len(pts) == report["frames"] > CAMERA_FPS * first_session + 2  # the second camera's too
    (stream,) = report["streams"]
    assert stream["state"] == "ended" and stream["frames_out"] == report["frames"]


@needs_rtsp_server
def test_a_camera_gone_for_good_fails_the_run_and_keeps_the_recording(tmp_path, cameras):
    run = start_recording(tmp_path, cameras, "{first_delay_s: 0.1, max_delay_s: 0.2, attempts: 2}")
    port = int(cameras[0].process.args[2])
    cameras[0].kill()
    gone = time.monotonic()
    err, report, pts = finish(run, tmp_path)
    assert time.monotonic() - gone < 10  # not the default 10 attempts of up to 10 s
    assert run.returncode == 1, err
    assert (
        f"decode (stage 1) on rtsp://user:***@127.0.0.1:{port}/cam: "
        "lost after 2 reconnect attempts (connection refused)" in err
    )
    assert report["status"] == "failed" and report["reconnects"] == 2
    assert 0 < len(pts) == report["frames"]
    assert report["streams"][0]["state"] == "failed"


def test_every_input_of_a_list_is_live_when_the_list_is():
    inputs = [
        "synthetic:rate=30,frames=8,size=64x48",
        "synthetic:seed=1,rate=30,frames=8,size=64x48",
    ]
    started = time.monotonic()
    messages = decode(inputs, live=True)
    assert time.monotonic() - started >= 7 / 30 - 0.02
    starts = [m.info for m in messages if isinstance(m, StreamStart)]
    assert len(starts) == 2 and all(info.live for info in starts)
