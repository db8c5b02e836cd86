"""The errors the framework and its stages raise, each with a one-line message for the user.

Stages (built-in or third-party) import them from here; the command line maps them to
exit codes (``ConfigError`` 2, ``InputError`` and ``PipelineError`` 1).
"""

from __future__ import annotations

from ianet.errors import InputError

__all__ = ["ConfigError", "InputError", "PipelineError", "QueueClosed"]


class ConfigError(InputError):
    """A configuration or usage error: the message names its place (exit code 2)."""


class PipelineError(InputError):
    """A stage failed; the message names the stage and the input."""


class QueueClosed(Exception):
    """The pipeline is being torn down: a stage or source should stop what it is doing."""
