"""The stage contract as code (``ianet_stream.stage``), the atomic writer (``ianet.atomic``)
and one default input size for the same weights in ``test`` and ``run``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image
from test_registry import install_distribution

from ianet import atomic
from ianet.checkpoints import input_size, read_checkpoint
from ianet.data.synthetic import SyntheticVideo
from ianet.weights import Weights, builtin
from ianet_stream import registry
from ianet_stream.cli import main
from ianet_stream.config import parse_pipeline
from ianet_stream.errors import ConfigError
from ianet_stream.frame import Frame, StreamEnd, StreamInfo, StreamStart
from ianet_stream.stage import Emit, Liveness, Source, Stage


@dataclass
class TickerOptions:
    url: str = field(metadata={"help": "where the ticks come from"})
    frames: int = 3


class Ticker(Source):
    """A third-party source whose input option is called ``url``, not ``uri``."""

    Options: ClassVar[type] = TickerOptions
    input_option: ClassVar[str | None] = "url"

    def run(self, emit: Emit) -> None:
        info = StreamInfo("t", "ticks", self.options.url, 16, 16, Fraction(10), Fraction(1, 10))
        emit(StreamStart(info))
        for index in range(self.options.frames):
            emit(
                Frame(np.full((16, 16, 3), 20 * index, np.uint8), index, "t", index, info.time_base)
            )
        emit(StreamEnd("t"))


@dataclass
class CollectOptions:
    target: str = "memory"


COLLECTED: list[tuple[str, int]] = []


class Collect(Stage):
    """A third-party sink whose output option is called ``target``."""

    kind: ClassVar = "sink"
    Options: ClassVar[type] = CollectOptions
    requires: ClassVar[tuple[str, ...]] = ("image",)
    output_option: ClassVar[str | None] = "target"

    def process(self, frames: list[Frame]) -> list[Frame]:
        COLLECTED.extend((self.options.target, frame.index) for frame in frames)
        return frames


class NeedsDepth(Stage):
    """A stage that needs a field nobody provides."""

    requires: ClassVar[tuple[str, ...]] = ("image", "depth")


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    site = install_distribution(
        tmp_path / "site",
        {"ticker": f"{__name__}:Ticker", "collect": f"{__name__}:Collect",
         "needs_depth": f"{__name__}:NeedsDepth"},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    COLLECTED.clear()


def test_input_and_output_reach_the_options_the_stages_name(third_party, tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text("stages:\n  - ticker: {}\n  - collect: {}\n")
    assert main(["run", str(config), "--input", "tick://a", "--output", "mine", "--quiet"]) == 0
    assert COLLECTED == [("mine", 0), ("mine", 1), ("mine", 2)]
    spec = parse_pipeline({"stages": [{"ticker": {}}, {"collect": {}}]}, input="tick://b")
    assert spec.inputs == ["tick://b"] and spec.sinks[0].output == "memory"


def test_a_missing_field_is_refused_before_anything_runs(third_party):
    raw = {"stages": [{"ticker": {"url": "x"}}, {"needs_depth": {}}, {"collect": {}}]}
    with pytest.raises(ConfigError, match=r"stages\[1\]\.needs_depth: needs_depth needs depth; "):
        parse_pipeline(raw)
    raw = {"stages": [{"decode": {"uri": "a.mp4"}}, {"saliency": {}}, {"masks": {"path": "m"}}]}
    with pytest.raises(ConfigError, match="saliency needs flow_image; add a flow stage before it"):
        parse_pipeline(raw)
    synthetic = {"stages": [{"decode": {"uri": "synthetic:"}}, {"masks": {"path": "m"}}]}
    assert parse_pipeline(synthetic).sinks[0].name == "masks"  # ground-truth masks will do


def test_sources_say_whether_they_are_live(third_party):
    source = Ticker(TickerOptions(url="x"), context=None)
    assert source.live() == Liveness(None, "a file-like input")
    assert Ticker.stream_names(TickerOptions(url="rtsp://cam/x")) == ["cam"]


def test_the_framework_imports_no_plugin_and_no_cli_and_changes_no_environment():
    code = (
        "import os, sys; before = dict(os.environ)\n"
        "import ianet_stream.runner, ianet_stream.config, ianet_stream.folder_runs\n"
        "import ianet_stream.outputs, ianet_stream.video, ianet_stream.prometheus\n"
        "import ianet_stream_plugins.decode, ianet_stream_plugins.encode\n"
        "assert dict(os.environ) == before, 'an import changed the environment'\n"
        "assert 'ianet_stream.cli' not in sys.modules, 'the CLI was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    framework = Path(registry.__file__).parent
    for module in framework.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
                assert not any(n.startswith("ianet_stream_plugins") for n in names), module.name


# ----------------------------------------------------------------------- the atomic writer


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    final = tmp_path / "report.json"
    atomic.write_text(final, "old")
    with pytest.raises(RuntimeError), atomic.atomic_output(final) as temporary:
        temporary.write_text("half")
        assert temporary.name.startswith(".report.json.part-") and temporary.suffix == ".json"
        assert f"-{os.getpid()}@" in temporary.name
        raise RuntimeError("killed")
    assert final.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]


def test_a_killed_writers_leftover_goes_and_a_live_ones_stays(tmp_path):
    final = tmp_path / "clip.mp4"
    live = atomic.temporary_name(final)
    live.write_bytes(b"being written by this process")
    dead = live.with_name(live.name.replace(f"-{os.getpid()}@", "-999999@"))
    dead.write_bytes(b"left by a killed run")
    atomic.write_bytes(final, b"whole")
    assert final.read_bytes() == b"whole" and live.exists() and not dead.exists()


def test_folders_are_replaced_only_when_the_same_writer_made_them(tmp_path):
    final = tmp_path / "maps"
    with atomic.atomic_output(final, writer="maps writer") as folder:
        folder.mkdir()
        (folder / "0.png").write_bytes(b"first")
    assert atomic.written_by(final) == "maps writer"
    with atomic.atomic_output(final, writer="maps writer") as folder:
        folder.mkdir()
        (folder / "1.png").write_bytes(b"second")
    assert sorted(path.name for path in final.glob("*.png")) == ["1.png"]
    refused = pytest.raises(FileExistsError, match="not an output of another writer")
    with refused, atomic.atomic_output(final, writer="another writer") as folder:
        folder.mkdir()
    (final / atomic.MARKER).unlink()
    with pytest.raises(FileExistsError, match="already exists"):
        atomic.check_replaceable(final, "maps writer")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["maps"]


# ------------------------------------------------- one default size for the same weights


def test_the_weights_registry_matches_the_shipped_weights():
    entry = builtin("ianet-lite-synthetic")
    assert entry is Weights.LITE_SYNTHETIC
    checkpoint = read_checkpoint(entry.info.name)
    assert input_size(checkpoint, entry.info.name) == entry.info.input_size == 160
    assert checkpoint["meta"]["train_config"]["size"] == entry.info.input_size
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    weights = checkpoint["model"].items()
    count = sum(value.numel() for key, value in weights if not key.endswith(statistics))
    assert count == entry.info.parameters
    assert Weights.PUBLISHED.info.input_size == 512


def test_test_and_run_give_the_same_maps_for_the_same_weights(tmp_path):
    picture = next(iter(SyntheticVideo(5, (96, 64), 1))).image
    folder = tmp_path / "SET" / "clip" / "Imgs"
    folder.mkdir(parents=True)
    Image.fromarray(picture).save(folder / "frame.png")
    (tmp_path / "SET" / "test.txt").write_text("clip/Imgs/frame.png -\n")  # no GT, no flow
    assert main(["test", "--list", str(tmp_path / "SET" / "test.txt"), "--checkpoint",
                 "builtin:ianet-lite-synthetic", "--out", str(tmp_path / "tested"),
                 "--workers", "0", "--quiet"]) == 0  # fmt: skip
    config = tmp_path / "p.yaml"
    config.write_text(
        f"stages:\n  - decode: {{uri: '{folder / 'frame.png'}'}}\n  - flow: {{}}\n"
        f"  - saliency: {{}}\n  - masks: {{path: '{tmp_path / 'run'}'}}\n"
    )
    assert main(["run", str(config), "--quiet"]) == 0
    tested = np.asarray(Image.open(tmp_path / "tested" / "SET" / "clip" / "frame.png"), float)
    ran = np.asarray(Image.open(tmp_path / "run" / "frame" / "00000.png"), float)
    assert tested.shape == ran.shape == (64, 96)
    assert np.abs(tested - ran).mean() <= 1.0 and tested.std() > 10  # a real map, the same
