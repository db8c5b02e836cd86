"""Ordinary mistakes and ordinary files never cost a user data or frames: each case below
was seen to destroy footage, lose frames or end in silence before, and is reproduced here
with real files, a real HTTP server on loopback, real pipes and real signals."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from test_run_cli import AS_IF_ON_A_TERMINAL, CLI, PASSTHROUGH, read_frames, write_clip

from ianet.checkpoints import save_checkpoint
from ianet.errors import InputError
from ianet.model import IANet
from ianet_stream.cli import main
from ianet_stream.config import MAX_BATCH, MAX_YAML_VALUES, load_yaml
from ianet_stream.errors import ConfigError
from ianet_stream.uris import redact

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, timeout=120, **kwargs
    )


def start_cli(*args: str, **kwargs) -> subprocess.Popen:
    """The CLI in a process whose stderr counts as a terminal (it says "running" first)."""
    command = [sys.executable, "-c", CLI, *args]
    return subprocess.Popen(command, stderr=subprocess.PIPE, env=AS_IF_ON_A_TERMINAL, **kwargs)


@pytest.fixture
def passthrough(tmp_path: Path) -> Path:
    config = tmp_path / "pipeline.yaml"
    config.write_text(PASSTHROUGH)
    return config


# ------------------------------------------------------------ 1. inputs are never overwritten


def test_output_equal_to_the_input_is_refused_before_anything_runs(tmp_path, passthrough):
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames=5)
    before = clip.read_bytes()
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    for output in (clip, link, tmp_path / "sub" / ".." / "clip.mp4"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        run = run_cli("run", str(passthrough), "-i", str(clip), "-o", str(output))
        assert run.returncode == EXIT_USAGE, run.stderr.decode()
        error = run.stderr.decode()
        assert "the output is the input" in error and "clip.mp4" in error
    json_run = run_cli("run", str(passthrough), "-i", str(clip), "-o", str(tmp_path / "o.mp4"),
                       "--json", str(clip))  # fmt: skip
    assert json_run.returncode == EXIT_USAGE
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clip.mp4",
        "link.mp4",
        "pipeline.yaml",
        "sub",
    ]


def test_a_folder_run_into_its_own_input_folder_is_refused(tmp_path, passthrough):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "a.mp4", frames=3)
    before = (clips / "a.mp4").read_bytes()
    run = run_cli("run", str(passthrough), "-i", str(clips), "-o", str(clips))
    assert run.returncode == EXIT_USAGE
    assert "the output is the input" in run.stderr.decode()
    assert (clips / "a.mp4").read_bytes() == before
    assert [p.name for p in clips.iterdir()] == ["a.mp4"]


def test_an_existing_folder_at_an_output_name_is_left_alone(tmp_path, passthrough):
    clip, taken = tmp_path / "clip.mp4", tmp_path / "out" / "clip.mp4"
    write_clip(clip, frames=3)
    taken.mkdir(parents=True)
    (taken / "keep.txt").write_text("a user's file")
    run = run_cli("run", str(passthrough), "-i", str(tmp_path), "-o", str(tmp_path / "out"))
    assert run.returncode == EXIT_USAGE
    assert "already exists and is a folder" in run.stderr.decode()
    assert (taken / "keep.txt").read_text() == "a user's file"


# ------------------------------------------------------------ 2. a file is a file over HTTP


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server on loopback serving ``tmp_path``; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_file_served_over_http_is_read_like_a_file(tmp_path, http_folder, passthrough):
    served = tmp_path / "served.mp4"
    run = run_cli("run", str(passthrough), "-i", "lavfi:testsrc2=size=64x48:rate=25:duration=1",
                  "-o", str(served), "--quiet")  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    output, summary = tmp_path / "copy.mp4", tmp_path / "run.json"
    run = run_cli("run", str(passthrough), "-i", f"{http_folder}/served.mp4", "-o", str(output),
                  "--json", str(summary))  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    assert len(read_frames(str(output))) == 25
    report = json.loads(summary.read_text())
    assert report["drops"] == 0 and report["policy"] == "file"
    assert report["policy_reason"] == "a 1.0 s file over http"


# ------------------------------------------------------------ 3. pipes never end in silence


def write_late_index_mp4(path: Path) -> None:
    """An mp4 whose index (moov) follows its media, as most cameras write them."""
    noise = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for index in range(10):
            picture = noise.integers(0, 256, (96, 128, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def box_order(path: Path) -> list[str]:
    """The top-level boxes of an ISO media file, in order."""
    data, boxes, position = path.read_bytes(), [], 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position : position + 4], "big")
        boxes.append(data[position + 4 : position + 8].decode("latin-1"))
        if size < 8:
            break
        position += size
    return boxes


def test_an_mp4_with_its_index_last_on_stdin_fails_at_once_and_says_how(tmp_path):
    clip, config = tmp_path / "late.mp4", tmp_path / "pipe.yaml"
    write_late_index_mp4(clip)
    assert box_order(clip).index("mdat") < box_order(clip).index("moov")
    config.write_text("stages:\n  - decode: {uri: '-'}\n  - encode: {path: out.mkv}\n")
    with clip.open("rb") as stdin:
        run = run_cli("run", str(config), stdin=stdin, cwd=tmp_path)
    assert run.returncode == EXIT_FAILED
    error = " ".join(run.stderr.decode().split())
    assert "index (moov) comes after the video" in error and "-movflags +faststart" in error
    assert not (tmp_path / "out.mkv").exists()


def test_our_mp4_outputs_have_their_index_first_and_pipe(tmp_path, passthrough):
    clip, output = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    write_clip(clip, frames=12)
    assert main(["run", str(passthrough), "-i", str(clip), "-o", str(output), "--quiet"]) == 0
    boxes = box_order(output)
    assert boxes.index("moov") < boxes.index("mdat")
    config = tmp_path / "pipe.yaml"
    config.write_text("stages:\n  - decode: {uri: '-'}\n  - encode: {path: '-'}\n")
    with output.open("rb") as stdin:
        run = run_cli("run", str(config), "--quiet", stdin=stdin)
    assert run.returncode == 0, run.stderr.decode()


def test_a_run_that_produces_no_frame_fails(tmp_path, passthrough):
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames=5)
    run = run_cli("run", str(passthrough), "-i", str(clip), "-o", str(tmp_path / "out.mp4"),
                  "--set", "stages.decode.start=60")  # fmt: skip
    assert run.returncode == EXIT_FAILED
    assert "no frame came through; nothing was written" in " ".join(run.stderr.decode().split())
    assert not (tmp_path / "out.mp4").exists()


def test_audio_on_stdin_is_dropped_with_a_warning(tmp_path):
    clip, config = tmp_path / "sound.mkv", tmp_path / "pipe.yaml"
    write_clip_with_audio(clip, "libopus")
    config.write_text("stages:\n  - decode: {uri: '-'}\n  - encode: {path: out.mkv}\n")
    with clip.open("rb") as stdin:
        run = run_cli("run", str(config), stdin=stdin, cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode()
    assert "its audio is not kept" in run.stderr.decode()


# ------------------------------------------------------------ 4. signals while a source waits


def wait_for_start(process: subprocess.Popen) -> None:
    assert process.stderr.readline().startswith(b"running")


def finish(process: subprocess.Popen) -> tuple[int, float]:
    """Send SIGINT and return the exit code and how long the process took to exit."""
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    return code, time.monotonic() - started


def test_ctrl_c_ends_a_run_whose_stdin_is_silent(tmp_path):
    config = tmp_path / "pipe.yaml"
    config.write_text("stages:\n  - decode: {uri: '-'}\n  - encode: {path: out.mkv}\n")
    read_end, write_end = os.pipe()
    process = start_cli("run", str(config), stdin=read_end, cwd=tmp_path)
    os.close(read_end)
    wait_for_start(process)
    time.sleep(0.5)
    code, seconds = finish(process)
    os.close(write_end)
    assert code == EXIT_INTERRUPTED and seconds < 1.5
    assert b"Fatal Python error" not in process.stderr.read()


def test_ctrl_c_ends_a_run_on_a_fifo_without_writer(tmp_path, passthrough):
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    process = start_cli("run", str(passthrough), "-i", str(fifo), "-o", str(tmp_path / "o.mp4"))
    wait_for_start(process)
    time.sleep(0.5)
    code, seconds = finish(process)
    assert code == EXIT_INTERRUPTED and seconds < 1.5


def test_ctrl_c_keeps_what_a_pipe_delivered_before_it_fell_silent(tmp_path):
    clip, config, output = tmp_path / "clip.mp4", tmp_path / "pipe.yaml", tmp_path / "out.mkv"
    write_clip(clip, frames=30)
    streamable = tmp_path / "clip.nut"
    with av.open(str(clip)) as source, av.open(str(streamable), "w") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    config.write_text(f"stages:\n  - decode: {{uri: '-'}}\n  - encode: {{path: '{output}'}}\n")
    read_end, write_end = os.pipe()
    process = start_cli("run", str(config), stdin=read_end)
    os.close(read_end)
    os.write(write_end, streamable.read_bytes())  # every frame, and the pipe stays open
    wait_for_start(process)
    time.sleep(2)
    code, seconds = finish(process)
    os.close(write_end)
    assert code == EXIT_INTERRUPTED and seconds < 1.5
    assert len(read_frames(str(output))) >= 20  # the decoder may hold the last few back


def test_ctrl_c_ends_a_run_blocked_on_a_silent_network_stream(tmp_path, passthrough):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    uri = f"rtsp://127.0.0.1:{server.getsockname()[1]}/cam"
    process = start_cli("run", str(passthrough), "-i", uri, "-o", str(tmp_path / "o.mp4"),
                        "--set", "stages.decode.timeout_s=60")  # fmt: skip
    time.sleep(1.5)  # decode is waiting for the server's answer
    code, seconds = finish(process)
    server.close()
    assert code == EXIT_INTERRUPTED and seconds < 2.5


# ------------------------------------------------------------ 5. rotation metadata


def write_rotated_clip(path: Path, degrees: int) -> None:
    """A 64x32 clip with a white band on its left, marked to display turned ``degrees``
    counter-clockwise (as phones store portrait video)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(degrees)
        for index in range(3):
            picture = np.zeros((32, 64, 3), np.uint8)
            picture[:, :16] = 255
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_phone_clips_come_out_upright(tmp_path):
    from test_decode import decode, frames_of

    clip = tmp_path / "portrait.mp4"
    write_rotated_clip(clip, 90)
    messages = decode(str(clip))
    info, picture = messages[0].info, frames_of(messages)[0].image
    assert (info.width, info.height) == (32, 64) and picture.shape == (64, 32, 3)
    assert picture[-8:].mean() > 200 and picture[:40].mean() < 30  # the band is at the bottom
    stored = frames_of(decode(str(clip), autorotate=False))[0].image
    assert stored.shape == (32, 64, 3) and stored[:, :12].mean() > 200
    scaled = decode(str(clip), size=16)
    assert (scaled[0].info.width, scaled[0].info.height) == (16, 32)


# ------------------------------------------------------------ 6. credentials


def test_every_form_of_credential_is_redacted():
    assert redact("rtsp://token123@cam/live") == "rtsp://***@cam/live"
    assert redact("rtsp://admin:secret@cam/live") == "rtsp://admin:***@cam/live"
    assert redact("https://cdn/x.m3u8?password=p&key=k&quality=hd") == (
        "https://cdn/x.m3u8?password=***&key=***&quality=hd"
    )
    assert redact("ftp://me:pw@files/clip.mp4") == "ftp://me:***@files/clip.mp4"
    assert redact("clip.mp4") == "clip.mp4"


def test_a_token_given_as_a_user_name_never_shows(tmp_path, passthrough):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = run_cli("run", str(passthrough), "-i", f"rtsp://sekrit-token@127.0.0.1:{port}/cam",
                  "-o", str(tmp_path / "o.mp4"), "--json", str(tmp_path / "run.json"))  # fmt: skip
    assert run.returncode == EXIT_FAILED
    assert b"sekrit" not in run.stderr and b"***@127.0.0.1" in run.stderr


# ------------------------------------------------------------ 7. configuration is bounded


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    config = tmp_path / "bomb.yaml"
    layers = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for depth, name in enumerate("bcdefghij"):
        previous = "abcdefghij"[depth]
        layers.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    config.write_text(
        "\n".join(layers) + "\nstages:\n  - decode: {uri: *j}\n  - encode: {path: out.mp4}\n"
    )
    started = time.monotonic()
    run = run_cli("run", str(config))
    assert run.returncode == EXIT_USAGE and time.monotonic() - started < 15  # mostly start-up
    error = " ".join(run.stderr.decode().split())
    expected = r"bomb\.yaml: line \d+: the alias \*\w makes the document expand to more than"
    assert re.search(rf"{expected} {MAX_YAML_VALUES} values", error)
    with pytest.raises(ConfigError, match="expand"):
        load_yaml("\n".join(layers))


def test_non_finite_numbers_long_values_and_missing_stages_are_refused(tmp_path, capsys):
    config = tmp_path / "p.yaml"
    base = "stages:\n  - decode: {uri: 'synthetic:frames=2'}\n  - flow: {}\n  - saliency: {}\n"
    config.write_text(base + "  - composite: {strength: .inf}\n  - encode: {path: o.mp4}\n")
    assert main(["run", str(config)]) == EXIT_USAGE
    assert (
        "stages[3].composite.strength: expected a finite number, got inf" in capsys.readouterr().err
    )
    config.write_text(
        base + "  - composite: {mode: " + "x" * 500 + "}\n  - encode: {path: o.mp4}\n"
    )
    assert main(["run", str(config)]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "x" * 200 not in error and "…" in error
    config.write_text(
        "stages:\n  - decode: {uri: 'synthetic:frames=2'}\n  - composite: {}\n  - encode: {}\n"
    )
    assert main(["run", str(config), "-o", str(tmp_path / "o.mp4")]) == EXIT_USAGE
    error = " ".join(capsys.readouterr().err.split())
    assert "stages[1].composite: composite needs saliency; add a saliency stage before it" in error


# ------------------------------------------------------------ 8. memory is bounded


def test_an_8000x8000_frame_is_refused_by_default_before_it_is_decoded(tmp_path, passthrough):
    huge = tmp_path / "huge.mkv"
    with av.open(str(huge), "w") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 8000, 8000, "yuvj420p"
        frame = av.VideoFrame(8000, 8000, "yuvj420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    run = run_cli("run", str(passthrough), "-i", str(huge), "-o", str(tmp_path / "o.mp4"))
    assert run.returncode == EXIT_FAILED
    error = " ".join(run.stderr.decode().split())
    assert "frames are 8000x8000 (64.0 MP), more than max_pixels (8.3 MP)" in error


def test_a_batch_beyond_the_cap_and_tiny_frames_are_refused(tmp_path, passthrough, capsys):
    code = main(["run", str(passthrough), "-i", "x.mp4", "-o", "o.mp4", "--set", "batch=10000"])
    assert code == EXIT_USAGE
    assert f"batch: expected an integer from 1 to {MAX_BATCH}" in capsys.readouterr().err
    code = main(["run", str(passthrough), "-i", "lavfi:color=size=4x4:duration=0.2",
                 "-o", str(tmp_path / "o.mp4")])  # fmt: skip
    assert code == EXIT_FAILED
    assert "frames are 4x4; at least 8x8 pixels are needed" in capsys.readouterr().err


# ------------------------------------------------------------ 9. weights are checked


@pytest.fixture
def nan_checkpoint(tmp_path: Path) -> Path:
    model = IANet("lite")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    return save_checkpoint(tmp_path / "nan.pth", model)


def test_non_finite_weights_are_refused_with_their_names(tmp_path, nan_checkpoint, capsys):
    config = tmp_path / "p.yaml"
    config.write_text(
        "stages:\n  - decode: {uri: 'synthetic:frames=2,size=64x48'}\n  - flow: {}\n"
        f"  - saliency: {{checkpoint: '{nan_checkpoint}', size: 64}}\n"
        f"  - masks: {{path: '{tmp_path / 'maps'}'}}\n"
    )
    assert main(["run", str(config)]) == EXIT_FAILED
    error = " ".join(capsys.readouterr().err.split())
    assert "nan.pth: 1 tensor(s) hold NaN or infinite values" in error
    assert not (tmp_path / "maps").exists()


def test_export_refuses_weights_of_another_network(tmp_path, capsys):
    import torchvision

    other = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    out = tmp_path / "weights.pth"
    assert (
        main(["export", "--checkpoint", str(other), "--format", "weights", "--out", str(out)]) == 1
    )
    assert "does not fit IANet" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------ 10. audio follows the container


def write_clip_with_audio(path: Path, audio_codec: str) -> None:
    """One second of video with one second of a 440 Hz tone in ``audio_codec``."""
    rate = 48000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(audio_codec, rate=rate, layout="stereo")
        for index in range(25):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 99, np.uint8), "rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        samples = np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
        step = audio.codec_context.frame_size or 1024
        for start in range(0, rate - step + 1, step):
            chunk = np.tile(samples[start : start + step], (2, 1))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            container.mux(audio.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


@pytest.mark.parametrize(
    ("source_codec", "output", "expected"),
    [("aac", "out.webm", "opus"), ("libopus", "out.mov", "aac"), ("aac", "out.mkv", "aac")],
)
def test_audio_is_re_encoded_when_the_container_cannot_hold_it(
    tmp_path, source_codec, output, expected
):
    clip = tmp_path / ("sound.mp4" if source_codec == "aac" else "sound.mkv")
    write_clip_with_audio(clip, source_codec)
    target, config = tmp_path / output, tmp_path / "p.yaml"
    config.write_text("stages:\n  - decode: {}\n  - encode: {preset: ultrafast}\n")
    assert main(["run", str(config), "-i", str(clip), "-o", str(target), "--quiet"]) == 0
    with av.open(str(target)) as container:
        (audio,) = container.streams.audio
        assert audio.codec_context.name == expected
        seconds = sum(float(p.duration * p.time_base) for p in container.demux(audio) if p.duration)
    assert 0.8 < seconds < 1.2


# ------------------------------------------------------------ 11. skip, JSON


def test_skip_existing_reruns_clips_whose_output_is_broken(tmp_path, passthrough):
    clips, out = tmp_path / "clips", tmp_path / "out"
    clips.mkdir()
    for name in ("a", "b"):
        write_clip(clips / f"{name}.mp4", frames=4)
    out.mkdir()
    (out / "a.mp4").write_bytes(b"not a video")
    assert main(["run", str(passthrough), "-i", str(clips), "-o", str(out), "--quiet"]) == 0
    assert len(read_frames(str(out / "a.mp4"))) == 4
    (out / "b.mp4").write_bytes(b"")
    summary = tmp_path / "run.json"
    code = main(["run", str(passthrough), "-i", str(clips), "-o", str(out), "--skip-existing",
                 "--json", str(summary), "--quiet"])  # fmt: skip
    assert code == 0
    statuses = {Path(c["clip"]).name: c["status"] for c in json.loads(summary.read_text())["clips"]}
    assert statuses == {"a.mp4": "skipped", "b.mp4": "done"}
    assert len(read_frames(str(out / "b.mp4"))) == 4


def test_an_unwritable_json_summary_is_named(tmp_path, passthrough, capsys):
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames=3)
    blocked = tmp_path / "file"
    blocked.write_text("")
    code = main(["run", str(passthrough), "-i", str(clip), "-o", str(tmp_path / "o.mp4"),
                 "--json", str(blocked / "run.json"), "--quiet"])  # fmt: skip
    assert code == EXIT_FAILED
    assert f"{blocked / 'run.json'}: cannot write the summary" in capsys.readouterr().err


def test_errors_of_readers_name_the_input() -> None:
    from ianet_stream.video import VideoReader

    with pytest.raises(InputError, match=r"nothing\.mp4: "):
        VideoReader("nothing.mp4", "nothing.mp4")


def write_anamorphic(clip: Path) -> Path:
    """Two 64x32 frames whose pixels are 3:2 (shown 96x32)."""
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(3, 2)
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return clip


def test_non_square_pixels_are_shown_at_their_width(tmp_path):
    from test_decode import decode, frames_of

    clip = write_anamorphic(tmp_path / "anamorphic.mkv")
    messages = decode(str(clip))
    assert (messages[0].info.width, messages[0].info.height) == (96, 32)
    assert frames_of(messages)[0].image.shape == (32, 96, 3)


def test_a_reader_converts_frames_after_its_container_is_closed(tmp_path):
    """A reconnecting camera closes the first connection's container and goes on converting
    the next connection's frames with the first reader (PyAV 18.1.1 refuses to read a closed
    container's streams)."""
    from ianet_stream.video import VideoReader

    clip = write_anamorphic(tmp_path / "anamorphic.mkv")
    reader = VideoReader(str(clip), "anamorphic.mkv", is_file=True)
    frames = list(reader.frames())
    reader.close()
    assert [reader.to_rgb(frame).shape for frame in frames] == [(32, 96, 3)] * 2
    assert reader.problems() == []  # read from what the stream announced when it was opened
