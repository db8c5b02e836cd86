"""``ianet-stream run`` end to end, in subprocesses, with the real decode and encode stages."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ianet_stream.cli import main

PASSTHROUGH = "stages:\n  - decode: {}\n  - encode: {codec: libx264, preset: veryfast, crf: 20}\n"
# Runs the CLI and fails if the run imported torch (a pipeline without model stages must not).
CLI = (
    "import sys; from ianet_stream.cli import main; code = main(); "
    "sys.exit(99 if 'torch' in sys.modules else code)"
)


# rich's way to say stderr is a terminal: the run then says "running ..." first, and shows
# its progress (elsewhere it prints one line at its end).
AS_IF_ON_A_TERMINAL = {**os.environ, "TTY_COMPATIBLE": "1"}


def ianet_stream(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, timeout=120, **kwargs
    )


def write_clip(path: Path, frames: int = 24, size: tuple[int, int] = (96, 64)) -> list[int]:
    """A clip whose frame i is grey level 8 * i, at 1/90000 time base; returns the pts."""
    width, height = size
    pts = [3600 * i for i in range(frames)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, time in enumerate(pts):
            picture = np.full((height, width, 3), (8 * index) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = time, Fraction(1, 90000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return pts


def read_frames(path_or_file) -> list[tuple[float, float]]:
    """(time in seconds, mean grey level) of every frame."""
    with av.open(path_or_file) as container:
        return [
            (float(frame.time), float(frame.to_ndarray(format="gray").mean()))
            for frame in container.decode(video=0)
        ]


@pytest.fixture
def passthrough(tmp_path) -> Path:
    config = tmp_path / "passthrough.yaml"
    config.write_text(PASSTHROUGH)
    return config


def test_decode_to_encode_keeps_every_frame_and_its_time_without_torch(tmp_path, passthrough):
    clip, output, summary = tmp_path / "clip.mp4", tmp_path / "out.mp4", tmp_path / "run.json"
    write_clip(clip)
    run = ianet_stream(
        "run", str(passthrough), "--input", str(clip), "--output", str(output),
        "--json", str(summary),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == b""
    frames = read_frames(str(output))
    assert [round(time, 3) for time, _ in frames] == [round(i / 25, 3) for i in range(24)]
    assert all(abs(level - 8 * i) < 3 for i, (_, level) in enumerate(frames))
    report = json.loads(summary.read_text())
    assert report["status"] == "done" and report["frames"] == 24
    assert [stage["stage"] for stage in report["stages"]] == [
        "decode (stage 1)",
        "encode (stage 2)",
    ]
    (line,) = run.stderr.decode().splitlines()  # no terminal: one final line, on stderr
    summary_line = rf"{re.escape(str(clip))}: 24 frames in [\d.]+ s \([\d.]+ frames/s\), done"
    assert re.fullmatch(summary_line + r"; latency p95 \d+ ms", line)


def test_stdin_to_stdout(tmp_path):
    clip, config = tmp_path / "clip.mp4", tmp_path / "pipe.yaml"
    write_clip(clip, frames=10)
    config.write_text(
        "stages:\n  - decode: {uri: '-'}\n  - encode: {path: '-', preset: veryfast}\n"
    )
    with clip.open("rb") as stdin:
        run = ianet_stream("run", str(config), "--quiet", stdin=stdin)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stderr == b""
    frames = read_frames(io.BytesIO(run.stdout))
    assert len(frames) == 10 and all(abs(level - 8 * i) < 3 for i, (_, level) in enumerate(frames))


def test_sigint_finishes_the_frames_in_flight_and_leaves_a_playable_file(tmp_path, passthrough):
    output, summary = tmp_path / "out.mp4", tmp_path / "run.json"
    long_clip = "lavfi:testsrc2=size=320x240:rate=25:duration=400"
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", str(passthrough), "--input", long_clip,
         "--output", str(output), "--json", str(summary)],
        stderr=subprocess.PIPE,
        env=AS_IF_ON_A_TERMINAL,
    )  # fmt: skip
    assert process.stderr.readline().startswith(b"running")
    try:
        process.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    report = json.loads(summary.read_text())
    assert report["status"] == "interrupted"
    frames = read_frames(str(output))
    assert 0 < len(frames) == report["frames"] < 10000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_folder_run_reports_a_corrupt_clip_and_finishes_the_others(tmp_path, passthrough):
    clips, out, summary = tmp_path / "clips", tmp_path / "out", tmp_path / "run.json"
    clips.mkdir()
    write_clip(clips / "a.mp4", frames=6)
    write_clip(clips / "c.mkv", frames=9)
    (clips / "b.mp4").write_bytes(os.urandom(2000))
    (clips / "notes.txt").write_text("not a clip")
    args = [
        "run",
        str(passthrough),
        "--input",
        str(clips),
        "--output",
        str(out),
        "--json",
        str(summary),
    ]
    run = ianet_stream(*args, "--jobs", "2")
    assert run.returncode == 3, run.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "c.mp4"]
    assert [len(read_frames(str(out / name))) for name in ("a.mp4", "c.mp4")] == [6, 9]
    report = {Path(c["clip"]).name: c for c in json.loads(summary.read_text())["clips"]}
    assert [report[name]["status"] for name in ("a.mp4", "b.mp4", "c.mkv")] == [
        "done",
        "failed",
        "done",
    ]
    assert report["b.mp4"]["reason"].startswith(f"decode (stage 1) on {clips / 'b.mp4'}:")

    modified = (out / "a.mp4").stat().st_mtime_ns
    again = ianet_stream(*args, "--skip-existing")
    assert again.returncode == 3
    report = {Path(c["clip"]).name: c for c in json.loads(summary.read_text())["clips"]}
    assert [report[name]["status"] for name in ("a.mp4", "b.mp4", "c.mkv")] == [
        "skipped",
        "failed",
        "skipped",
    ]
    assert (out / "a.mp4").stat().st_mtime_ns == modified
    assert "b.mp4" in again.stderr.decode() and "failed" in again.stderr.decode()


def test_the_full_pipeline_writes_the_video_and_the_masks(tmp_path):
    from ianet import IANet, save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "lite.pth", IANet("lite"))
    config, output, maps = tmp_path / "full.yaml", tmp_path / "out.mp4", tmp_path / "maps"
    config.write_text(
        "device: cpu\n"
        "batch: 2\n"
        "stages:\n"
        "  - decode: {}\n"
        "  - flow: {size: 32}\n"
        f"  - saliency: {{checkpoint: '{checkpoint}', size: 64}}\n"
        "  - composite: {mode: blur}\n"
        "  - encode: {preset: veryfast}\n"
        f"  - masks: {{path: '{maps}'}}\n"
    )
    graph = "lavfi:testsrc2=size=64x48:rate=25:duration=0.16"
    code = main(["run", str(config), "--input", graph, "--output", str(output), "--quiet"])
    assert code == 0
    assert len(read_frames(str(output))) == 4
    pngs = sorted((maps / "lavfi").glob("*.png"))
    assert [png.name for png in pngs] == [f"{i:05d}.png" for i in range(4)]
    with Image.open(pngs[-1]) as mask:
        assert (mask.mode, mask.size) == ("L", (64, 48))


def test_two_clips_that_would_write_the_same_output_are_refused(tmp_path, passthrough, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("take.mp4", "take.mkv"):
        (clips / name).write_bytes(b"")
    args = ["run", str(passthrough), "--input", str(clips), "--output", str(tmp_path / "out")]
    assert main(args) == 1
    assert "take.mkv and take.mp4 would both write" in capsys.readouterr().err
