"""``ianet-stream stages``: every registered stage with its options, types, defaults and help."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any


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
    """The stages called ``names``, in that order; a ConfigError for an unknown one."""
    from ianet_stream.config import suggestion
    from ianet_stream.errors import ConfigError

    by_name = {stage["name"]: stage for stage in stages}
    for name in names:
        if name not in by_name:
            raise ConfigError(f"{name}: no such stage{suggestion(name, by_name)}")
    return [by_name[name] for name in names]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return list(value)
    return value if isinstance(value, str | int | float | bool | list | dict | None) else str(value)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from ianet_stream.console import console

    stages = describe_stages()
    if args.names:
        stages = _only(stages, args.names)
    if args.json:
        print(json.dumps(stages, indent=2))
        return 0
    table = Table(title="stages (ianet_stream.stages entry points)", title_justify="left")
    widths = {"type": 24, "default": 14}
    for column in ("stage", "option", "type", "default", "help"):
        table.add_column(column, max_width=widths.get(column))
    for stage in stages:
        if "error" in stage:
            table.add_row(stage["name"], "", "", "", f"[red]{escape(stage['error'])}[/]")
            continue
        table.add_row(
            f"[bold]{stage['name']}[/]", f"[dim]{stage['kind']}[/]", "", "", escape(stage["help"])
        )
        for option in stage["options"]:
            default = "[i]required[/]" if option["required"] else escape(repr(option["default"]))
            table.add_row(
                "", option["name"], escape(option["type"]), default, escape(option["help"])
            )
        table.add_section()
    console.print(table)
    return 0
