"""The training recipe as one typed, validated record.

Defaults are the recipe the reference checkpoints were trained with (the authors' code): SGD
with Nesterov momentum 0.9 and weight decay 5e-4, learning rate 5e-4 for the encoders and 5e-3
for the rest, x0.1 from epoch 16 of 20, batch 8 at 512x512, seven outputs each weighted 1.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

LOSS_WEIGHTS = {
    # (pred, coarse_img, coarse_flow, side4, side3, side2, side1)
    "reference": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    "paper": (1.0, 1.0, 1.0, 0.8, 0.8, 0.4, 0.4),
}
OPTIMIZERS = ("sgd", "adam", "adamw")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def default_workers(most: int = 4) -> int:
    """Data-loading processes: one per core this process may use, at most ``most``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(most, cores))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes.

    Attributes:
        variant: "ianet" (the paper's network), "lite" or "lite-efficientnet".
        backbone_weights: "auto" (the encoder's ImageNet weights: torchvision's, or for
            lite-efficientnet those inside the ``pretrained`` extra's package), "none" or a
            file path.
        init: start from the weights of this checkpoint (a file or ``builtin:NAME`` of the
            same variant) instead of ``backbone_weights``: fine-tuning. None: from scratch.
        size: training resolution (square).
        batch_size: the global batch (split evenly over the processes of a DDP run).
        epochs: passes over the training lists.
        max_steps: stop after this many optimiser steps in total (None: run all epochs).
        optimizer: "sgd" (Nesterov when ``nesterov``), "adam" or "adamw".
        lr_encoder: learning rate of every parameter under ImageBone or FlowBone.
        lr_decoder: learning rate of every other parameter.
        momentum: SGD momentum (Adam's beta1).
        nesterov: SGD with Nesterov momentum.
        weight_decay: L2 penalty (decoupled for AdamW).
        lr_milestones: epochs (0-based) from which the learning rates are multiplied by
            ``lr_gamma`` once more; (15,) is "x0.1 from the 16th epoch".
        lr_gamma: the factor at each milestone.
        loss_weights: "reference" (all seven outputs 1), "paper" (pred + coarse_img +
            coarse_flow + 0.8(side4 + side3) + 0.4(side2 + side1)) or seven numbers in the
            output order (pred, coarse_img, coarse_flow, side4, side3, side2, side1).
        hflip, min_scale, colour_jitter: augmentations (``ianet.data.augment.Augment``).
        precision: "auto" (bf16 autocast on a GPU that has it, else fp32), "fp32", "bf16"
            (autocast; also on the CPU) or "fp16" (autocast and a gradient scaler; GPU).
        compile: run the model through ``torch.compile``.
        workers: data-loading processes per training process (default: one per core this
            process may use, at most 4).
        seed: seeds the weights, the data order (a function of seed and epoch) and the
            augmentations (a function of seed, epoch and sample).
        save_every: write ``last.pth`` every this many steps (0: only at epoch ends).
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
        threads: torch's CPU threads per process (None: torch's default, one per core);
            on a busy or small machine 1 is often fastest.
    """

    variant: str = "ianet"
    backbone_weights: str = "auto"
    init: str | None = None
    size: int = 512
    batch_size: int = 8
    epochs: int = 20
    max_steps: int | None = None
    optimizer: str = "sgd"
    lr_encoder: float = 5e-4
    lr_decoder: float = 5e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_milestones: tuple[int, ...] = (15,)
    lr_gamma: float = 0.1
    loss_weights: str | tuple[float, ...] = "reference"
    hflip: bool = False
    min_scale: float = 1.0
    colour_jitter: float = 0.0
    precision: str = "auto"
    compile: bool = False
    workers: int = dataclasses.field(default_factory=lambda: default_workers())
    seed: int = 0
    save_every: int = 1000
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            object.__setattr__(self, field.name, _coerce(field.name, field.type, value))
        _check(self)

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], base: TrainConfig | None = None
    ) -> TrainConfig:
        """``base`` (default: the defaults) with ``values`` replacing its fields.

        Raises:
            ValueError: an unknown key or a value of the wrong type, naming the key.
        """
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown option (known: {', '.join(sorted(known))})")
        return dataclasses.replace(base or cls(), **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), as stored in checkpoints."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @property
    def output_weights(self) -> tuple[float, ...]:
        """The seven loss weights in output order."""
        if isinstance(self.loss_weights, str):
            return LOSS_WEIGHTS[self.loss_weights]
        return self.loss_weights


def _coerce(name: str, kind: str, value: Any) -> Any:
    """Check ``value`` against the field's annotation (a string) and normalise it."""
    if value is None and "None" in kind:
        return None
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if kind.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if kind in ("str", "str | None"):
        if isinstance(value, str):
            return value
        raise ValueError(f"{name}: expected a string, got {value!r}")
    if kind == "tuple[int, ...]":
        if isinstance(value, list | tuple) and all(
            isinstance(item, int) and not isinstance(item, bool) for item in value
        ):
            return tuple(value)
        raise ValueError(f"{name}: expected a list of integers, got {value!r}")
    if kind == "str | tuple[float, ...]":
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple) and all(
            isinstance(item, int | float) and not isinstance(item, bool) for item in value
        ):
            return tuple(float(item) for item in value)
        raise ValueError(f"{name}: expected a name or a list of numbers, got {value!r}")
    raise TypeError(f"{name}: no rule for type {kind}")


def _check(config: TrainConfig) -> None:
    """Range checks; each error names the option."""

    def require(condition: bool, message: str) -> None:
        if not condition:
            raise ValueError(message)

    require(config.size >= 32 and config.size % 16 == 0, "size: must be a multiple of 16, >= 32")
    require(config.batch_size >= 1, "batch_size: must be at least 1")
    require(config.epochs >= 1, "epochs: must be at least 1")
    require(config.max_steps is None or config.max_steps >= 1, "max_steps: must be at least 1")
    require(config.optimizer in OPTIMIZERS, f"optimizer: choose from {', '.join(OPTIMIZERS)}")
    require(config.lr_encoder >= 0 and config.lr_decoder >= 0, "lr_*: must not be negative")
    require(config.weight_decay >= 0, "weight_decay: must not be negative")
    require(0 <= config.momentum < 1, "momentum: must be in [0, 1)")
    require(list(config.lr_milestones) == sorted(config.lr_milestones), "lr_milestones: sort them")
    require(0 < config.lr_gamma <= 1, "lr_gamma: must be in (0, 1]")
    if isinstance(config.loss_weights, str):
        require(
            config.loss_weights in LOSS_WEIGHTS,
            f"loss_weights: choose from {', '.join(LOSS_WEIGHTS)} or give seven numbers",
        )
    else:
        require(len(config.loss_weights) == 7, "loss_weights: expected seven numbers")
    require(0 < config.min_scale <= 1, "min_scale: must be in (0, 1]")
    require(0 <= config.colour_jitter < 1, "colour_jitter: must be in [0, 1)")
    require(config.precision in PRECISIONS, f"precision: choose from {', '.join(PRECISIONS)}")
    require(config.workers >= 0, "workers: must not be negative")
    require(config.save_every >= 0, "save_every: must not be negative")
    require(config.threads is None or config.threads >= 1, "threads: must be at least 1")
