"""Export an IANet to ONNX or TorchScript for other runtimes.

The exported graph is the inference network of ``ianet.Predictor``: BatchNorm folded into
the convolutions, and only the ``pred`` logits as output (the other six maps serve deep
supervision in training). Inputs ``image`` and ``flow`` are normalised Bx3xSxS fp32
tensors (see ``ianet.transforms.normalise``); the output ``pred`` is Bx1xSxS logits, to
which the caller applies sigmoid, min-max and the resize back (as the Predictor does).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ianet.atomic import atomic_output
from ianet.errors import InputError
from ianet.model import IANet
from ianet.predictor import fold_batchnorm

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
INSTALL_HINT = "pip install 'ianet-stream[onnx]'"


def inference_network(model: IANet) -> nn.Module:
    """``model`` as exported (moved to the CPU in fp32, eval mode), BatchNorm folded, pred only."""
    return fold_batchnorm(model.float().cpu().eval())


def example_inputs(size: int, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalised image and flow inputs, Bx3xSxS each (seeded)."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 3, size, size)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def export_model(
    model: IANet,
    out: str | os.PathLike,
    format: str = "onnx",
    size: int = 512,
    dynamic_batch: bool = False,
) -> Path:
    """Write ``model``'s inference network to ``out`` (atomically) and return the path.

    onnx: opset 17, checked with ``onnx.checker``; needs the ``onnx`` package. The input
    size is fixed at ``size``; the batch dimension is dynamic with ``dynamic_batch``.
    torchscript: ``torch.jit.trace`` at ``size``; load with ``torch.jit.load``.
    """
    if format not in FORMATS:
        raise InputError(f"export format {format!r}: choose {' or '.join(FORMATS)}")
    if format == "onnx":
        require_onnx()
    out = Path(out)
    network = inference_network(model)
    inputs = example_inputs(size)
    with (
        atomic_output(out) as temporary,
        torch.inference_mode(False),
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # the tracers' notes on shapes turned constants
        if format == "onnx":
            _export_onnx(network, inputs, temporary, dynamic_batch)
        else:
            traced = torch.jit.trace(network, inputs, check_trace=False)
            torch.jit.save(traced, str(temporary))
    return out


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise InputError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None


def _export_onnx(
    network: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], path: Path, dynamic: bool
) -> None:
    import onnx

    axes = {name: {0: "batch"} for name in ("image", "flow", "pred")} if dynamic else None
    torch.onnx.export(
        network,
        inputs,
        str(path),
        input_names=["image", "flow"],
        output_names=["pred"],
        opset_version=ONNX_OPSET,
        dynamic_axes=axes,
        dynamo=False,
    )
    onnx.checker.check_model(str(path))
