"""Optimiser with two learning rates (encoders, rest) and the step schedule by epoch."""

from __future__ import annotations

import torch
from torch import nn

from ianet.train.config import TrainConfig

ENCODER_PREFIXES = ("ImageBone.", "FlowBone.")


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Two groups: every parameter under ImageBone or FlowBone (ASPP and last_conv
    included) at ``lr_encoder``, every other at ``lr_decoder``."""
    encoder, decoder = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (encoder if name.startswith(ENCODER_PREFIXES) else decoder).append(parameter)
    return [
        {"name": "encoder", "params": encoder, "lr": config.lr_encoder},
        {"name": "decoder", "params": decoder, "lr": config.lr_decoder},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov), Adam or AdamW over ``parameter_groups``."""
    groups = parameter_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.lr_decoder,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return kind(
        groups,
        lr=config.lr_decoder,
        betas=(config.momentum, 0.999),
        weight_decay=config.weight_decay,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.MultiStepLR:
    """x ``lr_gamma`` at each milestone epoch; step it once at the end of every epoch."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_milestones), gamma=config.lr_gamma
    )
