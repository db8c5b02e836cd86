"""The shared rich console: everything human-readable goes to stderr.

Messages are never wrapped by rich (``soft_wrap``): a line stays one line in a log file
or a pipe, and a terminal wraps it where it must.
"""

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)
