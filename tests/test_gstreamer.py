"""The ``ianetsaliency`` GStreamer element, run by the system's GStreamer (``gst-launch-1.0``,
and a Python program through gst-python) with this environment's packages, as
``ianet-stream gst-path`` sets them up; its maps against the YAML pipeline's on lossless
clips. Skipped, with the reason, where GStreamer's tools or its Python support are missing
(Debian: gstreamer1.0-tools python3-gst-1.0 gstreamer1.0-python3-plugin-loader, and
gstreamer1.0-libav, -plugins-good and -plugins-ugly for the elements around it)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from test_live_sources import Camera, free_port, needs_rtsp_server

from ianet.data.synthetic import SyntheticVideo
from ianet_stream.cli import main
from ianet_stream.commands.gst_path import find_loader, loader_python, system_python

CLI = "import sys; from ianet_stream.cli import main; sys.exit(main())"
SIZE, FRAMES, RATE = (160, 96), 12, 25
# A lossless clip decodes to the same pictures in GStreamer and in PyAV (the YAML pipeline).
DECODE = "filesrc location={} ! qtdemux ! avdec_h264 ! videoconvert"


def gst_path(**environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, "gst-path"],
        capture_output=True,
        text=True,
        env=environment or None,
        timeout=60,
    )


def exports(text: str) -> dict[str, str]:
    """The ``export NAME=VALUE`` lines of ``gst-path``'s output."""
    pairs = (
        shlex.split(line)[1].split("=", 1) for line in text.splitlines() if line[:7] == "export "
    )
    return dict(pairs)


@pytest.fixture(scope="module")
def gst(tmp_path_factory) -> dict[str, str]:
    """The environment of GStreamer's programs: ``gst-path``'s exports, with a registry
    cache of the test run's own; skips where GStreamer or gst-python is missing."""
    tools = [shutil.which(name) for name in ("gst-launch-1.0", "gst-inspect-1.0")]
    if None in tools:
        pytest.skip("GStreamer's gst-launch-1.0 is not installed (apt: gstreamer1.0-tools)")
    printed = gst_path()
    if printed.returncode != 0:
        pytest.skip(f"ianet-stream gst-path: {printed.stderr.strip()}")
    variables = exports(printed.stdout)
    registry = tmp_path_factory.mktemp("gstreamer") / "registry.bin"
    return {**os.environ, **variables, "GST_REGISTRY": str(registry)}


def needs(gst: dict[str, str], *elements: str) -> None:
    """Skip unless GStreamer has these elements."""
    for element in elements:
        found = subprocess.run(["gst-inspect-1.0", "--exists", element], env=gst, timeout=120)
        if found.returncode != 0:
            pytest.skip(
                f"GStreamer has no {element} element (apt: gstreamer1.0-libav, -good, -ugly)"
            )


def gst_launch(
    gst: dict[str, str], pipeline: str, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["gst-launch-1.0", *shlex.split(pipeline)],
        env=gst,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_lossless_clip(path: Path, seed: int) -> np.ndarray:
    """A synthetic clip as lossless H.264 (RGB) in mp4; returns its pictures."""
    pictures = np.stack([frame.image for frame in SyntheticVideo(seed, SIZE, FRAMES)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "rgb24"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for picture in pictures:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return pictures


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = [folder / "first.mp4", folder / "second.mp4"]
    for seed, path in enumerate(paths, start=3):
        write_lossless_clip(path, seed)
    return paths


def pngs(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), np.float64) for p in sorted(folder.glob("*.png"))])


def yaml_masks(
    folder: Path, clips: Sequence[Path], flow: str = "{}", temporal: str = "{}"
) -> list[np.ndarray]:
    """The YAML pipeline's maps (decode -> flow -> saliency -> temporal -> masks), one array
    per clip."""
    folder.mkdir()
    config = folder / "masks.yaml"
    uris = ", ".join(f"'{clip}'" for clip in clips)
    config.write_text(
        "batch: 1\nstages:\n"
        f"  - decode: {{uri: [{uris}]}}\n  - flow: {flow}\n  - saliency: {{}}\n"
        f"  - temporal: {temporal}\n"
        f"  - masks: {{path: '{folder / 'masks'}'}}\n"
    )
    assert main(["run", str(config), "--quiet"]) == 0
    return [pngs(folder / "masks" / clip.stem) for clip in clips]


def test_gst_path_prints_the_exports(gst):
    printed = gst_path()
    variables = exports(printed.stdout)
    assert set(variables) == {"GST_PLUGIN_PATH", "PYTHONPATH", "GST_REGISTRY"}
    element = Path(variables["GST_PLUGIN_PATH"].split(":")[0]) / "python" / "ianetsaliency.py"
    assert element.is_file()
    folders = variables["PYTHONPATH"].split(":")
    assert sysconfig.get_path("purelib") in folders  # this environment's packages
    assert sysconfig.get_path("stdlib") not in folders  # the system's Python has its own


def test_gst_path_names_the_debian_packages_without_gst_python(tmp_path):
    printed = gst_path(**{**os.environ, "GST_PLUGIN_SYSTEM_PATH": str(tmp_path)})
    assert printed.returncode == 1 and printed.stdout == ""
    message = " ".join(printed.stderr.split())
    assert message.startswith("error: GStreamer's Python plugin loader (libgstpython.so)")
    assert "apt install python3-gst-1.0 gstreamer1.0-python3-plugin-loader" in message


def test_inspect_lists_the_properties(gst):
    inspected = subprocess.run(
        ["gst-inspect-1.0", "ianetsaliency"], env=gst, capture_output=True, text=True, timeout=180
    )
    assert inspected.returncode == 0, inspected.stderr
    listed = set(re.findall(r"^  ([a-z-]+) +: ", inspected.stdout, flags=re.MULTILINE))
    wanted = {"checkpoint", "size", "flow-method", "mode", "strength", "device", "batch"}
    wanted |= {"temporal"}
    assert wanted | {"flow-size", "precision", "threshold", "background", "feather"} <= listed
    assert "Filter/Effect/Video" in inspected.stdout


def test_a_clip_through_the_element_plays_every_frame_with_the_pipelines_maps(gst, clips, tmp_path):
    needs(gst, "qtdemux", "avdec_h264", "x264enc", "mp4mux", "pngenc")
    clip = clips[0]
    (tmp_path / "maps").mkdir()
    launched = gst_launch(
        gst,
        f"{DECODE.format(clip)} ! ianetsaliency mode=mask feather=0 ! tee name=t "
        f"t. ! queue ! pngenc ! multifilesink location={tmp_path / 'maps'}/%05d.png "
        f"t. ! queue ! videoconvert ! x264enc ! mp4mux ! filesink location={tmp_path / 'out.mp4'}",
    )
    assert launched.returncode == 0, launched.stderr
    with av.open(str(clip)) as source, av.open(str(tmp_path / "out.mp4")) as output:
        times = [frame.time for frame in source.decode(video=0)]
        frames = list(output.decode(video=0))
    assert [frame.time for frame in frames] == pytest.approx(times)  # every frame, its time
    assert (frames[0].width, frames[0].height) == SIZE
    maps = pngs(tmp_path / "maps")
    [expected] = yaml_masks(tmp_path / "yaml", [clip])
    assert maps.shape == expected.shape == (FRAMES, SIZE[1], SIZE[0])
    assert np.abs(maps - expected).mean() <= 1.0  # within 1/255
    assert maps.std() > 10  # a map, not a flat picture


def test_held_frames_and_stream_state_end_at_each_stream(gst, clips, tmp_path):
    """Two streams in a row (concat) with batch=5: the frames a batch holds are pushed when
    the next stream starts and at EOS, and the second stream starts afresh (its first frame
    has no flow from the first stream's last): the YAML pipeline's maps of each clip."""
    needs(gst, "qtdemux", "avdec_h264", "pngenc", "concat")
    (tmp_path / "maps").mkdir()
    launched = gst_launch(
        gst,
        "concat name=c ! ianetsaliency mode=mask feather=0 batch=5 flow-warm-start=false "
        "temporal=false "
        f"! pngenc ! multifilesink location={tmp_path / 'maps'}/%05d.png "
        + " ".join(f"{DECODE.format(clip)} ! c." for clip in clips),
    )
    assert launched.returncode == 0, launched.stderr
    maps = pngs(tmp_path / "maps")
    expected = yaml_masks(
        tmp_path / "yaml", clips, flow="{warm_start: false}", temporal="{enabled: false}"
    )
    assert maps.shape == (2 * FRAMES, SIZE[1], SIZE[0])
    for ours, theirs in zip(np.split(maps, 2), expected, strict=True):
        assert np.abs(ours - theirs).mean() <= 1.0


# Run by the system's Python (it has gi) with gst-path's environment.
PROGRAM = """
import json, sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst

Gst.init(None)
values = json.loads(sys.argv[1])
element = Gst.ElementFactory.make("ianetsaliency")
for name, value in values.items():
    element.set_property(name, value)
read = {name: element.get_property(name) for name in values}
pipeline = Gst.parse_launch(
    "videotestsrc num-buffers=6 pattern=ball ! video/x-raw,format=RGB,width=64,height=48,"
    "framerate=25/1 ! ianetsaliency name=f batch=4 mode=mask ! appsink name=out sync=false"
)
out = pipeline.get_by_name("out")
pipeline.set_state(Gst.State.PLAYING)
buffers = []
while (sample := out.emit("pull-sample")) is not None:
    if not buffers:
        pipeline.get_by_name("f").set_property("mode", "alpha")
        query = Gst.Query.new_latency()
        out.get_static_pad("sink").peer_query(query)
    buffer = sample.get_buffer()
    caps = sample.get_caps().get_structure(0)
    buffers.append([buffer.pts, buffer.duration, caps.get_value("format")])
warnings = []
while (message := pipeline.get_bus().pop_filtered(Gst.MessageType.WARNING)) is not None:
    warnings.append(message.parse_warning()[0].message)
mode = pipeline.get_by_name("f").get_property("mode")
pipeline.set_state(Gst.State.NULL)
print(json.dumps({"read": read, "buffers": buffers, "warnings": warnings, "mode": mode,
                  "latency": query.parse_latency()[1]}))
"""


def test_properties_read_back_and_an_appsink_gets_every_buffer_on_time(gst, tmp_path):
    python = system_python(loader_python(find_loader()) or sys.version_info[:2])
    values = {
        "checkpoint": str(tmp_path / "model.pth"),
        "size": 320,
        "flow-method": "raft_small",
        "flow-size": "64x48",
        "flow-warm-start": False,
        "mode": "highlight",
        "strength": 7.5,
        "threshold": 0.5,
        "tint": "red",
        "device": "cpu",
        "batch": 3,
    }
    (tmp_path / "program.py").write_text(PROGRAM)
    ran = subprocess.run(
        [python, str(tmp_path / "program.py"), json.dumps(values)],
        env=gst,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["read"] == values
    frame = 40_000_000  # nanoseconds at 25 frames/s
    assert result["buffers"] == [[i * frame, frame, "GRAY8"] for i in range(6)]  # 2 at EOS
    assert result["mode"] == "mask"  # a property set while running waits for the next start
    assert result["warnings"] == [
        "mode: set while running; the element keeps using 'mask' until it starts again "
        "(READY -> PAUSED)"
    ]
    assert result["latency"] >= 3 * frame  # the frames a batch of 4 holds


# The maps of an odd-sized picture given as RGB and as BGRx (rows padded to 4 bytes), and
# the formats each mode outputs; run like PROGRAM.
FORMATS = """
import json
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst

Gst.init(None)

def run(video_format, mode):
    pipeline = Gst.parse_launch(
        f"videotestsrc num-buffers=3 pattern=ball ! video/x-raw,format={video_format},"
        f"width=63,height=47 ! ianetsaliency mode={mode} feather=0 ! appsink name=out"
    )
    out = pipeline.get_by_name("out")
    pipeline.set_state(Gst.State.PLAYING)
    formats, pixels = [], []
    while (sample := out.emit("pull-sample")) is not None:
        buffer = sample.get_buffer()
        formats.append(sample.get_caps().get_structure(0).get_value("format"))
        mapped, memory = buffer.map(Gst.MapFlags.READ)
        pixels.append(list(memory.data))
        buffer.unmap(memory)
    pipeline.set_state(Gst.State.NULL)
    return formats, pixels

runs = {f"{video_format} {mode}": run(video_format, mode)
        for video_format, mode in [("RGB", "mask"), ("BGRx", "mask"), ("BGR", "alpha"),
                                   ("RGBx", "blur")]}
print(json.dumps(runs))
"""


def test_any_size_and_each_rgb_layout_give_the_same_maps(gst, tmp_path):
    python = system_python(loader_python(find_loader()) or sys.version_info[:2])
    (tmp_path / "formats.py").write_text(FORMATS)
    ran = subprocess.run(
        [python, str(tmp_path / "formats.py")], env=gst, capture_output=True, text=True, timeout=180
    )
    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout)
    formats = {name: set(found) for name, (found, _) in runs.items()}
    assert formats == {
        "RGB mask": {"GRAY8"},
        "BGRx mask": {"GRAY8"},
        "BGR alpha": {"BGRA"},
        "RGBx blur": {"RGBx"},
    }
    rgb, bgrx = (np.array(runs[name][1], np.uint8) for name in ("RGB mask", "BGRx mask"))
    assert rgb.shape == (3, 64 * 47)  # GRAY8 rows of 63 pixels padded to 64 bytes
    maps = rgb.reshape(3, 47, 64)[..., :63]
    assert np.array_equal(maps, bgrx.reshape(3, 47, 64)[..., :63])
    assert maps.std() > 10
    alpha = np.array(runs["BGR alpha"][1], np.uint8).reshape(3, 47, 63, 4)
    assert np.array_equal(alpha[..., 3], maps)  # the map as alpha


def test_a_bad_checkpoint_is_a_gstreamer_error_naming_the_file(gst, tmp_path):
    checkpoint = tmp_path / "broken.pth"
    checkpoint.write_bytes(b"not a checkpoint")
    launched = gst_launch(
        gst, f"videotestsrc num-buffers=4 ! ianetsaliency checkpoint={checkpoint} ! fakesink"
    )
    assert launched.returncode != 0
    assert (
        "ERROR: from element /GstPipeline:pipeline0/GstIANetSaliency:ianetsaliency0: "
        f"{checkpoint}: not a readable PyTorch checkpoint" in launched.stderr
    )
    assert "Traceback" not in launched.stdout + launched.stderr


@needs_rtsp_server
def test_an_rtsp_camera_through_a_leaky_queue_to_an_mp4(gst, tmp_path):
    needs(gst, "rtspsrc", "avdec_h264", "x264enc", "mp4mux")
    port = free_port()
    camera = Camera(port)
    output = tmp_path / "camera.mp4"
    try:
        launched = subprocess.Popen(
            [
                "gst-launch-1.0",
                "-e",
                *shlex.split(
                    f"rtspsrc location=rtsp://user:secret@127.0.0.1:{port}/cam ! decodebin "
                    "! videoconvert ! queue leaky=downstream max-size-buffers=1 "
                    "! ianetsaliency mode=blur ! videoconvert ! x264enc tune=zerolatency "
                    f"! mp4mux ! filesink location={output}"
                ),
            ],
            env=gst,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        camera.wait_for("PLAYING", timeout=120)
        time.sleep(4)
        launched.send_signal(signal.SIGINT)  # -e: EOS, so the mp4 is finished
        _, err = launched.communicate(timeout=120)
    finally:
        camera.kill()
        camera.process.stdout.close()
    assert launched.returncode == 0, err
    with av.open(str(output)) as container:
        frames = list(container.decode(video=0))
    assert frames and (frames[0].width, frames[0].height) == (160, 120)
