"""A Prometheus endpoint for a running pipeline: ``http://HOST:PORT/metrics``.

Every figure is read from the run's ``RunStats`` when the endpoint is scraped (nothing is
copied while the stages work). Per stage, labelled ``stage`` (its name) and ``position``
(1 for the source):

    ianet_stream_frames_total           frames handled (counter)
    ianet_stream_frames_per_second      frames over the time spent in the stage
    ianet_stream_stage_seconds          time per frame in the stage, ``quantile`` 0.5 / 0.95
    ianet_stream_queue_depth            messages waiting in front of the stage (now)
    ianet_stream_queue_depth_max        the most that waited
    ianet_stream_drops_total            frames dropped before the stage could work on them
    ianet_stream_reconnects_total       reconnections of a live source
    ianet_stream_degradations_total     steps taken to meet a live input's latency bound

per stream, labelled ``stream``: ``ianet_stream_stream_state`` (1 for its state: starting,
running, reconnecting, stalled, ended, failed), frames in and out, input and processed
frames/s, drops and the age of its last frame;
and for the whole run ``ianet_stream_latency_seconds`` (``quantile`` 0.5 / 0.95): capture to
leaving the last stage, plus the process's own ``process_*`` figures (memory, CPU, open
files). The endpoint listens on loopback unless told otherwise; it shows stage names and
figures only, never an input's URI.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, get_args

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ianet_stream.admission import State
from ianet_stream.errors import ConfigError
from ianet_stream.stats import RunStats

DEFAULT_HOST = "127.0.0.1"
STREAM_STATES = get_args(State)
QUANTILES = (50, 95)
_LABELS = ["stage", "position"]


class RunCollector(Collector):
    """Turns the watched run's figures into metric families at each scrape."""

    def __init__(self) -> None:
        self.stats: RunStats | None = None

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        if stats is None:
            return
        frames = CounterMetricFamily("ianet_stream_frames", "frames handled", labels=_LABELS)
        fps = GaugeMetricFamily(
            "ianet_stream_frames_per_second",
            "frames over the time spent in the stage",
            labels=_LABELS,
        )
        times = GaugeMetricFamily(
            "ianet_stream_stage_seconds",
            "time per frame in the stage",
            labels=[*_LABELS, "quantile"],
        )
        depth = GaugeMetricFamily(
            "ianet_stream_queue_depth", "messages waiting in front of the stage", labels=_LABELS
        )
        depth_max = GaugeMetricFamily(
            "ianet_stream_queue_depth_max", "the most messages that waited", labels=_LABELS
        )
        drops = CounterMetricFamily(
            "ianet_stream_drops", "frames dropped before the stage worked on them", labels=_LABELS
        )
        reconnects = CounterMetricFamily(
            "ianet_stream_reconnects", "reconnections of a live source", labels=_LABELS
        )
        for position, stage in enumerate(stats.stages, start=1):
            labels = [stage.name, str(position)]
            frames.add_metric(labels, stage.frames)
            fps.add_metric(labels, stage.fps)
            for q in QUANTILES:
                times.add_metric([*labels, str(q / 100)], stage.times.percentile_ms(q) / 1000)
            if stage.inbox is not None:
                depth.add_metric(labels, stage.queue_depth)
                depth_max.add_metric(labels, stage.queue_max)
            drops.add_metric(labels, stage.drops)
            reconnects.add_metric(labels, int(stage.counters.get("reconnects", 0)))
        latency = GaugeMetricFamily(
            "ianet_stream_latency_seconds",
            "capture to leaving the last stage",
            labels=["quantile"],
        )
        for q in QUANTILES:
            latency.add_metric([str(q / 100)], stats.latency.percentile_ms(q) / 1000)
        degraded = CounterMetricFamily(
            "ianet_stream_degradations", "steps taken to meet the latency bound", labels=_LABELS
        )
        for position, stage in enumerate(stats.stages, start=1):
            degraded.add_metric([stage.name, str(position)], int(stage.counters.get("degraded", 0)))
        yield from (frames, fps, times, depth, depth_max, drops, reconnects, latency, degraded)
        yield from _stream_metrics(stats.health.as_list())


def _stream_metrics(streams: list[dict[str, Any]]) -> Iterator[Metric]:
    """Per stream: state (1 for the current one), frames in and out, rates, drops, age."""
    state = GaugeMetricFamily(
        "ianet_stream_stream_state", "1 for the stream's current state", labels=["stream", "state"]
    )
    per_stream = (
        ("frames_in", CounterMetricFamily, "frames_in", "frames captured"),
        ("frames_out", CounterMetricFamily, "frames_out", "frames through the pipeline"),
        ("input_fps", GaugeMetricFamily, "input_fps", "frames captured per second"),
        ("processed_fps", GaugeMetricFamily, "processed_fps", "frames through per second"),
        ("drops", CounterMetricFamily, "drops", "frames dropped"),
        ("last_frame_age_s", GaugeMetricFamily, "last_frame_age_seconds", "since its last frame"),
    )
    figures = {
        key: family(f"ianet_stream_stream_{name}", text, labels=["stream"])
        for key, family, name, text in per_stream
    }
    for stream in streams:
        for name in STREAM_STATES:
            state.add_metric([stream["stream"], name], float(stream["state"] == name))
        for key, family in figures.items():
            if stream[key] is not None:
                family.add_metric([stream["stream"]], stream[key])
    yield state
    yield from figures.values()


class MetricsServer:
    """Serves ``/metrics`` from a thread of its own until closed (a context manager).

    ``watch(stats)`` points it at a run (``run_pipeline(..., monitor=server.watch)``);
    before that it serves the process's figures only. ``port=0`` picks a free port
    (``port`` then tells which).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"--metrics-port: expected 0 to 65535, got {port}")
        self.host = host
        self._collector = RunCollector()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._collector)
        ProcessCollector(registry=registry)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            raise ConfigError(
                f"--metrics-port {port}: cannot listen on {host}:{port} ({error.strerror or error})"
            ) from None
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def watch(self, stats: RunStats) -> None:
        self._collector.stats = stats

    def close(self) -> None:
        """Stop serving and wait for the server's thread to end."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
