"""IANet: video salient-object detection from an RGB frame and its optical flow.

The heavy names (torch-backed) are imported on first use, so that ``ianet.errors``
and friends stay cheap to import.
"""

from importlib import import_module
from typing import Any

__all__ = ["IANet", "Predictor", "load_checkpoint", "save_checkpoint"]

_LAZY = {
    "IANet": "ianet.model",
    "Predictor": "ianet.predictor",
    "load_checkpoint": "ianet.checkpoints",
    "save_checkpoint": "ianet.checkpoints",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ianet' has no attribute {name!r}")
