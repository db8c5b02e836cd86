"""Which torch device a run uses: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked once.

Importing this module does not import torch (the configuration checks device names
without it); ``resolve_device`` does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ianet.errors import InputError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(name: object, where: str = "device") -> str:
    """``name`` when it is one of auto, cpu, cuda, cuda:N; else ``InputError`` naming
    ``where``."""
    if not (isinstance(name, str) and DEVICE_PATTERN.fullmatch(name)):
        raise InputError(f"{where}: expected {DEVICE_NAMES}, got {name!r}")
    return name


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device ``name`` names; ``auto`` (or None): the first CUDA device when there is
    one, else the CPU.

    Raises:
        InputError: ``name`` is not one of auto, cpu, cuda, cuda:N, or names a CUDA device
            this machine does not have.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(check_device(name, f"device {name!r}"))
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise InputError(f"device {name}: requested but {count} CUDA device(s) found")
    return device
