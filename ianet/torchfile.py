"""Reading a dict of tensors saved with ``torch.save``: safely, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ianet.errors import InputError


def load_tensor_dict(
    path: Path, what: str, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """The dict stored at ``path`` (``torch.load(weights_only=True)``: no code runs).

    ``what`` names the content in errors (``"checkpoint"``, ``"raft_small weights"``):
    ``InputError("PATH: <what> not found")``, ``"PATH: not a readable PyTorch <what>
    (<reason>)"`` or ``"PATH: expected a dict in a <what>, found <type>"``.
    """
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: not a readable PyTorch {what} ({reason})") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: expected a dict in a {what}, found {type(loaded).__name__}")
    return loaded
