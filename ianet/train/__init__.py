"""Training: the reference recipe's loss, optimiser and schedule, AMP, exact resume, DDP.

``train(TrainConfig(...), ["train.txt"], "runs/x")`` runs a training process (see
``ianet.train.loop``); the names below are imported on first use.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "LOSS_WEIGHTS": "ianet.train.config",
    "TrainConfig": "ianet.train.config",
    "RunInfo": "ianet.train.loop",
    "StepReport": "ianet.train.loop",
    "TrainResult": "ianet.train.loop",
    "TrainingDiverged": "ianet.train.loop",
    "TrainingObserver": "ianet.train.loop",
    "train": "ianet.train.loop",
    "bce_iou_loss": "ianet.train.loss",
    "deep_supervision_losses": "ianet.train.loss",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ianet.train' has no attribute {name!r}")
