"""Raw optical flow on disk: Middlebury ``.flo`` and NumPy ``.npy`` (2xHxW float32).

A ``.flo`` file is the float32 ``202021.25`` (the bytes ``PIEH``), the width and the height as
int32, then HxWx2 float32 (x, y interleaved per pixel), all little-endian. A ``.npy`` file
holds the 2xHxW array as it is. Files are written under a temporary name and renamed when
complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ianet.atomic import atomic_output, write_bytes
from ianet.errors import InputError

FLO_MAGIC = 202021.25
_HEADER = np.dtype([("magic", "<f4"), ("width", "<i4"), ("height", "<i4")])


def _as_array(flow: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(flow, Tensor):
        flow = flow.detach().cpu().numpy()
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"expected a 2xHxW flow, got shape {flow.shape}")
    return flow


def write_flo(path: str | os.PathLike, flow: Tensor | np.ndarray) -> None:
    """Write a 2xHxW flow (pixels, x then y) as a Middlebury ``.flo`` file."""
    array = _as_array(flow)
    header = np.array([(FLO_MAGIC, array.shape[2], array.shape[1])], dtype=_HEADER)
    body = np.ascontiguousarray(array.transpose(1, 2, 0), dtype="<f4")
    write_bytes(path, header.tobytes() + body.tobytes())


def read_flo(path: str | os.PathLike) -> Tensor:
    """Read a Middlebury ``.flo`` file as a 2xHxW float32 tensor."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    if len(data) < _HEADER.itemsize:
        raise InputError(f"{path}: too short for a .flo file")
    header = np.frombuffer(data, dtype=_HEADER, count=1)[0]
    if header["magic"] != np.float32(FLO_MAGIC):
        raise InputError(f"{path}: not a .flo file (magic number {header['magic']})")
    width, height = int(header["width"]), int(header["height"])
    expected = _HEADER.itemsize + width * height * 8
    if width <= 0 or height <= 0 or len(data) != expected:
        raise InputError(f"{path}: {width}x{height} .flo needs {expected} bytes, has {len(data)}")
    body = np.frombuffer(data, dtype="<f4", offset=_HEADER.itemsize).reshape(height, width, 2)
    return torch.from_numpy(body.transpose(2, 0, 1).astype(np.float32))


def write_flow(path: str | os.PathLike, flow: Tensor | np.ndarray) -> None:
    """Write a 2xHxW flow as ``.flo`` or ``.npy``, chosen by the file's extension."""
    path = Path(path)
    if path.suffix == ".flo":
        write_flo(path, flow)
    elif path.suffix == ".npy":
        with atomic_output(path) as temporary:
            np.save(temporary, _as_array(flow))
    else:
        raise ValueError(f"{path}: flow files end in .flo or .npy")


def read_flow(path: str | os.PathLike) -> Tensor:
    """Read a 2xHxW float32 flow from a ``.flo`` or ``.npy`` file."""
    path = Path(path)
    if path.suffix == ".flo":
        return read_flo(path)
    if path.suffix != ".npy":
        raise InputError(f"{path}: flow files end in .flo or .npy")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read ({error})") from None
    if array.ndim != 3 or array.shape[0] != 2:
        raise InputError(f"{path}: expected a 2xHxW flow, got shape {array.shape}")
    return torch.from_numpy(array.astype(np.float32))
