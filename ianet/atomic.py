"""Atomic writes: a final name only ever holds a complete file or folder.

Every writer of the project goes through ``atomic_output(final)`` (or ``write_bytes`` /
``write_text``): it gives a temporary name beside ``final`` that keeps ``final``'s
extension (so savers and muxers pick the right format) and names its writer (process id
and host: ``out/.clip.mp4.part-1a2b3c4d-4242@host.mp4``); when the block succeeds the
data is flushed to disk and the temporary name is renamed to ``final``, when it fails the
temporary name is removed. Leftovers of a writer that was killed before it could clean up
are removed the next time the same output is written on the same host.

A folder is committed the same way: built under the temporary name, then renamed. An
existing file at the final name is replaced in one rename. An existing folder is replaced
only when it is a previous output of the same writer: every folder committed with a
``writer`` tag carries a small marker file (``.ianet-stream``) naming that writer, and a
folder without the same marker (a user's data) is never touched.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
_PART = ".part-"
MARKER = ".ianet-stream"  # in a committed folder: which writer made it


def temporary_name(final: Path) -> Path:
    """A hidden name beside ``final`` with its extension and its writer's pid and host.

    ``out/clip.mp4`` -> ``out/.clip.mp4.part-1a2b3c4d-4242@host.mp4``.
    """
    token = f"{secrets.token_hex(4)}-{os.getpid()}@{_HOST}"
    return final.with_name(f".{final.name}{_PART}{token}{final.suffix}")


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary name made by ``temporary_name``."""
    return path.name.startswith(".") and _PART in path.name


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove ``final``'s temporary names whose writer, on this host, no longer runs (a
    process killed before it could clean up); other hosts' and live writers' stay."""
    prefix = f".{final.name}{_PART}"
    pattern = re.compile(rf"{re.escape(prefix)}[0-9a-f]{{8}}-(\d+)@(.+){re.escape(final.suffix)}")
    removed = []
    for candidate in final.parent.glob(f"{glob.escape(prefix)}*"):
        match = pattern.fullmatch(candidate.name)
        if match and match[2] == _HOST and not _running(int(match[1])):
            remove(candidate)
            removed.append(candidate)
            log.info("%s: removed, left by a run that was killed", candidate)
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (assumed so where signal 0 cannot probe it)."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) sends CTRL_C_EVENT on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(path: Path) -> None:
    """Remove one of our temporary names (a file, or a folder we built)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (where the platform allows)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return  # Windows cannot open folders
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on folders
    finally:
        os.close(descriptor)


def written_by(folder: Path) -> str | None:
    """The writer tag of a folder we committed, or ``None`` for any other folder."""
    try:
        return (folder / MARKER).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def check_replaceable(final: Path, writer: str | None = None) -> None:
    """Raise ``FileExistsError`` when ``final`` is a folder that ``commit`` would not
    replace (one not written by ``writer``): to check before any work is done."""
    if not final.is_dir() or final.is_symlink():
        return
    if writer is None or written_by(final) != writer:
        made = f"not an output of {writer}" if writer else "a folder"
        raise FileExistsError(
            f"{final}: already exists and is {made}; it is left as it is "
            "(remove it or choose another name)"
        )


def commit(
    temporary: Path, final: Path, *, writer: str | None = None, durable: bool = True
) -> None:
    """Rename a complete ``temporary`` to ``final``, flushed to disk first when ``durable``
    (off for the many small files of a folder that is itself committed as a whole).

    A file at ``final`` is replaced in one rename. A folder ``temporary`` gets the marker
    of ``writer``; a folder at ``final`` is replaced only when it carries the same marker,
    its entries then removed one by one; otherwise ``FileExistsError`` says why.
    """
    if temporary.is_dir() and writer is not None:
        (temporary / MARKER).write_text(f"{writer}\n", encoding="utf-8")
    if durable and temporary.is_file():
        _fsync(temporary)
    if final.is_dir() and not final.is_symlink():
        check_replaceable(final, writer)
        aside = temporary_name(final)
        final.rename(aside)
        os.replace(temporary, final)
        _remove_previous_output(aside)
    else:
        os.replace(temporary, final)
    if durable:
        _fsync(final.parent)


def _remove_previous_output(folder: Path) -> None:
    """Remove a previous output folder (already checked to hold our files only)."""
    for entry in sorted(folder.rglob("*"), key=lambda path: len(path.parts), reverse=True):
        if entry.is_dir() and not entry.is_symlink():
            entry.rmdir()
        else:
            entry.unlink()
    folder.rmdir()


@contextlib.contextmanager
def atomic_output(
    final: str | os.PathLike[str], *, writer: str | None = None, durable: bool = True
) -> Iterator[Path]:
    """Yield a temporary name beside ``final``; rename it to ``final`` when the block ends
    without an error, remove it otherwise (``commit``'s rules for what ``final`` holds).

    The caller writes a file, or creates a folder, at the yielded path.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    temporary = temporary_name(final)
    try:
        yield temporary
        commit(temporary, final, writer=writer, durable=durable)
    finally:
        remove(temporary)


def write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically; returns ``final`` as a Path."""
    with atomic_output(final) as temporary:
        temporary.write_bytes(data)
    return Path(final)


def write_text(final: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``final`` atomically; returns ``final`` as a Path."""
    return write_bytes(final, text.encode("utf-8"))
