"""Folder runs on Ray (``--executor ray``) and clip lists; the Ray tests share one local
instance and are skipped where Ray is not installed."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from ianet_stream.cli import main
from ianet_stream.folder_runs import read_clip_list

PASSTHROUGH = "stages:\n  - decode: {}\n  - encode: {codec: libx264, preset: veryfast}\n"
SLOW_ENCODE = "stages:\n  - decode: {}\n  - encode: {codec: libx264, preset: veryslow}\n"


def write_clip(path: Path, frames: int, size: str = "96x64") -> Path:
    """A ``frames``-frame test-pattern clip at 25 frames/s, written by a pipeline run."""
    config = path.with_name("write-clip.yaml")
    config.write_text("stages:\n  - decode: {}\n  - encode: {codec: libx264, preset: ultrafast}\n")
    graph = f"lavfi:testsrc2=size={size}:rate=25:duration={frames / 25}"
    assert main(["run", str(config), "--input", graph, "--output", str(path), "--quiet"]) == 0
    config.unlink()
    return path


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def clip_reports(summary: Path) -> dict[str, dict]:
    return {Path(clip["clip"]).name: clip for clip in json.loads(summary.read_text())["clips"]}


def stderr_text(capsys) -> str:
    """What the run printed on stderr, its lines (wrapped at the console's width) joined."""
    return " ".join(capsys.readouterr().err.split())


def visible(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for every test of this module that runs on Ray."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three good clips (6, 9 and 12 frames) and a corrupt one."""
    folder = tmp_path_factory.mktemp("clips")
    for name, frames in (("a.mp4", 6), ("b.mp4", 9), ("c.mp4", 12)):
        write_clip(folder / name, frames)
    (folder / "corrupt.mp4").write_bytes(os.urandom(2000))
    return folder


def test_a_clip_list_names_clips_relative_to_its_folder(tmp_path):
    listing = tmp_path / "lists" / "clips.txt"
    listing.parent.mkdir()
    listing.write_text(f"# training clips\n\nday/a.mp4\n  {tmp_path / 'b.mkv'}  \n# done\n")
    assert read_clip_list(listing) == [listing.parent / "day" / "a.mp4", tmp_path / "b.mkv"]


def test_a_local_run_of_a_clip_list_runs_the_listed_clips_and_reports_a_missing_one(
    tmp_path, clips, capsys
):
    listing, out, summary = tmp_path / "clips.txt", tmp_path / "out", tmp_path / "run.json"
    listing.write_text(f"{clips / 'c.mp4'}\n# b is left out\n{clips / 'a.mp4'}\nmissing.mp4\n")
    config = tmp_path / "passthrough.yaml"
    config.write_text(PASSTHROUGH)
    args = ["run", str(config), "--input", str(listing), "--output", str(out)]
    assert main([*args, "--json", str(summary)]) == 3
    assert visible(out) == ["a.mp4", "c.mp4"]
    assert [frame_count(out / name) for name in ("a.mp4", "c.mp4")] == [6, 12]
    report = clip_reports(summary)
    assert [report[name]["status"] for name in ("c.mp4", "a.mp4", "missing.mp4")] == [
        "done",
        "done",
        "failed",
    ]
    assert report["missing.mp4"]["reason"].endswith(f"{tmp_path / 'missing.mp4'}: no such file")
    listing.write_text("# nothing yet\n")
    assert main(args) == 1
    assert f"{listing}: the clip list names no clip" in stderr_text(capsys)


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path, clips, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where it is missing
    config = tmp_path / "passthrough.yaml"
    config.write_text(PASSTHROUGH)
    out = tmp_path / "out"
    args = ["run", str(config), "--input", str(clips), "--output", str(out), "--executor", "ray"]
    assert main(args) == 2
    assert "needs Ray, which is not installed: pip install 'ianet-stream[ray]'" in stderr_text(
        capsys
    )
    assert not out.exists()


def test_the_cli_does_not_import_ray_unless_the_ray_executor_runs():
    code = (
        "import sys; import ianet_stream.commands.run, ianet_stream.folder_runs, "
        "ianet_stream.ray_executor; sys.exit('ray' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_ray_run_writes_every_good_clip_and_reports_the_corrupt_one(
    tmp_path, clips, ray_instance, capsys
):
    config, out, summary = tmp_path / "passthrough.yaml", tmp_path / "out", tmp_path / "run.json"
    config.write_text(PASSTHROUGH)
    args = ["run", str(config), "--output", str(out), "--executor", "ray", "--json", str(summary)]
    assert main([*args, "--input", str(clips), "--jobs", "2"]) == 3
    assert visible(out) == ["a.mp4", "b.mp4", "c.mp4"]
    assert [frame_count(out / name) for name in ("a.mp4", "b.mp4", "c.mp4")] == [6, 9, 12]
    report = clip_reports(summary)
    statuses = {name: clip["status"] for name, clip in report.items()}
    assert statuses == {"a.mp4": "done", "b.mp4": "done", "c.mp4": "done", "corrupt.mp4": "failed"}
    reason = report["corrupt.mp4"]["reason"]
    assert reason.startswith(f"decode (stage 1) on {clips / 'corrupt.mp4'}: ")
    assert "\n" not in reason and report["corrupt.mp4"]["attempts"] == 1
    document = json.loads(summary.read_text())
    assert document["frames"] == 27 and document["counts"]["done"] == 3
    stderr = stderr_text(capsys)
    assert "failed corrupt.mp4" in stderr and "3 done, 1 failed; 27 frames" in stderr

    modified = [(out / name).stat().st_mtime_ns for name in ("a.mp4", "b.mp4", "c.mp4")]
    listing = tmp_path / "good.txt"
    listing.write_text("\n".join(str(clips / name) for name in ("a.mp4", "b.mp4", "c.mp4")))
    assert main([*args, "--input", str(listing), "--skip-existing"]) == 0
    assert {clip["status"] for clip in clip_reports(summary).values()} == {"skipped"}
    assert [(out / name).stat().st_mtime_ns for name in ("a.mp4", "b.mp4", "c.mp4")] == modified


def writer_of(prefix: Path) -> int | None:
    """The id of a Ray worker process with a file named ``prefix...`` open."""
    for process in Path("/proc").iterdir():
        try:
            if not (process / "cmdline").read_bytes().startswith(b"ray::"):
                continue
            for descriptor in (process / "fd").iterdir():
                if os.readlink(descriptor).startswith(str(prefix)):
                    return int(process.name)
        except OSError:  # the process ended, or is not ours to look at
            continue
    return None


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory) -> tuple[Path, Path]:
    """A pipeline slow enough to be caught at work (x264 veryslow) and a folder with a long
    clip (120 frames, 192x144: past the encoder's look-ahead) and a short one (6 frames)."""
    root = tmp_path_factory.mktemp("slow")
    config, clips = root / "slow.yaml", root / "clips"
    config.write_text(SLOW_ENCODE)
    clips.mkdir()
    write_clip(clips / "long.mp4", 120, size="192x144")
    write_clip(clips / "short.mp4", 6)
    return config, clips


def when_written(prefix: Path, action, timeout: float = 60) -> threading.Thread:
    """A thread that calls ``action(pid)`` once a Ray worker writes a file ``prefix...``."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = writer_of(prefix)
            if pid is not None:
                action(pid)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the worker through /proc")
def test_a_clip_whose_worker_is_killed_is_retried_by_a_new_worker(tmp_path, slow_run, ray_instance):
    config, clips = slow_run
    out, summary = tmp_path / "out", tmp_path / "run.json"
    killed = []

    def kill(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    watcher = when_written(out / ".long.mp4.part-", kill)
    args = ["run", str(config), "--input", str(clips), "--output", str(out), "--quiet"]
    assert main([*args, "--executor", "ray", "--json", str(summary)]) == 0
    watcher.join(timeout=1)
    assert killed, "no worker was seen writing long.mp4"
    report = clip_reports(summary)
    assert report["long.mp4"]["status"] == "done" and report["long.mp4"]["attempts"] == 2
    assert report["short.mp4"]["attempts"] == 1
    assert visible(out) == ["long.mp4", "short.mp4"]
    assert frame_count(out / "long.mp4") == 120 and frame_count(out / "short.mp4") == 6
    assert sorted(os.listdir(out)) == ["long.mp4", "short.mp4"]  # the killed one's leftover too


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the worker through /proc")
def test_ctrl_c_stops_a_ray_run_and_its_clips_in_flight_leave_nothing(
    tmp_path, slow_run, ray_instance
):
    config, clips = slow_run
    out, summary = tmp_path / "out", tmp_path / "run.json"
    watcher = when_written(out / ".long.mp4.part-", lambda pid: os.kill(os.getpid(), signal.SIGINT))
    args = ["run", str(config), "--input", str(clips), "--output", str(out), "--quiet"]
    assert main([*args, "--executor", "ray", "--jobs", "1", "--json", str(summary)]) == 130
    watcher.join(timeout=1)
    report = clip_reports(summary)
    assert report["long.mp4"]["status"] == "interrupted"
    assert report["short.mp4"]["status"] in ("done", "not run")
    assert "long.mp4" not in os.listdir(out)
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no partial file
