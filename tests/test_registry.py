"""The stage registry: built-in and third-party stages through the same entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest

from ianet_stream import registry
from ianet_stream.cli import main
from ianet_stream.commands.stages import describe_stages
from ianet_stream.config import parse_pipeline
from ianet_stream.errors import ConfigError
from ianet_stream.frame import Frame
from ianet_stream.stage import Stage

BUILT_IN = {"decode", "flow", "saliency", "composite", "encode", "masks"}


@dataclass
class InvertOptions:
    amount: int = field(default=255, metadata={"help": "subtract the picture from this"})


class Invert(Stage):
    """A third-party stage: the negative of the picture."""

    help: ClassVar[str] = "negative of the picture"
    Options: ClassVar[type] = InvertOptions

    def process(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            frame.image = (
                (self.options.amount - np.asarray(frame.image).astype(np.int16))
                .clip(0, 255)
                .astype(np.uint8)
            )
        return frames


class NotAStage:
    pass


def install_distribution(folder: Path, entry_points: dict[str, str]) -> Path:
    """A distribution's metadata (what pip writes), registering ``entry_points``."""
    info = folder / "thirdparty_stages-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-stages\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}")
    return folder


def test_the_built_in_stages_are_registered_through_entry_points():
    assert set(registry.registered()) >= BUILT_IN
    encode = registry.load(registry.registered()["encode"])
    assert encode.kind == "sink" and encode.__module__ == "ianet_stream_plugins.encode"


def test_a_third_party_distribution_registers_a_stage(tmp_path, monkeypatch):
    site = install_distribution(tmp_path, {"invert": f"{__name__}:Invert"})
    monkeypatch.syspath_prepend(str(site))
    assert registry.load(registry.registered()["invert"]) is Invert
    spec = parse_pipeline(
        {
            "stages": [
                {"decode": {"uri": "a.mp4"}},
                {"invert": {"amount": 200}},
                {"encode": {"path": "o.mp4"}},
            ]
        }
    )
    assert spec.stages[1].cls is Invert and spec.stages[1].options.amount == 200
    stages = {stage["name"]: stage for stage in describe_stages()}
    assert set(stages) >= BUILT_IN | {"invert"}
    assert stages["invert"]["options"] == [
        {
            "name": "amount",
            "type": "int",
            "required": False,
            "default": 255,
            "help": "subtract the picture from this",
        }
    ]
    assert {option["name"] for option in stages["encode"]["options"]} >= {"path", "codec", "crf"}


def test_a_broken_registration_is_reported_with_the_stage_it_concerns(tmp_path, monkeypatch):
    entry_points = {"missing": "no_such_module:Stage", "wrong": f"{__name__}:NotAStage"}
    monkeypatch.syspath_prepend(str(install_distribution(tmp_path, entry_points)))
    with pytest.raises(ConfigError, match=r"stages\[1\]\.missing: cannot load no_such_module"):
        parse_pipeline(
            {"stages": [{"decode": {"uri": "a"}}, {"missing": {}}, {"encode": {"path": "o.mp4"}}]}
        )
    with pytest.raises(registry.StageLoadError, match="is not a subclass"):
        registry.load(registry.registered()["wrong"])


def test_a_third_party_stage_runs_from_the_command_line(tmp_path):
    site = install_distribution(tmp_path / "site", {"invert": f"{__name__}:Invert"})
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parent)]),
    }
    command = [
        sys.executable,
        "-c",
        "import sys; from ianet_stream.cli import main; sys.exit(main())",
    ]
    config = tmp_path / "invert.yaml"
    config.write_text(
        "stages:\n  - decode: {}\n  - invert: {}\n  - encode: {pix_fmt: yuv444p, crf: 0}\n"
    )
    output = tmp_path / "out.mp4"
    graph = "lavfi:color=c=0x204060:size=64x48:rate=25:duration=0.2"
    subprocess.run(
        [*command, "run", str(config), "--input", graph, "--output", str(output), "--quiet"],
        env=environment,
        check=True,
    )
    with av.open(str(output)) as container:
        pictures = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(pictures) == 5
    assert (
        np.abs(pictures[0].reshape(-1, 3).mean(0) - (255 - 0x20, 255 - 0x40, 255 - 0x60)).max() < 3
    )


def test_stages_lists_the_stages_asked_for_and_suggests_a_misspelt_one(capsys):
    assert main(["stages", "--json", "encode", "decode"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [stage["name"] for stage in listed] == ["encode", "decode"]
    assert "live" in {option["name"] for option in listed[1]["options"]}
    assert main(["stages", "decod"]) == 2
    assert "decod: no such stage (did you mean 'decode'?)" in capsys.readouterr().err


def test_stages_reads_on_stdout_in_80_columns_and_cuts_nothing(capsys):
    assert main(["stages"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in captured.out
    assert "decode (source)" in lines and "encode (sink)" in lines
    assert "    checkpoint: str, default 'builtin:ianet-lite-synthetic'" in lines
    help_text = " ".join(line.strip() for line in lines)
    for stage in describe_stages():
        for option in stage.get("options", []):
            assert " ".join(option["help"].split()) in help_text  # every word, in order
    assert main(["stages", "nosuch"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "nosuch: no such stage; known stages: " in error and "decode" in error
