"""``ianet-stream run PIPELINE.yaml``: run a pipeline on a file, a folder, a stream or a pipe."""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ianet_stream.config import PipelineSpec
    from ianet_stream.folder_runs import ClipResult

EXIT_INTERRUPTED = 130
DESCRIPTION = """\
Run a pipeline file (see configs/) on an input. --input sets the source's uri (a file,
a folder of clips, a clip list (.txt/.list/.lst: a clip path per line, # comments),
'-' for stdin, lavfi:GRAPH, synthetic:), --executor ray runs a folder's clips on Ray,
--output the first sink's path (a file, a folder for folder inputs, '-' for stdout),
--set any option: --set stages.2.size=384 --set device=cpu --set batch=8 (values are
YAML). Ctrl-C (or SIGTERM) stops the input and finishes the frames in flight; a second
one quits at once: the frames in flight are lost, and the outputs are removed for a file
input (run it again) but kept, playable, for a live input (a recording cannot be redone).
Exit codes: 0 done, 1 failed, 2 configuration error, 3 some clips of a folder failed,
130 interrupted."""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="run a pipeline on a file, a folder, a stream or a pipe",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pipeline", type=Path, help="the pipeline YAML file")
    parser.add_argument(
        "-i",
        "--input",
        metavar="URI",
        action="append",
        help="the source's uri; repeat it to read several inputs at once, one stream each",
    )
    parser.add_argument("-o", "--output", metavar="PATH", help="the first sink's path")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an option: stages.N.OPTION=VALUE (N an index or a stage name), "
        "device=..., batch=...",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        help="clips processed at once in a folder run (default 1; with --executor ray, as "
        "many workers as the cluster holds)",
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="in a folder run, skip clips whose outputs are complete",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where a folder run's clips run: processes here, or Ray actors (pip install "
        "'ianet-stream[ray]')",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --executor ray: join this cluster ('auto': the one this machine is in) "
        "instead of starting a local Ray instance",
    )
    parser.add_argument(
        "--cpus-per-worker",
        type=float,
        default=1.0,
        metavar="N",
        help="with --executor ray: CPUs each worker reserves (default 1)",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        metavar="N",
        help="with --executor ray: GPUs each worker reserves, 0.5 to share one (default 0)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the run's summary here")
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics while the run lasts "
        "(0: any free port; single inputs only)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address the metrics listen on (default 127.0.0.1; 0.0.0.0 opens them to "
        "the network)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ianet_stream.cli import EXIT_OK, EXIT_PARTIAL
    from ianet_stream.config import load_pipeline
    from ianet_stream.errors import ConfigError
    from ianet_stream.folder_runs import is_batch_input

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs: expected an integer >= 1, got {args.jobs}")
    _check_executor(args)
    inputs = args.input or []
    output = args.output
    several = len(inputs) > 1 or (len(inputs) == 1 and is_batch_input(inputs[0]))
    if several and output and output != "-":
        output = output.rstrip("/\\") + os.sep  # a folder: one output per clip or stream
    source = inputs[0] if len(inputs) == 1 else (inputs or None)
    spec = load_pipeline(args.pipeline, args.sets, input=source, output=output)
    if len(spec.inputs) == 1 and is_batch_input(spec.inputs[0]):
        if args.metrics_port is not None:
            raise ConfigError("--metrics-port applies to a single input, not a folder or list")
        results = _run_folder(args, spec, Path(spec.inputs[0]))
        if any(result.status in ("interrupted", "not run") for result in results):
            return EXIT_INTERRUPTED
        return EXIT_PARTIAL if any(result.status == "failed" for result in results) else EXIT_OK
    if args.jobs not in (None, 1) or args.skip_existing or args.executor != "local":
        raise ConfigError(
            "--jobs, --skip-existing and --executor apply to folder inputs and clip lists only"
        )
    return _run_one(args, spec)


def _check_executor(args: argparse.Namespace) -> None:
    from ianet_stream.errors import ConfigError

    ray_options = args.ray_address is not None or args.gpus_per_worker or args.cpus_per_worker != 1
    if args.executor != "ray" and ray_options:
        raise ConfigError(
            "--ray-address, --cpus-per-worker and --gpus-per-worker need --executor ray"
        )
    if args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        raise ConfigError("--cpus-per-worker: expected > 0; --gpus-per-worker: expected >= 0")


def _run_one(args: argparse.Namespace, spec: PipelineSpec) -> int:
    from ianet_stream.cli import EXIT_OK
    from ianet_stream.console import console
    from ianet_stream.errors import ConfigError, PipelineError
    from ianet_stream.outputs import check_paths
    from ianet_stream.progress import summary_line
    from ianet_stream.runner import run_pipeline
    from ianet_stream.stage import PlannedOutput
    from ianet_stream.stats import run_report, stats_table, write_json

    streams = spec.source.cls.stream_names(spec.source.options)
    planned = [output for sink in spec.sinks for output in sink.cls.outputs(sink.options, streams)]
    if args.json is not None:
        planned.append(PlannedOutput(args.json))
    check_paths([*spec.inputs, args.pipeline], planned)
    terminal = console.is_terminal and not args.quiet
    if terminal:
        names = " > ".join(stage.name for stage in spec.stages)
        console.print(f"running {names}", highlight=False)
    started = datetime.now(timezone.utc)
    if args.metrics_port is None:
        summary = run_pipeline(spec, quiet=args.quiet)
    else:
        from ianet_stream.prometheus import MetricsServer

        with MetricsServer(args.metrics_host, args.metrics_port) as metrics:
            if not args.quiet:
                console.print(f"metrics at {metrics.url}", highlight=False)
            summary = run_pipeline(spec, quiet=args.quiet, monitor=metrics.watch)
    early = summary.status == "failed" and summary.stats.stages[0].frames == 0
    if terminal and not early:
        console.print(stats_table(summary))
    elif not args.quiet and not early:
        console.print(summary_line(summary), highlight=False, markup=False)
    if args.json is not None:
        outputs = [str(output.path) for output in planned if output.path != args.json]
        write_json(args.json, run_report(spec, summary, started, outputs))
    if summary.status == "failed":  # a stage's configuration error found at run time exits 2
        error_type = ConfigError if isinstance(summary.exception, ConfigError) else PipelineError
        raise error_type(summary.error) from summary.exception
    if summary.status == "done" and summary.frames == 0:
        raise PipelineError(f"{summary.input}: no frame came through; nothing was written")
    return EXIT_OK if summary.status == "done" else EXIT_INTERRUPTED


def _run_folder(args: argparse.Namespace, spec: PipelineSpec, folder: Path) -> list[ClipResult]:
    from rich.markup import escape

    from ianet_stream.console import console
    from ianet_stream.folder_runs import clips_table, folder_summary, plan_folder, run_folder
    from ianet_stream.stats import write_json

    executor = None
    if args.executor == "ray":
        from ianet_stream.ray_executor import RayExecutor, import_ray

        import_ray()  # before planning: without Ray, say so and create nothing
        executor = RayExecutor(
            address=args.ray_address,
            workers=args.jobs,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
        )
    jobs = plan_folder(str(args.pipeline), args.sets, spec, folder, args.json)

    def report(result: ClipResult) -> None:
        if not args.quiet:
            detail = f": {result.reason}" if result.reason else ""
            attempt = f" (attempt {result.attempts})" if result.attempts > 1 else ""
            console.print(
                f"{result.status} {escape(Path(result.clip).name)}, {result.frames} frames "
                f"in {result.seconds:.1f} s{attempt}{escape(detail)}",
                highlight=False,
            )

    started = time.perf_counter()
    results = run_folder(
        jobs,
        workers=args.jobs or 1,
        skip_existing=args.skip_existing,
        quiet=args.quiet,
        report=report,
        executor=executor,
    )
    seconds = time.perf_counter() - started
    if not args.quiet:
        console.print(clips_table(results, seconds))
    if args.json is not None:
        write_json(args.json, folder_summary(results, seconds))
    return results
