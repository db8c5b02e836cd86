"""Several inputs read at once into one pipeline: a thread per input, one ``emit``.

``Multiplexer`` runs sources (each reading one input) in threads of their own and passes
their messages on, as they come, through one ``emit``, one message at a time (a lock: the
runner's emit is not thread-safe), so the streams' frames interleave in the pipeline. Stream
ids and names are made unique across the inputs, in the order the inputs are given: a second
``clip`` becomes ``clip-2``. The first error of an input stops the others; ``run`` raises it,
naming that input, once every thread has ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from ianet_stream.errors import InputError, QueueClosed
from ianet_stream.frame import Frame, StreamEnd, StreamStart
from ianet_stream.stage import Context, Emit, Message, Source
from ianet_stream.uris import StreamNames, parse_uri, redact


class _Renamer:
    """Gives one input's streams their run-wide unique id (also their name).

    The input's first stream takes the name reserved for it (so that names follow the order
    of the inputs, not the order their threads start in); any later one claims a new name.
    """

    def __init__(self, names: StreamNames, reserved: str, expected: str) -> None:
        self._names = names
        self._reserved: str | None = reserved
        self._expected = expected
        self._ids: dict[str, str] = {}

    def report_to(self, context: Context) -> Callable[[str, str], None]:
        """A ``Context.stream_state`` that tells ``context`` about this input's streams
        under their run-wide ids."""

        def report(stream: str, state: str) -> None:
            context.report(self._ids.get(stream, stream), state)

        return report

    def __call__(self, message: Message) -> Message:
        if isinstance(message, StreamStart):
            info = message.info
            if self._reserved is not None and info.name == self._expected:
                unique, self._reserved = self._reserved, None
            else:
                unique = self._names.claim(info.name)
            self._ids[info.id] = unique
            return StreamStart(replace(info, id=unique, name=unique))
        if isinstance(message, Frame):
            message.stream = self._ids.get(message.stream, message.stream)
            return message
        return StreamEnd(self._ids.get(message.stream, message.stream))


class Multiplexer:
    """Sources read concurrently, each in its own thread, their messages through one emit.

    Args:
        sources: one source per input (each emitting its own streams).
        uris: the inputs, for stream names and error messages, in the sources' order.
    """

    def __init__(self, sources: Sequence[Source], uris: Sequence[str]) -> None:
        if len(sources) != len(uris):
            raise ValueError(f"Multiplexer: {len(sources)} sources for {len(uris)} inputs")
        self.sources = list(sources)
        self.uris = list(uris)
        self._names = StreamNames()
        expected = [parse_uri(uri).name for uri in self.uris]
        self._renamers = [_Renamer(self._names, self._names.claim(name), name) for name in expected]
        for source, renamer in zip(self.sources, self._renamers, strict=True):
            source.context = replace(source.context, stream_state=renamer.report_to(source.context))

    def open(self) -> None:
        """Open every input, in order: the first that cannot be opened raises."""
        for source in self.sources:
            source.open()

    def run(self, emit: Emit) -> None:
        """Read every input to its end (or until ``stop``); raise the first input's error."""
        lock = threading.Lock()
        errors: list[tuple[str, Exception]] = []

        def read(source: Source, uri: str, rename: _Renamer) -> None:
            def forward(message: Message) -> None:
                with lock:
                    emit(rename(message))

            try:
                source.run(forward)
            except Exception as error:
                errors.append((uri, error))
                self.stop()

        threads = [
            threading.Thread(target=read, args=args, name=f"input-{i}", daemon=True)
            for i, args in enumerate(zip(self.sources, self.uris, self._renamers, strict=True))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            uri, error = errors[0]
            if isinstance(error, QueueClosed) or redact(uri) in str(error):
                raise error
            reason = str(error) if isinstance(error, InputError) else repr(error)
            raise InputError(f"{redact(uri)}: {reason}") from error

    def stop(self) -> None:
        """Ask every input to end soon (each ends its streams)."""
        for source in self.sources:
            source.stop()

    def close(self) -> None:
        """Close every input; the first error (if any) is raised once all are closed."""
        failures = []
        for source in self.sources:
            try:
                source.close()
            except Exception as error:
                failures.append(error)
        if failures:
            raise failures[0]
