"""Which torch device a run uses: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked once."""

from __future__ import annotations

import re

import torch

from ianet.errors import InputError

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device ``name`` names; ``auto`` (or None): the first CUDA device when there is
    one, else the CPU.

    Raises:
        InputError: ``name`` is not one of auto, cpu, cuda, cuda:N, or names a CUDA device
            this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if not _DEVICE.fullmatch(name):
        raise InputError(f"device {name!r}: expected {DEVICE_NAMES}")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise InputError(f"device {name}: requested but {count} CUDA device(s) found")
    return device
