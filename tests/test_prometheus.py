"""``ianet-stream run --metrics-port``: the Prometheus endpoint while a live pipeline runs."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_live_runner import register_stages  # the live test stages

from ianet_stream.cli import main

CAMERA = "rtsp://admin:secret@camera.example/live"
PIPELINE = """\
stages:
  - paced: {live: {policy: latest, max_latency_ms: 500}, fps: 30, seconds: 2.5}
  - slow: {delay: 0.2}  # at most 4 frames a call: 20 frames/s, slower than the camera
  - collect: {}
"""


@pytest.fixture
def stages(monkeypatch):
    register_stages(monkeypatch)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None


def samples(text: str) -> dict[tuple[str, str], float]:
    """(sample name, stage label) -> value, from the Prometheus text format."""
    return {
        (sample.name, sample.labels.get("stage", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_served_while_the_run_lasts_and_match_the_summary(stages, tmp_path, capsys):
    config, report = tmp_path / "p.yaml", tmp_path / "run.json"
    config.write_text(PIPELINE)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    threads_before = set(threading.enumerate())
    codes = []
    args = ["run", str(config), "-i", CAMERA, "--metrics-port", str(port), "--json", str(report)]
    run = threading.Thread(target=lambda: codes.append(main(args)))
    run.start()
    text, deadline = None, time.monotonic() + 10
    while time.monotonic() < deadline:
        text = scrape(url)
        if text and samples(text).get(("ianet_stream_frames_total", "collect"), 0) > 0:
            break
        time.sleep(0.1)
    run.join(timeout=30)
    assert codes == [0]

    figures = samples(text)
    assert figures[("ianet_stream_frames_total", "collect")] > 0
    for stage in ("paced", "slow", "collect"):
        for name in ("frames_total", "frames_per_second", "drops_total", "reconnects_total"):
            assert (f"ianet_stream_{name}", stage) in figures
    for stage in ("slow", "collect"):  # the stages with a queue in front
        assert ("ianet_stream_queue_depth", stage) in figures
        assert ("ianet_stream_queue_depth_max", stage) in figures
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"ianet_stream_stage_seconds", "ianet_stream_latency_seconds"} <= families
    assert "process_resident_memory_bytes" in text
    assert "secret" not in text

    summary = json.loads(report.read_text())
    assert summary["frames"] >= figures[("ianet_stream_frames_total", "collect")]
    assert summary["drops"] == sum(stage["drops"] for stage in summary["stages"]) > 0
    assert summary["reconnects"] == 0
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] < 500 + 200
    # the door lets two frames of the stream in at a time; markers pass beside them
    assert all(stage["queue_max"] <= 2 + 2 for stage in summary["stages"])
    assert summary["streams"][0]["drops"] == summary["drops"]
    states = {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ianet_stream_stream_state"
    }
    assert states["running"] == 1 and sum(states.values()) == 1  # while the run lasted
    assert ("ianet_stream_stream_frames_in_total", "") in figures
    assert ("ianet_stream_degradations_total", "slow") in figures
    said = capsys.readouterr().err  # no terminal: the metrics' address, then one final line
    assert f"metrics at {url}" in said and f"; {summary['drops']} dropped" in said
    assert "secret" not in said and "secret" not in report.read_text()

    assert scrape(url) is None  # closed with the run
    assert set(threading.enumerate()) == threads_before


def test_a_port_in_use_is_a_usage_error(stages, tmp_path, capsys):
    config = tmp_path / "p.yaml"
    config.write_text(PIPELINE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", str(config), "--metrics-port", str(port), "--quiet"]) == 2
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
