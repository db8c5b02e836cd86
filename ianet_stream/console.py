"""The shared rich console: everything human-readable goes to stderr."""

from rich.console import Console

console = Console(stderr=True)
