"""``ianetsaliency``: IANet's salient-object stages as a GStreamer video filter.

GStreamer's Python plugin loader (gst-python) imports this file from
``$GST_PLUGIN_PATH/python``; ``ianet-stream gst-path`` prints the environment it needs.
The element is a thin adapter over the stage classes of the YAML pipeline: each buffer
becomes a ``Frame`` that goes through ``flow`` -> ``saliency`` -> ``temporal`` ->
``composite``
(``start_stream``, ``process``, ``end_stream``, ``close``, as the runner drives them, but
one after another in the element's streaming thread). Its properties are those stages'
options (defaults and help read from their ``Options`` dataclasses, values checked by the
pipeline configuration's own rules) and the pipeline's ``device`` and ``batch``.

- Caps: RGB, BGR, RGBA, BGRA, RGBx or BGRx in, any size; out the same formats, GRAY8 too
  with ``mode=mask`` (the map itself) and only RGBA or BGRA with ``mode=alpha``. Timestamps,
  durations and flags are copied from each input buffer to its output buffer.
- ``batch``: frames per model call. With ``batch`` > 1 the element holds buffers until it
  has a batch (``submit_input_buffer``/``generate_output`` of ``GstBaseTransform``), adds the
  frames it holds to the latency it reports, and pushes what it holds at a caps change, a
  new stream (``stream-start``) or EOS; a flush drops them.
- A stream (per-stream state such as the flow stage's previous frame) lasts from a
  ``stream-start`` event to EOS, the next ``stream-start`` or a flush.
- Properties are read when the element starts (READY -> PAUSED, which also loads the
  model); a property set while it runs keeps its value in use and posts a warning.
- Errors (a bad option, a checkpoint that cannot be read, a stage that fails) are posted on
  the bus as GStreamer errors naming the element, the property or the file.
- QoS: late buffers (by the QoS events of a synchronised sink) are dropped before any
  work, as ``GstBaseTransform`` does; for the freshest frames from a live source put
  ``queue leaky=downstream max-size-buffers=1`` before the element.
"""

from __future__ import annotations

import os
import site
import threading
import traceback
import types
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstBase, GstVideo  # noqa: E402


def _watch_dependencies() -> None:
    """Make GStreamer scan the loader again when this file, ``PYTHONPATH`` or the folders
    it names change: a scan that failed (to import this project before ``PYTHONPATH`` was
    set, or an older version of this file) is not kept in GStreamer's registry cache."""
    plugin = getattr(Gst, "__plugin__", None)  # set by the loader while it loads files
    if plugin is not None:
        folder, name = os.path.split(os.path.abspath(__file__))
        plugin.add_dependency_simple(None, folder, name, Gst.PluginDependencyFlags.NONE)
        plugin.add_dependency_simple("PYTHONPATH", None, None, Gst.PluginDependencyFlags.NONE)


def _add_site_folders() -> None:
    """Run the ``.pth`` files of the ``PYTHONPATH`` folders (an editable install's), as
    the environment's own interpreter does for its site-packages."""
    for folder in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if folder:
            site.addsitedir(folder)


_watch_dependencies()
_add_site_folders()
# As the CLI: idle OpenMP workers sleep rather than spin beside GStreamer's other threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    import numpy as np

    from ianet.device import check_device
    from ianet_stream.config import PipelineSpec, StageSpec, convert, resolve_device
    from ianet_stream.errors import ConfigError, InputError
    from ianet_stream.frame import Frame, StreamInfo, to_numpy
    from ianet_stream.stage import Context, Stage
    from ianet_stream_plugins.composite import Composite
    from ianet_stream_plugins.flow import Flow
    from ianet_stream_plugins.saliency import Saliency
    from ianet_stream_plugins.temporal import Temporal
except ImportError as error:
    raise ImportError(
        f"ianetsaliency: {error}; export what `ianet-stream gst-path` prints"
    ) from error

STAGES: dict[str, type[Stage]] = {
    "flow": Flow,
    "saliency": Saliency,
    "temporal": Temporal,
    "composite": Composite,
}
MODES = ("mask", "alpha", "blur", "replace", "highlight")
NANOSECONDS = Fraction(1, Gst.SECOND)


@dataclass(frozen=True)
class Option:
    """A property that sets a stage's option; ``none`` is the value that stands for the
    option's ``None`` (GObject properties have no None)."""

    property: str
    stage: str
    field: str
    none: Any = None


OPTIONS = (
    Option("checkpoint", "saliency", "checkpoint"),
    Option("size", "saliency", "size", none=0),
    Option("precision", "saliency", "precision"),
    Option("flow-method", "flow", "method"),
    Option("flow-preset", "flow", "preset"),
    Option("flow-size", "flow", "size", none="none"),
    Option("flow-alignment", "flow", "alignment"),
    Option("flow-warm-start", "flow", "warm_start"),
    Option("flow-weights", "flow", "weights"),
    Option("temporal", "temporal", "enabled"),
    Option("mode", "composite", "mode"),
    Option("threshold", "composite", "threshold", none=0.0),
    Option("feather", "composite", "feather"),
    Option("strength", "composite", "strength"),
    Option("background", "composite", "background"),
    Option("style", "composite", "style"),
    Option("dim", "composite", "dim"),
    Option("tint", "composite", "tint", none=""),
    Option("outline", "composite", "outline"),
    Option("outline-colour", "composite", "outline_colour"),
)


@dataclass(frozen=True)
class Layout:
    """How a video format stores a pixel: bytes, where red, green and blue are, and the
    byte of alpha (or padding), if any."""

    size: int
    colours: tuple[int, ...]
    alpha: int | None = None


LAYOUTS = {
    "RGB": Layout(3, (0, 1, 2)),
    "BGR": Layout(3, (2, 1, 0)),
    "RGBA": Layout(4, (0, 1, 2), 3),
    "BGRA": Layout(4, (2, 1, 0), 3),
    "RGBx": Layout(4, (0, 1, 2), 3),
    "BGRx": Layout(4, (2, 1, 0), 3),
    "GRAY8": Layout(1, (0,)),
}
INPUT_FORMATS = ("RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx")


def output_formats(mode: str, input_format: str | None = None) -> tuple[str, ...]:
    """The formats ``mode`` can output, the preferred first (for ``input_format``)."""
    if mode == "alpha":
        bgr = input_format is not None and input_format.startswith("BGR")
        return ("BGRA", "RGBA") if bgr else ("RGBA", "BGRA")
    formats = (("GRAY8",) if mode == "mask" else ()) + INPUT_FORMATS
    if input_format in formats and mode != "mask":
        formats = (input_format, *(f for f in formats if f != input_format))
    return formats


def _caps(formats: tuple[str, ...]) -> Gst.Caps:
    return Gst.Caps.from_string(
        f"video/x-raw, format=(string){{ {', '.join(formats)} }}, width=(int)[ 1, max ], "
        "height=(int)[ 1, max ], framerate=(fraction)[ 0/1, max ]"
    )


def _value_type(annotation: Any) -> type:
    """The GObject type of an option's values: its annotation without None; choices
    (``Literal``) and unions of several types are strings."""
    arms = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    kinds = [arm for arm in arms or (annotation,) if arm is not type(None)]
    if len(kinds) != 1 or get_origin(kinds[0]) is Literal:
        return str
    return kinds[0]


def _param_spec(option: Option) -> tuple[Any, ...]:
    """The GObject property of a stage option: its type, help and default from the
    option's field, ``none`` standing for None."""
    cls = STAGES[option.stage].Options
    field = cls.__dataclass_fields__[option.field]
    kind = _value_type(get_type_hints(cls)[option.field])
    default = option.none if field.default is None else kind(field.default)
    blurb = field.metadata.get("help", "")
    if option.none is not None:
        blurb += f" ({option.none!r}: none)"
    flags = GObject.ParamFlags.READWRITE | Gst.PARAM_MUTABLE_READY
    if kind is int:
        return (int, option.property, blurb, GLib.MININT, GLib.MAXINT, default, flags)
    if kind is float:
        return (float, option.property, blurb, -GLib.MAXDOUBLE, GLib.MAXDOUBLE, default, flags)
    return (kind, option.property, blurb, default, flags)


def _properties() -> dict[str, tuple[Any, ...]]:
    flags = GObject.ParamFlags.READWRITE | Gst.PARAM_MUTABLE_READY
    properties = {option.property: _param_spec(option) for option in OPTIONS}
    properties["mode"] = (str, "mode", f"what to output: {', '.join(MODES)}", "blur", flags)
    properties["device"] = (str, "device", "auto, cpu, cuda or cuda:N", "auto", flags)
    properties["batch"] = (
        int,
        "batch",
        "frames per model call; above 1 the element holds frames until it has a batch",
        1,
        GLib.MAXINT,
        1,
        flags,
    )
    return properties


PROPERTIES = _properties()


class StageSequence:
    """Stages driven one after another in the caller's thread, as the runner drives them
    in threads: frames a stage flushes at a stream's end go through the stages after it."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    def open(self) -> None:
        for stage in self.stages:
            stage.open()

    def start_stream(self, info: StreamInfo) -> None:
        for stage in self.stages:
            stage.start_stream(info)

    def process(self, frames: list[Frame]) -> list[Frame]:
        for stage in self.stages:
            frames = stage.process(frames) if frames else []
        return frames

    def end_stream(self, stream: str) -> list[Frame]:
        frames: list[Frame] = []
        for stage in self.stages:
            frames = stage.process(frames) if frames else []
            frames += stage.end_stream(stream)
        return frames

    def close(self) -> None:
        for stage in self.stages:
            stage.close()


class IANetSaliency(GstBase.BaseTransform):
    """The element: see the module's docstring."""

    __gstmetadata__ = (
        "IANet salient-object filter",
        "Filter/Effect/Video",
        "Salient-object maps (IANet, from the picture and its optical flow) and composites: "
        "mask, alpha matte, background blur or replacement, highlight",
        "ianet-stream",
    )
    __gsttemplates__ = (
        Gst.PadTemplate.new(
            "sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, _caps(INPUT_FORMATS)
        ),
        Gst.PadTemplate.new(
            "src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, _caps(("GRAY8", *INPUT_FORMATS))
        ),
    )
    __gtype_name__ = "GstIANetSaliency"
    __gproperties__ = PROPERTIES

    def __init__(self) -> None:
        super().__init__()
        self.set_passthrough(False)
        self.set_qos_enabled(True)
        self.srcpad.add_probe(
            Gst.PadProbeType.QUERY_UPSTREAM | Gst.PadProbeType.PULL, self._add_held_latency
        )
        self._values = {name: spec[-2] for name, spec in PROPERTIES.items()}
        self._lock = threading.Lock()
        self._running = False
        self._stages: StageSequence | None = None
        self._batch = 1
        self._in_info: GstVideo.VideoInfo | None = None
        self._out_info: GstVideo.VideoInfo | None = None
        self._stream_uri = ""
        self._streams = 0
        self._stream: str | None = None
        self._held: list[Frame] = []
        self._inputs: dict[tuple[str, int], Gst.Buffer] = {}
        self._ready: deque[Gst.Buffer] = deque()
        self._index = 0
        self._live = False
        self._processed = 0
        self._earliest: int | None = None
        self._dropped = 0

    # Properties

    def do_get_property(self, spec: GObject.ParamSpec) -> Any:
        with self._lock:
            return self._values[spec.name]

    def do_set_property(self, spec: GObject.ParamSpec, value: Any) -> None:
        with self._lock:
            if not self._running:
                self._values[spec.name] = value
                return
        self._warn(
            f"{spec.name}: set while running; the element keeps using "
            f"{self._values[spec.name]!r} until it starts again (READY -> PAUSED)"
        )

    # Start and stop

    def do_start(self) -> bool:
        with self._lock:
            values = dict(self._values)
            self._running = True
        stages: list[Stage] = []
        try:
            self._batch = values["batch"]
            stages = self._build_stages(values)
            self._stages = StageSequence(stages)
            self._stages.open()
        except Exception as error:
            for stage in stages:
                stage.close()
            self._stages = None
            self._post_error(error)
            with self._lock:
                self._running = False
            return False
        return True

    def do_stop(self) -> bool:
        self._reset()
        if self._stages is not None:
            self._stages.close()
            self._stages = None
        with self._lock:
            self._running = False
        return True

    def _build_stages(self, values: dict[str, Any]) -> list[Stage]:
        """The stages, their options from the properties, checked by the configuration's
        rules (errors name the property)."""
        name = self.get_name()
        if values["mode"] not in MODES:
            raise ConfigError(
                f"{name}.mode: expected one of {', '.join(MODES)}, got {values['mode']!r}"
            )
        try:
            check_device(values["device"], f"{name}.device")
        except InputError as error:
            raise ConfigError(str(error)) from None
        specs = []
        for index, (stage, cls) in enumerate(STAGES.items()):
            hints = get_type_hints(cls.Options)
            fields = {}
            for option in (o for o in OPTIONS if o.stage == stage):
                value = values[option.property]
                path = f"{name}.{option.property}"
                fields[option.field] = (
                    None if value == option.none else convert(value, hints[option.field], path)
                )
            try:
                options = cls.Options(**fields)
            except ValueError as error:
                raise ConfigError(f"{name}.{_property_message(stage, str(error))}") from None
            specs.append(StageSpec(index, stage, cls, options))
        try:
            device = resolve_device(PipelineSpec(tuple(specs), device=values["device"]))
        except ConfigError as error:
            raise ConfigError(f"{name}.{error}") from None
        return [
            spec.cls(spec.options, Context(device=device, batch=self._batch, quiet=True))
            for spec in specs
        ]

    # Caps

    def do_transform_caps(
        self, direction: Gst.PadDirection, caps: Gst.Caps, filter: Gst.Caps | None
    ) -> Gst.Caps:
        with self._lock:
            mode = self._values["mode"]
        result = Gst.Caps.new_empty()
        for index in range(caps.get_size()):
            structure = caps.get_structure(index)
            if direction == Gst.PadDirection.SINK:
                known = structure.get_value("format")
                formats = output_formats(mode, known if isinstance(known, str) else None)
            else:
                formats = INPUT_FORMATS
            for video_format in formats:
                candidate = structure.copy()
                for name in ("format", "colorimetry", "chroma-site"):
                    candidate.remove_field(name)
                candidate.set_value("format", video_format)
                result.append_structure(candidate)
        if filter is not None:
            result = filter.intersect_full(result, Gst.CapsIntersectMode.FIRST)
        return result

    def do_fixate_caps(
        self, direction: Gst.PadDirection, caps: Gst.Caps, othercaps: Gst.Caps
    ) -> Gst.Caps:
        if direction == Gst.PadDirection.SINK:
            with self._lock:
                mode = self._values["mode"]
            known = caps.get_structure(0).get_value("format")
            for video_format in output_formats(mode, known):
                wanted = Gst.Caps.from_string(f"video/x-raw, format=(string){video_format}")
                preferred = othercaps.intersect(wanted)
                if not preferred.is_empty():
                    return preferred.fixate()
        return othercaps.fixate()

    def do_set_caps(self, incaps: Gst.Caps, outcaps: Gst.Caps) -> bool:
        self._in_info = GstVideo.VideoInfo.new_from_caps(incaps)
        self._out_info = GstVideo.VideoInfo.new_from_caps(outcaps)
        return True

    # Buffers

    def do_submit_input_buffer(self, is_discont: bool, buffer: Gst.Buffer) -> Gst.FlowReturn:
        if self._late(buffer):
            return Gst.FlowReturn.CUSTOM_SUCCESS  # GST_BASE_TRANSFORM_FLOW_DROPPED
        try:
            if self._stream is None:
                self._start_stream()
            frame = Frame(
                image=self._picture(buffer),
                index=self._index,
                stream=self._stream,
                pts=None if buffer.pts == Gst.CLOCK_TIME_NONE else buffer.pts,
                time_base=NANOSECONDS,
            )
            self._index += 1
            self._processed += 1
            self._inputs[frame.stream, frame.index] = buffer
            self._held.append(frame)
            if len(self._held) >= self._batch:
                self._output(self._stages.process(self._take_held()))
        except Exception as error:
            self._post_error(error)
            return Gst.FlowReturn.ERROR
        return Gst.FlowReturn.OK

    def do_generate_output(self) -> tuple[Gst.FlowReturn, Gst.Buffer | None]:
        return Gst.FlowReturn.OK, self._ready.popleft() if self._ready else None

    def _take_held(self) -> list[Frame]:
        frames, self._held = self._held, []
        return frames

    def _picture(self, buffer: Gst.Buffer) -> np.ndarray:
        """The buffer's picture as an HxWx3 uint8 RGB array of its own."""
        info = self._in_info
        layout = LAYOUTS[GstVideo.video_format_to_string(info.finfo.format)]
        offset, stride = _plane(buffer, info)
        mapped, memory = buffer.map(Gst.MapFlags.READ)
        if not mapped:
            raise RuntimeError("cannot map an input buffer")
        try:
            pixels = _pixels(memory, offset, stride, info, layout)
            return np.ascontiguousarray(pixels[..., list(layout.colours)])
        finally:
            buffer.unmap(memory)

    def _output(self, frames: list[Frame]) -> None:
        """Queue the output buffers of ``frames`` (each with its input's timestamps)."""
        info = self._out_info
        layout = LAYOUTS[GstVideo.video_format_to_string(info.finfo.format)]
        for frame in frames:
            source = self._inputs.pop((frame.stream, frame.index))
            picture = to_numpy(frame.output)
            buffer = Gst.Buffer.new_allocate(None, info.size, None)
            mapped, memory = buffer.map(Gst.MapFlags.WRITE)
            if not mapped:
                raise RuntimeError("cannot map an output buffer")
            try:
                pixels = _pixels(memory, info.offset[0], info.stride[0], info, layout)
                pixels[..., list(layout.colours)] = picture[..., : len(layout.colours)]
                if layout.alpha is not None:
                    pixels[..., layout.alpha] = picture[..., 3] if picture.shape[2] == 4 else 255
            finally:
                buffer.unmap(memory)
            flags = Gst.BufferCopyFlags.FLAGS | Gst.BufferCopyFlags.TIMESTAMPS
            buffer.copy_into(source, flags, 0, source.get_size())
            buffer.unset_flags(Gst.BufferFlags.GAP)
            self._ready.append(buffer)

    # Streams

    def _start_stream(self) -> None:
        info = self._in_info
        self._stream = f"{self.get_name()}-{self._streams}"
        self._streams += 1
        self._index = 0
        rate = Fraction(info.fps_n, info.fps_d) if info.fps_n > 0 else None
        self._live = self._upstream_is_live()
        self._stages.start_stream(
            StreamInfo(
                id=self._stream,
                name=self._stream,
                uri=self._stream_uri,
                width=info.width,
                height=info.height,
                rate=rate,
                time_base=NANOSECONDS,
                live=self._live,
            )
        )

    def _upstream_is_live(self) -> bool:
        """Whether the pipeline upstream is live (asked with a latency query)."""
        query = Gst.Query.new_latency()
        return self.sinkpad.peer_query(query) and query.parse_latency()[0]

    def _push_ready(self) -> bool:
        """Push the queued output buffers from an event handler; False if one failed."""
        while self._ready:
            if self.srcpad.push(self._ready.popleft()) != Gst.FlowReturn.OK:
                self._ready.clear()
                return False
        return True

    def _finish_stream(self) -> bool:
        """Process the frames held, end the stream, push all; False after an error."""
        if self._stream is None:
            return True
        stream, self._stream = self._stream, None
        try:
            frames = self._stages.process(self._take_held())
            self._output(frames + self._stages.end_stream(stream))
        except Exception as error:
            self._post_error(error)
            return False
        return self._push_ready()

    def _flush_held(self) -> bool:
        """Process and push the frames held (before a caps change); False after an error."""
        if not self._held:
            return True
        try:
            self._output(self._stages.process(self._take_held()))
        except Exception as error:
            self._post_error(error)
            return False
        return self._push_ready()

    def _reset(self) -> None:
        """Drop what is held and end the stream without output (a flush, a stop)."""
        self._held.clear()
        self._inputs.clear()
        self._ready.clear()
        if self._stream is not None and self._stages is not None:
            self._stages.end_stream(self._stream)
        self._stream = None
        self._earliest = None

    # Events and queries

    def do_sink_event(self, event: Gst.Event) -> bool:
        kind = event.type
        if kind == Gst.EventType.STREAM_START:
            self._finish_stream()
            self._stream_uri = event.parse_stream_start()
        elif kind == Gst.EventType.EOS:
            self._finish_stream()
        elif kind == Gst.EventType.CAPS:
            self._flush_held()
        elif kind == Gst.EventType.FLUSH_STOP:
            self._reset()
        return GstBase.BaseTransform.do_sink_event(self, event)

    def do_src_event(self, event: Gst.Event) -> bool:
        if event.type == Gst.EventType.QOS:
            _, _, diff, timestamp = event.parse_qos()
            self._earliest = timestamp + diff if timestamp != Gst.CLOCK_TIME_NONE else None
        return GstBase.BaseTransform.do_src_event(self, event)

    def _add_held_latency(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        """A probe on the source pad: latency answers count the frames a batch holds."""
        query = info.get_query()
        if query.type == Gst.QueryType.LATENCY:
            live, low, high = query.parse_latency()
            held = self._held_latency()
            if high != Gst.CLOCK_TIME_NONE:
                high += held
            query.set_latency(live, low + held, high)
        return Gst.PadProbeReturn.OK

    def _held_latency(self) -> int:
        """How long the frames of a batch wait for the batch to fill, in nanoseconds."""
        info = self._in_info
        if info is None or info.fps_n <= 0:
            return 0
        return Gst.util_uint64_scale(Gst.SECOND * (self._batch - 1), info.fps_d, info.fps_n)

    def _late(self, buffer: Gst.Buffer) -> bool:
        """Whether QoS says the buffer is already too late to show; posts a QoS message."""
        earliest = self._earliest
        if (
            earliest is None
            or not self.is_qos_enabled()
            or self.segment.format != Gst.Format.TIME
            or buffer.pts == Gst.CLOCK_TIME_NONE
        ):
            return False
        running = self.segment.to_running_time(Gst.Format.TIME, buffer.pts)
        if running == Gst.CLOCK_TIME_NONE or running > earliest:
            return False
        self._dropped += 1
        stream_time = self.segment.to_stream_time(Gst.Format.TIME, buffer.pts)
        message = Gst.Message.new_qos(
            self, self._live, running, stream_time, buffer.pts, buffer.duration
        )
        message.set_qos_values(earliest - running, 1.0, 1000000)
        message.set_qos_stats(Gst.Format.BUFFERS, self._processed, self._dropped)
        self.post_message(message)
        return True

    # Messages

    def _post_error(self, error: Exception) -> None:
        """Post ``error`` on the bus as a GStreamer error naming this element and where it
        was raised: a user's error (an option, a file) in one line, any other with its
        traceback as debug information."""
        lines = str(error).strip().splitlines()
        text, debug = (lines[0] if lines else ""), None
        if isinstance(error, ConfigError):
            domain, code = Gst.LibraryError, Gst.LibraryError.SETTINGS
        elif isinstance(error, InputError):
            domain, code = Gst.ResourceError, Gst.ResourceError.OPEN_READ
        else:
            domain, code = Gst.LibraryError, Gst.LibraryError.FAILED
            text = f"{type(error).__name__}: {text}"
            debug = "".join(traceback.format_exception(error))
        raised = traceback.extract_tb(error.__traceback__)
        file, function, line = os.path.basename(__file__), "", 0
        if raised:
            file, function = os.path.basename(raised[-1].filename), raised[-1].name
            line = raised[-1].lineno or 0
        self.message_full(
            Gst.MessageType.ERROR, domain.quark(), code, text, debug, file, function, line
        )

    def _warn(self, text: str) -> None:
        domain, code = Gst.CoreError, Gst.CoreError.STATE_CHANGE
        file = os.path.basename(__file__)
        self.message_full(Gst.MessageType.WARNING, domain.quark(), code, text, None, file, "", 0)


def _plane(buffer: Gst.Buffer, info: GstVideo.VideoInfo) -> tuple[int, int]:
    """Where a buffer's picture starts and its row stride: from its video meta, if any."""
    meta = GstVideo.buffer_get_video_meta(buffer)
    if meta is not None:
        return meta.offset[0], meta.stride[0]
    return info.offset[0], info.stride[0]


def _pixels(
    memory: Gst.MapInfo, offset: int, stride: int, info: GstVideo.VideoInfo, layout: Layout
) -> np.ndarray:
    """The HxWxB pixels of a mapped buffer (numpy checks that they lie inside it)."""
    shape = (info.height, info.width, layout.size)
    strides = (stride, layout.size, 1)
    return np.ndarray(shape, np.uint8, buffer=memory.data, offset=offset, strides=strides)


def _property_message(stage: str, message: str) -> str:
    """An option's error message (``size: expected ...``) naming the property instead."""
    for option in OPTIONS:
        if option.stage == stage and message.startswith(option.field):
            return option.property + message[len(option.field) :]
    return f"{stage}: {message}"


GObject.type_register(IANetSaliency)
__gstelementfactory__ = ("ianetsaliency", Gst.Rank.NONE, IANetSaliency)
