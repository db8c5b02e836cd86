"""Which torch device a run uses: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked once;
and which CPU it is (its name and vector extensions, recorded with every figure).

Importing this module does not import torch (the configuration checks device names
without it); ``resolve_device`` does.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ianet.errors import InputError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# The vector extensions that decide which CPU kernels run (AVX2; AVX-512 with VNNI and BF16; AMX).
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


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


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    entries: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        entries.setdefault(key.strip(), value.strip())
    return entries


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo, else what ``platform`` knows)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> tuple[str, ...]:
    """Which of ``VECTOR_FLAGS`` this CPU has, in that order."""
    flags = set(_cpuinfo().get("flags", "").split())
    return tuple(flag for flag in VECTOR_FLAGS if flag in flags)


def describe_cpu() -> str:
    """One line: the CPU's name, its logical cores and its vector extensions."""
    flags = " ".join(cpu_flags()) or "none of " + " ".join(VECTOR_FLAGS)
    return f"{cpu_name()}, {os.cpu_count()} logical cores, flags: {flags}"
