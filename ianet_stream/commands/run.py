"""``ianet-stream run PIPELINE.yaml``: run a pipeline on a file, a folder, a stream or a pipe."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ianet_stream.config import PipelineSpec
    from ianet_stream.pipeline import ClipResult

EXIT_INTERRUPTED = 130
DESCRIPTION = """\
Run a pipeline file (see configs/) on an input. --input sets the source's uri (a file,
a folder of clips, '-' for stdin, lavfi:GRAPH, synthetic:),
--output the first sink's path (a file, a folder for folder inputs, '-' for stdout),
--set any option: --set stages.2.size=384 --set device=cpu --set batch=8 (values are
YAML). Ctrl-C stops the input and finishes the frames in flight; a second one quits.
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
    parser.add_argument("-i", "--input", metavar="URI", help="the source's uri")
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
        "-j", "--jobs", type=int, default=1, help="clips processed at once in a folder run"
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="in a folder run, skip clips whose outputs are complete",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the run's summary here")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ianet_stream.cli import EXIT_OK, EXIT_PARTIAL, ConfigError
    from ianet_stream.config import load_pipeline
    from ianet_stream.uris import parse_uri

    if args.jobs < 1:
        raise ConfigError(f"--jobs: expected an integer >= 1, got {args.jobs}")
    output = args.output
    if args.input and output and output != "-" and parse_uri(args.input).kind == "folder":
        output = output.rstrip("/\\") + os.sep  # a folder: one output per clip inside it
    spec = load_pipeline(args.pipeline, args.sets, input=args.input, output=output)
    uri = getattr(spec.source.options, "uri", None)
    if isinstance(uri, str) and parse_uri(uri).kind == "folder":
        results = _run_folder(args, spec, Path(uri))
        if any(result.status in ("interrupted", "not run") for result in results):
            return EXIT_INTERRUPTED
        return EXIT_PARTIAL if any(result.status == "failed" for result in results) else EXIT_OK
    if args.jobs != 1 or args.skip_existing:
        raise ConfigError("--jobs and --skip-existing apply to folder inputs only")
    return _run_one(args, spec)


def _run_one(args: argparse.Namespace, spec: PipelineSpec) -> int:
    from ianet_stream.cli import EXIT_OK, ConfigError
    from ianet_stream.console import console
    from ianet_stream.runner import PipelineError, run_pipeline
    from ianet_stream.stats import stats_table, write_json

    if not args.quiet:
        names = " > ".join(stage.name for stage in spec.stages)
        console.print(f"running {names}", highlight=False)
    summary = run_pipeline(spec, quiet=args.quiet)
    if not args.quiet:
        console.print(stats_table(summary))
    if args.json is not None:
        write_json(args.json, summary.as_dict())
    if summary.status == "failed":  # a stage's configuration error found at run time exits 2
        error_type = ConfigError if isinstance(summary.exception, ConfigError) else PipelineError
        raise error_type(summary.error) from summary.exception
    return EXIT_OK if summary.status == "done" else EXIT_INTERRUPTED


def _run_folder(args: argparse.Namespace, spec: PipelineSpec, folder: Path) -> list[ClipResult]:
    from rich.markup import escape

    from ianet_stream.console import console
    from ianet_stream.pipeline import clips_table, folder_summary, plan_folder, run_folder
    from ianet_stream.stats import write_json

    jobs = plan_folder(str(args.pipeline), args.sets, spec, folder)

    def report(result: ClipResult) -> None:
        if not args.quiet:
            detail = f": {result.reason}" if result.reason else ""
            console.print(
                f"{result.status} {escape(Path(result.clip).name)}, {result.frames} frames "
                f"in {result.seconds:.1f} s{escape(detail)}",
                highlight=False,
            )

    results = run_folder(
        jobs, workers=args.jobs, skip_existing=args.skip_existing, quiet=args.quiet, report=report
    )
    if not args.quiet:
        console.print(clips_table(results))
    if args.json is not None:
        write_json(args.json, folder_summary(results))
    return results
