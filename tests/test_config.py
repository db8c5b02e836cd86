"""Pipeline files: validation against the stages' option dataclasses, errors, overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from ianet_stream import registry
from ianet_stream.cli import main
from ianet_stream.config import build_options, load_pipeline, parse_pipeline
from ianet_stream.errors import ConfigError
from ianet_stream.stage import Source, Stage


@dataclass
class Retry:
    attempts: int = 3
    backoff: float = 0.5


@dataclass
class ProbeOptions:
    """Every kind of annotation the config layer handles."""

    size: int = 8
    scale: float = 1.0
    label: str = "x"
    enabled: bool = True
    mode: Literal["fast", "accurate"] = "fast"
    pair: tuple[int, int] = (1, 2)
    names: list[str] = field(default_factory=list)
    limit: int | None = None
    retry: Retry = field(default_factory=Retry)

    def __post_init__(self) -> None:
        if self.size % 2:
            raise ValueError(f"size: must be even, got {self.size}")


class Probe(Stage):
    Options: ClassVar[type] = ProbeOptions


class Start(Source):
    input_option: ClassVar[str | None] = "uri"

    @dataclass
    class Options:
        uri: str


@pytest.fixture(autouse=True)
def probe_stages(monkeypatch):
    found = registry._entry_points()
    extra = [
        EntryPoint("probe", f"{__name__}:Probe", registry.GROUP),
        EntryPoint("start", f"{__name__}:Start", registry.GROUP),
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: [*found, *extra])


def test_values_are_checked_and_converted_from_the_annotations():
    options = build_options(
        ProbeOptions,
        {
            "size": 4,
            "scale": 2,
            "label": 7,
            "enabled": False,
            "mode": "accurate",
            "pair": [3, 4],
            "names": ["a", "b"],
            "limit": 9,
            "retry": {"attempts": 5},
        },
        "stages[1].probe",
    )
    assert options == ProbeOptions(4, 2.0, "7", False, "accurate", (3, 4), ["a", "b"], 9, Retry(5))
    assert isinstance(options.scale, float) and isinstance(options.pair, tuple)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": "big"}, "stages[1].probe.size: expected an integer, got 'big'"),
        ({"size": 2.5}, "stages[1].probe.size: expected an integer, got 2.5"),
        ({"enabled": 1}, "stages[1].probe.enabled: expected true or false, got 1"),
        ({"scale": True}, "stages[1].probe.scale: expected a number, got True"),
        (
            {"mode": "acurate"},
            "stages[1].probe.mode: expected one of 'fast', 'accurate', got 'acurate' "
            "(did you mean 'accurate'?)",
        ),
        ({"pair": [1]}, "stages[1].probe.pair: expected a list of 2 items, got 1"),
        ({"names": ["a", 3.5]}, "stages[1].probe.names[1]: expected a string, got 3.5"),
        ({"limit": "all"}, "stages[1].probe.limit: expected an integer or null, got 'all'"),
        ({"retry": {"atempts": 1}}, "stages[1].probe.retry.atempts: unknown option (did you mean"),
        ({"retry": {"backoff": "x"}}, "stages[1].probe.retry.backoff: expected a number"),
        ({"size": 3}, "stages[1].probe: size: must be even, got 3"),
        ({"sise": 4}, "stages[1].probe.sise: unknown option (did you mean 'size'?)"),
    ],
)
def test_bad_values_are_rejected_with_their_yaml_path(options, message):
    with pytest.raises(ConfigError) as error:
        parse_pipeline(
            {"stages": [{"start": {"uri": "a"}}, {"probe": options}, {"encode": {"path": "o.mp4"}}]}
        )
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {
                "stages": [
                    {"decode": {"uri": "a.mp4"}},
                    {"salency": {}},
                    {"encode": {"path": "o.mp4"}},
                ]
            },
            "stages[1].salency: unknown stage (did you mean 'saliency'?)",
        ),
        (
            {"stages": [{"probe": {}}, {"encode": {"path": "o.mp4"}}]},
            "stages[0].probe: the first stage must be a source, not a transform",
        ),
        (
            {"stages": [{"decode": {"uri": "a.mp4"}}, {"probe": {}}]},
            "stages[1].probe: the last stage must be a sink, not a transform",
        ),
        (
            {
                "stages": [
                    {"decode": {"uri": "a"}},
                    {"start": {"uri": "b"}},
                    {"masks": {"path": "m"}},
                ]
            },
            "stages[1].start: a source can only be the first stage",
        ),
        (
            {"stages": [{"decode": {}}, {"encode": {"path": "o.mp4"}}]},
            "stages[0].decode.uri: required",
        ),
        ({"stages": [{"decode": None, "encode": None}]}, "stages[0]: expected a one-key mapping"),
        ({"stages": []}, "stages: expected a list of stages"),
        ({"stage": []}, "stage: unknown key (did you mean 'stages'?)"),
        (
            {"stages": [{"decode": {"uri": "a"}}, {"encode": {"path": "o.mp4"}}], "device": "gpu"},
            "device: expected auto, cpu, cuda or cuda:N, got 'gpu'",
        ),
        (
            {"stages": [{"decode": {"uri": "a"}}, {"encode": {"path": "o.mp4"}}], "batch": 0},
            "batch: expected an integer from 1 to 64 (frames per model call), got 0",
        ),
        (
            {"stages": [{"decode": {"uri": "a"}}, {"encode": {"path": "o.mp4", "crf": -1}}]},
            "stages[1].encode: crf: expected a number >= 0, got -1",
        ),
    ],
)
def test_bad_pipelines_are_rejected_with_their_place(raw, message):
    with pytest.raises(ConfigError) as error:
        parse_pipeline(raw)
    assert message in str(error.value)


def test_a_configuration_error_exits_2_before_anything_runs(tmp_path, capsys):
    config = tmp_path / "p.yaml"
    config.write_text("stages:\n  - decode: {}\n  - encode: {crff: 20}\n")
    output = tmp_path / "out.mp4"
    code = main(["run", str(config), "--input", "missing.mp4", "--output", str(output)])
    assert code == 2
    error = capsys.readouterr().err
    assert "stages[1].encode.crff: unknown option (did you mean 'crf'?)" in " ".join(error.split())
    assert not output.exists()


def test_set_input_and_output_override_the_file(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text(
        "stages:\n  - start: {uri: a}\n  - probe: {size: 2}\n  - encode: {path: o.mp4}\n"
    )
    spec = load_pipeline(
        config,
        [
            "stages.1.size=6",
            "stages.probe.names=[a, b]",
            "stages.1.retry.attempts=7",
            "stages.2.crf=30",
            "device=cpu",
            "batch=8",
        ],
        input="b.mp4",
        output="p.mkv",
    )
    probe = spec.stages[1].options
    assert (probe.size, probe.names, probe.retry.attempts) == (6, ["a", "b"], 7)
    assert spec.source.options.uri == "b.mp4"
    assert (spec.sinks[0].options.path, spec.sinks[0].options.crf) == ("p.mkv", 30)
    assert (spec.device, spec.batch) == ("cpu", 8)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("stages.1.size", "expected KEY=VALUE"),
        ("stages.9.size=2", "the pipeline has 3 stages"),
        ("stages.nothing.size=2", "0 stages are named 'nothing'"),
        ("stages.1.size=big", "stages[1].probe.size: expected an integer, got 'big'"),
        ("device=gpu", "device: expected auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_set_assignments_are_rejected(tmp_path, assignment, message):
    config = tmp_path / "p.yaml"
    config.write_text("stages:\n  - start: {uri: a}\n  - probe: {}\n  - encode: {path: o.mp4}\n")
    with pytest.raises(ConfigError) as error:
        load_pipeline(config, [assignment])
    assert message in str(error.value)


def test_a_pipeline_file_that_is_not_yaml_is_a_configuration_error(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text("stages: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(config)
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["file", "folder", "pipe", "masks"])
def test_the_shipped_pipelines_are_valid(name):
    configs = Path(__file__).parent.parent / "configs"
    spec = load_pipeline(configs / f"{name}.yaml", input="clip.mp4")
    assert [stage.cls.kind for stage in (spec.stages[0], spec.stages[-1])] == ["source", "sink"]
    saliency = next(stage for stage in spec.stages if stage.name == "saliency")
    assert saliency.options.checkpoint == "builtin:ianet-lite-synthetic"
