"""CLI subcommands: one module each, discovered by ``ianet_stream.cli``.

A command module defines ``register(subparsers) -> argparse.ArgumentParser`` that adds
its parser and sets ``run`` (a function ``(args) -> int``) as its default.
Modules import heavy packages (torch, av) inside ``run`` so that ``--help`` stays fast.
"""
