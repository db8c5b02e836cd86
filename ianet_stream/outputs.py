"""Sinks' outputs: written under temporary names, renamed to their final names only when
the run succeeds (``ianet.atomic`` does the writing; see ``docs/architecture.md``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ianet.atomic import (
    check_replaceable,
    commit,
    remove,
    remove_stale_temporaries,
    temporary_name,
    written_by,
)
from ianet_stream.errors import ConfigError, InputError
from ianet_stream.stage import PlannedOutput
from ianet_stream.uris import VIDEO_EXTENSIONS


class PendingOutputs:
    """A sink's files and folders under temporary names, renamed at the end of the run.

    ``reserve(final)`` gives the temporary name to write to (and removes ``final``'s stale
    temporary names, left by killed runs); ``complete(temporary)`` marks it whole;
    ``finish(failed)`` renames the complete ones unless ``failed`` and removes every other
    temporary name, so a final name only ever holds a complete output. An existing file at
    a final name is replaced in one rename; an existing folder only when it is a previous
    output of the same ``writer`` (given to ``reserve``; see ``ianet.atomic``).
    """

    def __init__(self) -> None:
        self._finals: dict[Path, tuple[Path, str | None]] = {}
        self._complete: set[Path] = set()

    def reserve(self, final: Path, writer: str | None = None) -> Path:
        """Create ``final``'s folder and return a fresh temporary name beside it."""
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final)
        temporary = temporary_name(final)
        self._finals[temporary] = (final, writer)
        return temporary

    def complete(self, temporary: Path) -> None:
        """Mark a reserved output as complete."""
        self._complete.add(temporary)

    def finish(self, failed: bool) -> list[Path]:
        """Rename the complete outputs (none when ``failed``), remove the rest; the final names.

        Raises ``InputError`` naming an output that could not take its final name (the
        others are still renamed).
        """
        renamed, problems = [], []
        for temporary, (final, writer) in self._finals.items():
            if failed or temporary not in self._complete:
                remove(temporary)
                continue
            try:
                commit(temporary, final, writer=writer)
            except (FileExistsError, OSError) as error:
                remove(temporary)
                problems.append(str(error))
                continue
            renamed.append(final)
        self._finals.clear()
        self._complete.clear()
        if problems:
            raise InputError(problems[0])
        return renamed


def same_path(first: Path, second: Path) -> bool:
    """Whether two paths name the same file or folder: through symlinks and ``..``, hard
    links, and letter case where the file system ignores it."""
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    one, other = first.resolve(), second.resolve()
    if one == other:
        return True
    if one.parent != other.parent or one.name.casefold() != other.name.casefold():
        return False
    existing = one if one.exists() else other
    return _ignores_case(existing.parent)


def _ignores_case(folder: Path) -> bool:
    """Whether ``folder``'s file system finds names whatever their letter case."""
    swapped = folder.with_name(folder.name.swapcase())
    return folder.name != swapped.name and swapped.exists() and os.path.samefile(folder, swapped)


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def check_paths(inputs: Sequence[str | Path], outputs: Sequence[PlannedOutput]) -> None:
    """Before anything runs: refuse outputs that would overwrite or remove an input, or
    replace a folder their writer did not create (``ConfigError`` naming both)."""
    files = [Path(item) for item in inputs if Path(item).exists()]
    for output in outputs:
        for source in files:
            if same_path(output.path, source):
                raise ConfigError(
                    f"{output.path}: the output is the input {source}; choose another output"
                )
            if output.writer is not None and _inside(source, output.path):
                raise ConfigError(
                    f"{output.path}: the output folder holds the input {source}; "
                    "choose another output"
                )
        try:
            check_replaceable(output.path, output.writer)
        except FileExistsError as error:
            raise ConfigError(str(error)) from None
    for index, output in enumerate(outputs):
        for other in outputs[index + 1 :]:
            if same_path(output.path, other.path):
                raise ConfigError(f"{output.path}: two outputs would write it")


def is_complete(output: Path) -> bool:
    """Whether an earlier run's output is whole: a folder one of our writers committed
    (``ianet.atomic``'s marker), a video that opens with at least one frame, or another
    non-empty file."""
    if output.is_dir():
        return written_by(output) is not None
    if not output.is_file() or output.stat().st_size == 0:
        return False
    if output.suffix.lower().lstrip(".") not in VIDEO_EXTENSIONS:
        return True
    from ianet_stream.video import plays

    return plays(output)
