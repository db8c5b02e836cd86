"""The ``ianet-stream`` command line: discovers the subcommands in ``ianet_stream.commands``.

Exit codes: 0 done, 1 failed, 2 usage or configuration error, 3 some inputs of a folder
failed. A user error prints one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence
from importlib import import_module

from rich.logging import RichHandler
from rich.markup import escape

from ianet_stream import __version__, commands
from ianet_stream.console import console
from ianet_stream.errors import ConfigError, InputError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per module in ``ianet_stream.commands``."""
    parser = argparse.ArgumentParser(
        prog="ianet-stream",
        description="Video salient-object detection: pipelines, training, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"ianet-stream {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = import_module(f"{commands.__name__}.{module_info.name}")
        sub = module.register(subparsers)
        sub.add_argument("--quiet", action="store_true", help="no progress or tables on stderr")
        sub.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parser


class _RedactUrls(logging.Filter):
    """Hides the credentials of URLs in log messages (a camera's password, a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ianet_stream.uris import redact_text

        record.msg, record.args = redact_text(record.getMessage()), None
        return True


def configure_logging(quiet: bool, debug: bool) -> None:
    """Route library warnings (truncated inputs, fallbacks) to the stderr console, with
    credentials in URLs hidden."""
    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
    handler.addFilter(_RedactUrls())
    root_level = logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=root_level, format="%(message)s", handlers=[handler], force=True)
    ours = logging.DEBUG if debug else logging.ERROR if quiet else logging.INFO
    for name in ("ianet", "ianet_stream", "ianet_stream_plugins"):
        logging.getLogger(name).setLevel(ours)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by the console script)."""
    # Idle OpenMP threads sleep instead of spinning: the pipeline runs several torch stages
    # in threads, and spinning workers of one stage starve the others (10x slower on 2
    # cores). Read once, when torch first starts its thread pool, so set before that.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    configure_logging(quiet=args.quiet, debug=args.debug)
    try:
        return int(args.run(args) or EXIT_OK)
    except ConfigError as error:
        if args.debug:
            raise
        _print_error(str(error))
        return EXIT_USAGE
    except (InputError, FileNotFoundError, PermissionError) as error:
        if args.debug:
            raise
        _print_error(str(error))
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except Exception as error:  # the last line of defence: one line, not a traceback
        if args.debug:
            raise
        _print_error(f"{type(error).__name__}: {error}".splitlines()[0], debug_hint=True)
        return EXIT_FAILED


def _print_error(message: str, debug_hint: bool = False) -> None:
    """One red line on stderr, credentials in URLs hidden."""
    from ianet_stream.uris import redact_text

    hint = " (--debug shows the traceback)" if debug_hint else ""
    console.print("[bold red]error:[/]", escape(redact_text(message)) + hint, highlight=False)


if __name__ == "__main__":
    sys.exit(main())
