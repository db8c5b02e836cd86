"""Load and save IANet weights.

Sources ``load_checkpoint`` accepts:
- a reference checkpoint: a plain state dict (keys possibly prefixed ``module.`` by
  DataParallel or ``_orig_mod.`` by ``torch.compile``);
- our own checkpoint, a dict ``{"format": "ianet-stream", "version": 1, "model": state
  dict, "options": {...}, "meta": {...}}`` plus any extra top-level entries the trainer
  stores (``optimizer``, ``scheduler``, ``rng``, ``step``...), written by ``save_checkpoint``;
- ``builtin:NAME``: ``ianet/weights/NAME.pth`` shipped in the package (either form; fp16
  weights are cast to fp32);
- an ``nn.Module`` (an IANet, possibly wrapped) or a state dict already in memory.

Every file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ianet.atomic import atomic_output
from ianet.errors import InputError
from ianet.model import VARIANTS, IANet
from ianet.torchfile import load_tensor_dict
from ianet.weights import BUILTIN_PREFIX, builtin, for_variant

FORMAT = "ianet-stream"
VERSION = 1
_RESERVED = ("format", "version", "model", "options", "meta")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_EXAMPLES = 3  # keys quoted in a mismatch message


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` under a temporary name in the same folder, renamed when complete."""
    with atomic_output(path) as temporary:
        torch.save(obj, temporary)
    return Path(path)


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    meta: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Write ``model`` (an IANet, possibly wrapped) with its options, atomically.

    ``meta`` holds training metadata (epoch, datasets, metrics...); ``extra`` adds
    top-level entries such as ``optimizer=opt.state_dict()``. Everything must be loadable
    with ``weights_only=True``: tensors, numbers, strings, lists, tuples and dicts.
    The file is written under a temporary name and renamed when complete.
    """
    network = unwrap(model)
    if not isinstance(network, IANet):
        raise TypeError(f"save_checkpoint expects an IANet, got {type(network).__name__}")
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise TypeError(f"save_checkpoint: {', '.join(clash)} are reserved entries")
    checkpoint = {
        "format": FORMAT,
        "version": VERSION,
        "model": {key: value.detach().cpu() for key, value in network.state_dict().items()},
        "options": dict(network.options),
        "meta": dict(meta or {}),
        **extra,
    }
    return atomic_save(checkpoint, path)


def save_weights(
    source: str | os.PathLike, path: str | os.PathLike, dtype: torch.dtype = torch.float16
) -> Path:
    """Write the inference part of checkpoint ``source`` (weights, options, metadata) to
    ``path`` with floating tensors in ``dtype``: the form builtin weights ship in.

    Optimiser, scheduler and RNG state are left out; ``load_checkpoint`` casts back to fp32.
    The weights are checked first (they must fit the IANet they describe and be finite).
    """
    checkpoint = read_checkpoint(source)
    load_checkpoint(checkpoint, name=str(source))
    state = state_dict_of(checkpoint)
    weights = {
        "format": FORMAT,
        "version": VERSION,
        "model": {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()},
        "options": model_options(checkpoint),
        "meta": dict(checkpoint.get("meta", {})),
    }
    return atomic_save(weights, path)


def builtin_path(name: str) -> Path:
    """The file of builtin weights ``name`` (``ianet/weights/NAME.pth``)."""
    folder = resources.files("ianet.weights")
    candidate = folder / f"{name}.pth"
    if not candidate.is_file():
        available = sorted(
            item.name[:-4] for item in folder.iterdir() if item.name.endswith(".pth")
        )
        listed = ", ".join(available) if available else "none are installed"
        raise InputError(f"{BUILTIN_PREFIX}{name}: no such builtin weights ({listed})")
    return Path(str(candidate))


def read_checkpoint(
    source: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """The raw dict stored in a checkpoint file or ``builtin:NAME`` (``weights_only``)."""
    text = str(source)
    path = builtin_path(text[len(BUILTIN_PREFIX) :]) if text.startswith(BUILTIN_PREFIX) else None
    return load_tensor_dict(path or Path(source), "checkpoint", map_location)


def state_dict_of(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The network's state dict inside a checkpoint dict, without wrapper prefixes."""
    if checkpoint.get("format") == FORMAT:
        state = checkpoint["model"]
    elif isinstance(checkpoint.get("state_dict"), Mapping):
        state = checkpoint["state_dict"]
    else:
        state = checkpoint
    state = {key: value for key, value in state.items() if isinstance(value, Tensor)}
    for prefix in _WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


_ENCODER_KEYS = (  # a key only the encoder of a lite variant has, and the variant
    ("ImageBone.backbone_features.features.", "lite"),
    ("ImageBone.backbone_features.blocks.", "lite-efficientnet"),
)


def model_options(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The ``IANet(**options)`` that rebuilds the network of a checkpoint dict.

    Our checkpoints store them; for a plain state dict they are read off its keys and
    shapes (the encoder, ASPP and squeeze widths, whether unused modules are present).
    """
    if checkpoint.get("format") == FORMAT:
        stored = dict(checkpoint.get("options", {}))
        base = VARIANTS.get(stored.get("variant", "ianet"), VARIANTS["ianet"])
        known = {field.name for field in fields(base)}
        return {**asdict(base), **{key: stored[key] for key in stored if key in known}}
    state = state_dict_of(checkpoint)
    variant = "ianet"
    for prefix, name in _ENCODER_KEYS:
        if any(key.startswith(prefix) for key in state):
            variant = name
    options = asdict(VARIANTS[variant])
    if "ImageBone.aspp.bn1.weight" in state:
        options["aspp_channels"] = int(state["ImageBone.aspp.bn1.weight"].shape[0])
    if "conv1_i.1.weight" in state:
        options["squeeze_channels"] = int(state["conv1_i.1.weight"].shape[0])
    options["keep_unused"] = "convp_i.0.weight" in state
    return options


def input_size(checkpoint: Mapping[str, Any], name: str = "") -> int:
    """The square side the weights of a checkpoint dict were trained at.

    ``builtin:NAME`` (``name``): its ``ianet.weights`` entry; our checkpoints: the size
    recorded by ``ianet-stream train`` (``meta.train_config.size``); otherwise the known
    weights of the network's variant (512 for the paper's network, as published).
    """
    known = builtin(name) if name.startswith(BUILTIN_PREFIX) else None
    if known is not None:
        return known.info.input_size
    config = checkpoint.get("meta", {}).get("train_config", {})
    size = config.get("size") if isinstance(config, Mapping) else None
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    return for_variant(model_options(checkpoint)["variant"]).info.input_size


def nonfinite(state: Any, prefix: str = "") -> list[str]:
    """The names of the floating tensors in ``state`` (a tensor, or dicts and lists of
    them: a state dict, an optimiser's state) that hold a NaN or an infinity."""
    if isinstance(state, Tensor):
        bad = state.is_floating_point() and not bool(torch.isfinite(state).all())
        return [prefix or "tensor"] if bad else []
    if isinstance(state, Mapping):
        items = state.items()
    elif isinstance(state, list | tuple):
        items = enumerate(state)
    else:
        return []
    return [name for key, value in items for name in nonfinite(value, f"{prefix}{key}.")]


def check_finite(state: Any, name: str) -> None:
    """Raise ``InputError`` naming a few tensors of ``state`` that are not finite."""
    bad = [key.rstrip(".") for key in nonfinite(state)]
    if bad:
        raise InputError(
            f"{name}: {len(bad)} tensor(s) hold NaN or infinite values (e.g. "
            f"{', '.join(bad[:_EXAMPLES])}); these weights are broken (a diverged training?)"
        )


def _own_fp32(tensor: Tensor, copy: bool) -> Tensor:
    """Floating tensors as fp32 (fp16/bf16 builtin weights), copied where asked."""
    converted = tensor.float() if tensor.is_floating_point() else tensor
    return converted.clone() if copy and converted is tensor else converted


def _shape(tensor: Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], name: str) -> None:
    """Raise ``InputError`` naming a few missing, unexpected and mis-shaped keys (with
    counts) when ``state`` does not fit ``model``."""
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = [
        f"{key} is {_shape(state[key])} in the file, {_shape(own[key])} in the model"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    problems = [
        f"{len(items)} {label} (e.g. {', '.join(items[:_EXAMPLES])})"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    if problems:
        variant = getattr(model, "options", {}).get("variant", "?")
        raise InputError(
            f"{name}: does not fit IANet variant {variant!r} "
            f"({len(own)} entries expected): {'; '.join(problems)}"
        )


def load_checkpoint(
    source: str | os.PathLike | Mapping[str, Any] | nn.Module,
    device: str | torch.device = "cpu",
    *,
    options: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> IANet:
    """An IANet in eval mode on ``device`` with the weights of ``source``.

    ``source`` is a file path, ``builtin:NAME``, a checkpoint or state dict, or a module.
    ``options`` overrides the ``IANet(**options)`` read from the checkpoint; ``name`` is
    how errors name an in-memory ``source`` (the file it came from). Floating weights are
    cast to fp32. A file that does not fit raises ``InputError`` naming a few of the keys
    or shapes that differ.
    """
    if isinstance(source, nn.Module):
        network = unwrap(source)
        if not isinstance(network, IANet):
            raise InputError(f"expected an IANet module, got {type(network).__name__}")
        return network.to(device).eval()
    if isinstance(source, Mapping):
        checkpoint, name = source, name or "state dict"
    else:
        checkpoint, name = read_checkpoint(source), str(source)
    state = state_dict_of(checkpoint)
    if not state:
        raise InputError(f"{name}: holds no weights")
    build = dict(options) if options is not None else model_options(checkpoint)
    with torch.device("meta"):
        model = IANet(**build)
    check_state_dict(model, state, name)
    check_finite(state, name)
    in_memory = isinstance(source, Mapping)  # its tensors must not become our parameters
    state = {key: _own_fp32(value, copy=in_memory) for key, value in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval()
