"""Helpers the PyAV stages share: pictures as numpy arrays, and outputs written under
temporary names that become final only when the run succeeds."""

from __future__ import annotations

import glob
import logging
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np


def to_numpy(picture: Any) -> np.ndarray:
    """A picture or map as a numpy array: numpy as it is, a tensor (any device) downloaded.

    Tensors are recognised by their ``cpu`` method, so this module never imports torch.
    """
    if hasattr(picture, "cpu"):
        picture = picture.cpu().numpy()
    return np.asarray(picture)


def parse_size(size: int | str) -> tuple[int, int] | int:
    """``"640x360"`` -> ``(640, 360)``; ``360`` or ``"360"`` -> ``360`` (the short side)."""
    text = str(size).strip().lower()
    try:
        if "x" in text:
            width, height = (int(part) for part in text.split("x"))
            if width > 0 and height > 0:
                return width, height
        elif int(text) > 0:
            return int(text)
    except ValueError:
        pass
    raise ValueError(f"size: expected WxH or a number of pixels for the short side, got {size!r}")


_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
log = logging.getLogger(__name__)


def temporary_name(final: Path) -> Path:
    """A hidden name beside ``final`` that keeps its extension (so muxers are chosen right)
    and names its writer (process id and host, so leftovers of a killed one can be told).

    ``out/clip.mp4`` -> ``out/.clip.mp4.part-1a2b3c4d-4242@host.mp4``.
    """
    token = f"{secrets.token_hex(4)}-{os.getpid()}@{_HOST}"
    return final.with_name(f".{final.name}.part-{token}{final.suffix}")


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove ``final``'s temporary names whose writer, on this host, no longer runs (a
    process killed before it could clean up); other hosts' and live writers' stay."""
    prefix = f".{final.name}.part-"
    pattern = re.compile(rf"{re.escape(prefix)}[0-9a-f]{{8}}-(\d+)@(.+){re.escape(final.suffix)}")
    removed = []
    for candidate in final.parent.glob(f"{glob.escape(prefix)}*"):
        match = pattern.fullmatch(candidate.name)
        if match and match[2] == _HOST and not _running(int(match[1])):
            _remove(candidate)
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class PendingOutputs:
    """Files and folders written under temporary names, renamed to their final names at the end.

    ``reserve(final)`` gives the temporary name to write to (and removes ``final``'s stale
    temporary names, left by killed runs); ``complete(temporary)`` marks it
    whole; ``finish(failed)`` renames the complete ones (replacing what the final names held)
    unless ``failed``, and removes every other temporary name, so a final name only ever
    holds a complete output.
    """

    def __init__(self) -> None:
        self._finals: dict[Path, Path] = {}
        self._complete: set[Path] = set()

    def reserve(self, final: Path) -> Path:
        """Create ``final``'s folder and return a fresh temporary name beside it."""
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final)
        temporary = temporary_name(final)
        self._finals[temporary] = final
        return temporary

    def complete(self, temporary: Path) -> None:
        """Mark a reserved output as complete."""
        self._complete.add(temporary)

    def discard(self, temporary: Path) -> None:
        """Remove a reserved output now (it will not be renamed)."""
        self._finals.pop(temporary, None)
        self._complete.discard(temporary)
        _remove(temporary)

    def finish(self, failed: bool) -> list[Path]:
        """Rename the complete outputs (none when ``failed``), remove the rest; the final names."""
        renamed = []
        for temporary, final in self._finals.items():
            if failed or temporary not in self._complete:
                _remove(temporary)
                continue
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            os.replace(temporary, final)
            renamed.append(final)
        self._finals.clear()
        self._complete.clear()
        return renamed
