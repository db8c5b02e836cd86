"""Sinks' outputs: written under temporary names, renamed to their final names only when
the run succeeds (``ianet.atomic`` does the writing; see ``docs/architecture.md``)."""

from __future__ import annotations

from pathlib import Path

from ianet.atomic import commit, remove, remove_stale_temporaries, temporary_name
from ianet_stream.errors import InputError


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
