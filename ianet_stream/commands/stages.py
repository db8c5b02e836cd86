"""``ianet-stream stages``: every registered stage with its options, types, defaults and help,
on stdout (``| less``, ``| grep``), in blocks that fit 80 columns."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from typing import Any

WIDTH = 80


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "stages",
        help="list the registered pipeline stages and their options",
        description="List every stage registered under the 'ianet_stream.stages' entry points "
        "(built-in and third-party) with its options: type, default and help.",
    )
    parser.add_argument("names", nargs="*", metavar="STAGE", help="only these stages")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout instead")
    parser.set_defaults(run=run)
    return parser


def describe_stages() -> list[dict[str, Any]]:
    """One entry per registered stage: name, kind, help, options (or the load error)."""
    from typing import get_type_hints

    from ianet_stream import registry
    from ianet_stream.config import field_default, field_help, is_required, type_name

    described = []
    for name, entry_point in registry.registered().items():
        try:
            cls = registry.load(entry_point)
        except registry.StageLoadError as error:
            described.append({"name": name, "entry_point": entry_point.value, "error": str(error)})
            continue
        hints = get_type_hints(cls.Options)
        options = [
            {
                "name": field.name,
                "type": type_name(hints[field.name]),
                "required": is_required(field),
                "default": None if is_required(field) else _jsonable(field_default(field)),
                "help": field_help(field),
            }
            for field in dataclasses.fields(cls.Options)
            if field.init
        ]
        described.append(
            {
                "name": name,
                "entry_point": entry_point.value,
                "kind": cls.kind,
                "help": cls.help,
                "options": options,
            }
        )
    return described


def _only(stages: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """The stages called ``names``, in that order; a ConfigError listing the known names
    for an unknown one."""
    from ianet_stream.config import suggestion
    from ianet_stream.errors import ConfigError

    by_name = {stage["name"]: stage for stage in stages}
    for name in names:
        if name not in by_name:
            raise ConfigError(
                f"{name}: no such stage{suggestion(name, by_name)}; "
                f"known stages: {', '.join(by_name)}"
            )
    return [by_name[name] for name in names]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return list(value)
    return value if isinstance(value, str | int | float | bool | list | dict | None) else str(value)


def describe_text(stages: list[dict[str, Any]], width: int = WIDTH) -> str:
    """Readable blocks, one per stage, that fit ``width`` columns and cut nothing: the
    stage's name, kind and help, then one option per line with its type and default and,
    below it, its help."""
    blocks = []
    for stage in stages:
        if "error" in stage:
            lines = [f"{stage['name']} (cannot be loaded)", *_wrap(stage["error"], width, 2)]
            blocks.append("\n".join(lines))
            continue
        lines = [f"{stage['name']} ({stage['kind']})", *_wrap(stage["help"], width, 2)]
        if stage["options"]:
            lines.append("  options:")
        for option in stage["options"]:
            default = "required" if option["required"] else f"default {option['default']!r}"
            lines += _wrap(f"{option['name']}: {option['type']}, {default}", width, 4, 8)
            lines += _wrap(option["help"], width, 8)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _wrap(text: str, width: int, indent: int, later: int | None = None) -> list[str]:
    """``text`` wrapped to ``width`` columns, never cutting a word (a longer word stands
    on a line of its own)."""
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent if later is None else later),
        break_long_words=False,
        break_on_hyphens=False,
    )


def run(args: argparse.Namespace) -> int:
    stages = describe_stages()
    if args.names:
        stages = _only(stages, args.names)
    if args.json:
        print(json.dumps(stages, indent=2))
    else:
        sys.stdout.write(describe_text(stages))
    return 0
