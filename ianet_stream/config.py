"""Pipeline files: YAML validated into stages with typed options, before anything runs.

A pipeline file is a mapping::

    device: auto          # auto | cpu | cuda | cuda:N  (optional)
    batch: 4              # frames per stage call (optional)
    stages:               # a source first, a sink last
      - decode: {uri: clip.mp4}
      - encode: {path: out.mp4, crf: 20}

Each stage's options are checked against its ``Options`` dataclass: unknown names (with
the closest valid one), types from the field annotations (int, float, str, bool,
Literal, list/tuple, dict, Optional/unions, nested dataclasses) and impossible values
(``Options.__post_init__`` raising ``ValueError``). Every error names its YAML path, e.g.
``stages[2].saliency.size: expected an integer, got 'big'``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

import yaml

from ianet.device import DEVICE_NAMES, DEVICE_PATTERN
from ianet_stream import registry
from ianet_stream.errors import ConfigError, InputError
from ianet_stream.stage import Stage

TOP_LEVEL_KEYS = ("stages", "device", "batch")
MAX_BATCH = 64  # frames per stage call; more only multiplies memory
MAX_YAML_VALUES = 100_000  # values a pipeline file may expand to (aliases counted each time)
_QUOTE_LENGTH = 60
DEFAULT_DEVICE = "auto"
DEFAULT_BATCH = 4
_PHRASES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    type(None): "null",
    Path: "a path",
}


@dataclass(frozen=True)
class StageSpec:
    """One validated stage: its position, registered name, class and options."""

    index: int
    name: str
    cls: type[Stage]
    options: Any

    @property
    def path(self) -> str:
        """Its YAML path, ``stages[2].saliency``."""
        return f"stages[{self.index}].{self.name}"

    @property
    def label(self) -> str:
        """How messages name it, ``saliency (stage 3)``."""
        return f"{self.name} (stage {self.index + 1})"

    @property
    def output(self) -> Any:
        """A sink's output (the value of its ``output_option``), or ``None``."""
        option = self.cls.output_option
        return None if option is None else getattr(self.options, option)


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline: stages (a source first, a sink last), device and batch."""

    stages: tuple[StageSpec, ...]
    device: str = DEFAULT_DEVICE
    batch: int = DEFAULT_BATCH

    @property
    def source(self) -> StageSpec:
        return self.stages[0]

    @property
    def inputs(self) -> list[str]:
        """The source's inputs (the value of its ``input_option``, as a list); ``[]`` when
        it has none."""
        option = self.source.cls.input_option
        value = None if option is None else getattr(self.source.options, option)
        if value is None:
            return []
        return [str(item) for item in value] if isinstance(value, list | tuple) else [str(value)]

    @property
    def sinks(self) -> list[StageSpec]:
        return [stage for stage in self.stages if stage.cls.kind == "sink"]

    @property
    def needs_torch(self) -> bool:
        return any(stage.cls.needs_torch for stage in self.stages)


def load_pipeline(
    path: str | Path,
    sets: Sequence[str] = (),
    *,
    input: str | list[str] | None = None,
    output: str | None = None,
    values: Sequence[tuple[str, Any]] = (),
) -> PipelineSpec:
    """Read a pipeline file, apply ``--set`` assignments, then ``values`` (``(key, value)``
    pairs with keys as in ``--set``) and ``--input``/``--output``; validate."""
    raw = read_yaml(path)
    for assignment in sets:
        apply_set(raw, assignment)
    for key, value in values:
        set_value(raw, key, value)
    try:
        return parse_pipeline(raw, input=input, output=output)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def quote(value: Any) -> str:
    """``repr(value)`` cut to a short length, for error messages."""
    text = repr(value)
    return text if len(text) <= _QUOTE_LENGTH else text[: _QUOTE_LENGTH - 1] + "…"


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses documents whose aliases expand to more than
    ``MAX_YAML_VALUES`` values (a "billion laughs" document), before building them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:
                self._expanded += self._size(node)
                if self._expanded > MAX_YAML_VALUES:
                    raise ConfigError(
                        f"line {event.start_mark.line + 1}: the alias *{event.anchor} makes the "
                        f"document expand to more than {MAX_YAML_VALUES} values"
                    )
        return super().compose_node(parent, index)

    def _size(self, node: yaml.Node) -> int:
        """The number of values ``node`` stands for, aliases expanded (memoised per node)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._size(key) + self._size(value) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._size(item) for item in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return size


def load_yaml(text: str) -> Any:
    """YAML text as Python values (``yaml.safe_load`` with alias expansion bounded)."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The file's top-level mapping (``load_yaml``)."""
    try:
        raw = load_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the pipeline file ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'stages' list, got {quote(raw)}")
    return raw


def apply_set(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set KEY=VALUE`` to the raw YAML mapping, VALUE read as YAML."""
    key, equals, text = assignment.partition("=")
    if not equals or not key:
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. stages.1.method=tvl1")
    try:
        value = load_yaml(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {assignment}: the value is not valid YAML") from None
    except ConfigError as error:
        raise ConfigError(f"--set {key}: {error}") from None
    set_value(raw, key, value)


def set_value(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in the raw YAML mapping: a top-level key (``device``, ``batch``) or
    ``stages.N.OPTION`` where N is the stage's index or its name (when unique);
    ``stages.N.OPTION.SUB`` reaches nested options."""
    head, *rest = key.split(".")
    if head != "stages":
        if rest:
            raise ConfigError(f"--set {key}: only stages.N.OPTION has nested keys")
        raw[head] = value
        return
    if len(rest) < 2:
        raise ConfigError(f"--set {key}: expected stages.N.OPTION=VALUE")
    options = _stage_options(raw, rest[0], f"--set {key}")
    for part in rest[1:-1]:
        options = options.setdefault(part, {})
        if not isinstance(options, dict):
            raise ConfigError(f"--set {key}: {part} is not a mapping")
    options[rest[-1]] = value


def _stage_options(raw: dict[str, Any], selector: str, where: str) -> dict[str, Any]:
    """The (mutable) options mapping of the stage at an index or with a name."""
    entries = raw.get("stages")
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: the pipeline has no 'stages' list")
    if selector.isdigit():
        if int(selector) >= len(entries):
            raise ConfigError(
                f"{where}: the pipeline has {len(entries)} stages (0 to {len(entries) - 1})"
            )
        entry = entries[int(selector)]
    else:
        named = [e for e in entries if isinstance(e, dict) and selector in e]
        if len(named) != 1:
            raise ConfigError(f"{where}: {len(named)} stages are named {selector!r}; use an index")
        entry = named[0]
    if not (isinstance(entry, dict) and len(entry) == 1):
        raise ConfigError(f"{where}: that stage is not a one-key mapping")
    name, options = next(iter(entry.items()))
    if options is None:
        options = entry[name] = {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: the options of {name} are not a mapping")
    return options


def parse_pipeline(
    raw: dict[str, Any], *, input: str | list[str] | None = None, output: str | None = None
) -> PipelineSpec:
    """Validate a raw pipeline mapping; ``input`` sets the source's ``uri`` and ``output``
    the first sink's ``path``."""
    _check_keys(raw, TOP_LEVEL_KEYS, "")
    entries = raw.get("stages")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("stages: expected a list of stages, a source first and a sink last")
    stages = [_stage_entry(index, entry) for index, entry in enumerate(entries)]
    _check_shape(stages)
    _set_io(0, stages[0], stages[0].cls.input_option, input, "--input")
    sink = next((i for i, s in enumerate(stages) if s.cls.output_option), None)
    if sink is None:
        _set_io(len(stages) - 1, stages[-1], None, output, "--output")
    else:
        _set_io(sink, stages[sink], stages[sink].cls.output_option, output, "--output")
    specs = tuple(
        StageSpec(
            i, s.name, s.cls, build_options(s.cls.Options, s.options, f"stages[{i}].{s.name}")
        )
        for i, s in enumerate(stages)
    )
    check_fields(specs)
    return PipelineSpec(specs, device=_device(raw), batch=_batch(raw))


def check_fields(stages: Sequence[StageSpec]) -> None:
    """Refuse a pipeline whose stage requires a ``Frame`` field no earlier stage provides."""
    available: set[str] = set()
    for stage in stages:
        for requirement in stage.cls.requires:
            choices = requirement.split("|")
            if not available.intersection(choices):
                raise ConfigError(
                    f"{stage.path}: {stage.name} needs {' or '.join(choices)}; "
                    f"{_producer_hint(choices)}"
                )
        available |= stage.cls.provided_fields(stage.options)


def _producer_hint(fields: Sequence[str]) -> str:
    """'add a saliency stage before it', from the registered stages that provide a field."""
    producers = []
    for name, entry_point in registry.registered().items():
        try:
            cls = registry.load(entry_point)
        except registry.StageLoadError:
            continue
        makes = set(cls.provides) - {choice for req in cls.requires for choice in req.split("|")}
        if cls.kind != "source" and makes & set(fields):
            producers.append(name)
    if not producers:
        return "no registered stage provides it"
    return f"add a {' or '.join(producers)} stage before it"


class _Entry(NamedTuple):
    """A stage entry of the YAML, its class loaded, its options not yet checked."""

    name: str
    options: dict[str, Any]
    cls: type[Stage]


def _stage_entry(index: int, entry: Any) -> _Entry:
    path = f"stages[{index}]"
    if not (isinstance(entry, dict) and len(entry) == 1):
        raise ConfigError(
            f"{path}: expected a one-key mapping like '- decode: {{}}', got {quote(entry)}"
        )
    name, options = next(iter(entry.items()))
    found = registry.registered()
    if name not in found:
        raise ConfigError(
            f"{path}.{name}: unknown stage{suggestion(str(name), found)}; "
            f"registered: {', '.join(found)}"
        )
    try:
        cls = registry.load(found[name])
    except registry.StageLoadError as error:
        raise ConfigError(f"{path}.{name}: {error}") from error
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError(f"{path}.{name}: expected a mapping of options, got {quote(options)}")
    return _Entry(name, dict(options), cls)


def _check_shape(stages: list[_Entry]) -> None:
    first, last = stages[0], stages[-1]
    if first.cls.kind != "source":
        raise ConfigError(
            f"stages[0].{first.name}: the first stage must be a source, not a {first.cls.kind}"
        )
    for index, stage in enumerate(stages[1:], start=1):
        if stage.cls.kind == "source":
            raise ConfigError(f"stages[{index}].{stage.name}: a source can only be the first stage")
    if last.cls.kind != "sink":
        raise ConfigError(
            f"stages[{len(stages) - 1}].{last.name}: the last stage must be a sink, "
            f"not a {last.cls.kind}"
        )


def _set_io(
    index: int, stage: _Entry, key: str | None, value: str | list[str] | None, flag: str
) -> None:
    """Set the option ``--input``/``--output`` gives (the stage's ``input_option`` or
    ``output_option``, ``key``); when it is required and neither the flag nor the file
    gives it, say which flag to use."""
    fields = {f.name: f for f in dataclasses.fields(stage.cls.Options)}
    if value is not None:
        if key is None or key not in fields:
            raise ConfigError(f"{flag}: stage {stage.name} takes no {flag.lstrip('-')}")
        stage.options[key] = value
    elif key in fields and key not in stage.options and is_required(fields[key]):
        raise ConfigError(
            f"stages[{index}].{stage.name}.{key}: required: give {flag} or set it in the file"
        )


def build_options(options_cls: type, mapping: Any, path: str) -> Any:
    """An ``options_cls`` dataclass from a YAML mapping, every value checked."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping, got {quote(mapping)}")
    fields = {f.name: f for f in dataclasses.fields(options_cls) if f.init}
    _check_keys(mapping, fields, path, what="option")
    hints = get_type_hints(options_cls)
    values = {}
    for name, field in fields.items():
        if name in mapping:
            values[name] = convert(mapping[name], hints[name], f"{path}.{name}")
        elif is_required(field):
            raise ConfigError(f"{path}.{name}: required option missing ({field_help(field)})")
    try:
        return options_cls(**values)
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None


def convert(value: Any, annotation: Any, path: str) -> Any:
    """``value`` checked against a type annotation (and converted: int -> float, list -> tuple)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Any:
        return value
    if origin is Literal:
        if value in args and type(value) in {type(arg) for arg in args}:
            return value
        choices = [str(arg) for arg in args]
        raise _expected(annotation, value, path, suggestion(str(value), choices))
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arm in args:
            try:
                return convert(value, arm, path)
            except ConfigError:
                continue
        raise _expected(annotation, value, path)
    if dataclasses.is_dataclass(annotation):
        return build_options(annotation, value, path)
    if annotation in (list, tuple) or origin in (list, tuple):
        return _convert_sequence(value, annotation, path)
    if annotation is dict or origin is dict:
        if not isinstance(value, dict):
            raise _expected(annotation, value, path)
        key_type, value_type = args or (Any, Any)
        return {
            convert(k, key_type, f"{path}.{k}"): convert(v, value_type, f"{path}.{k}")
            for k, v in value.items()
        }
    return _convert_scalar(value, annotation, path)


def _convert_sequence(value: Any, annotation: Any, path: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _expected(annotation, value, path)
    origin, args = get_origin(annotation) or annotation, get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} items, got {len(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(convert(v, a, f"{path}[{i}]") for i, (v, a) in pairs)
    item_type = args[0] if args else Any
    items = [convert(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _convert_scalar(value: Any, annotation: Any, path: str) -> Any:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is int and is_number and isinstance(value, int):
        return value
    if annotation is float and is_number:
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {quote(value)}")
        return float(value)
    if annotation is str and (isinstance(value, str) or (is_number and isinstance(value, int))):
        return str(value)
    if annotation is Path and isinstance(value, str):
        return Path(value)
    if annotation is type(None) and value is None:
        return None
    is_other_type = isinstance(annotation, type) and annotation not in _PHRASES
    if is_other_type and isinstance(value, annotation):
        return value
    raise _expected(annotation, value, path)


def _expected(annotation: Any, value: Any, path: str, hint: str = "") -> ConfigError:
    return ConfigError(f"{path}: expected {_phrase(annotation)}, got {quote(value)}{hint}")


def _phrase(annotation: Any) -> str:
    """How an error message names a type: ``an integer``, ``one of 'a', 'b'``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_phrase(arm) for arm in args)
    if annotation in (list, tuple) or origin in (list, tuple):
        return "a list"
    if annotation is dict or origin is dict or dataclasses.is_dataclass(annotation):
        return "a mapping"
    return _PHRASES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def type_name(annotation: Any) -> str:
    """A short name of a type for listings: ``int``, ``'tvl1' | 'raft_small'``, ``int | None``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(arm) for arm in args)
    if annotation is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in args)
        return f"{origin.__name__}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def is_required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def field_help(field: dataclasses.Field) -> str:
    return field.metadata.get("help", "")


def field_default(field: dataclasses.Field) -> Any:
    """The default value of an option (``dataclasses.MISSING`` when it is required)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _check_keys(mapping: dict[str, Any], valid: Iterable[str], path: str, what="key") -> None:
    valid = list(valid)
    for key in mapping:
        if key not in valid:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(
                f"{where}: unknown {what}{suggestion(str(key), valid)}; "
                f"valid: {', '.join(valid) or '(none)'}"
            )


def suggestion(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' with X the closest of ``choices`` to ``word``, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _device(raw: dict[str, Any]) -> str:
    device = raw.get("device", DEFAULT_DEVICE)
    if not (isinstance(device, str) and DEVICE_PATTERN.fullmatch(device)):
        raise ConfigError(f"device: expected {DEVICE_NAMES}, got {quote(device)}")
    return device


def _batch(raw: dict[str, Any]) -> int:
    batch = raw.get("batch", DEFAULT_BATCH)
    if not (isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch <= MAX_BATCH):
        raise ConfigError(
            f"batch: expected an integer from 1 to {MAX_BATCH} (frames per model call), "
            f"got {quote(batch)}"
        )
    return batch


def parse_size(
    size: int | str, *, minimum: int = 1, short_side: bool = True
) -> tuple[int, int] | int:
    """A size option: ``"640x360"`` -> ``(640, 360)``; ``360`` or ``"360"`` -> ``360``, a
    short side in pixels (only where ``short_side``). Raises ``ValueError`` naming the value
    when it is neither, or smaller than ``minimum`` pixels."""
    text = str(size).strip().lower()
    expected = "WxH or a number of pixels for the short side" if short_side else "WxH"
    match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text)
    if match is not None:
        parsed: tuple[int, int] | int = (int(match[1]), int(match[2]))
    elif short_side and text.isdigit():
        parsed = int(text)
    else:
        raise ValueError(f"size: expected {expected}, got {quote(size)}")
    if min(parsed if isinstance(parsed, tuple) else (parsed,)) < max(minimum, 1):
        raise ValueError(f"size: expected at least {max(minimum, 1)} pixels, got {quote(size)}")
    return parsed


def resolve_device(spec: PipelineSpec) -> str:
    """The pipeline's device (``ianet.device.resolve_device``): ``auto`` -> ``cuda:0`` when
    a stage needs torch and CUDA is there, else ``cpu``.

    Torch is imported only when a stage needs it; an unusable CUDA device is a ConfigError.
    """
    if spec.device == "cpu" or (spec.device == "auto" and not spec.needs_torch):
        return "cpu"
    if not spec.needs_torch:
        return f"cuda:{int(spec.device.partition(':')[2] or 0)}"
    from ianet.device import resolve_device as resolve_torch_device

    try:
        device = resolve_torch_device(spec.device)
    except InputError as error:
        raise ConfigError(str(error)) from None
    return str(device)
