"""Fast inference: uint8 frames in, saliency maps in [0, 1] out, as the reference tests.

Preprocessing (the reference's): each picture and flow image is resized to size x size
with PIL-equivalent bilinear filtering (antialiased when shrinking), scaled to [0, 1] and
normalised with the ImageNet mean and std; a missing flow image is an all-zero tensor
after normalisation. Post-processing (the reference test procedure): sigmoid of ``pred``,
per-frame min-max ``(s - min) / (max - min + 1e-8)``, bilinear resize back to the frame.

Speed: BatchNorm folded into the convolutions (``torch.fx`` conv/bn fusion), channels-last
memory, ``torch.inference_mode``, optional fp16/bf16 weights and ``torch.compile``; on the
CPU, int8 post-training quantization (``torch.ao`` FX graph mode, calibrated on the first
frames it sees).
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.fx.experimental.optimization import fuse
from torchvision.transforms.v2 import functional as TF

from ianet.checkpoints import input_size, load_checkpoint, read_checkpoint, unwrap
from ianet.device import cpu_flags, resolve_device
from ianet.errors import InputError
from ianet.model import IANet
from ianet.transforms import min_max, normalise, resize_pictures

PAPER_SIZE = 512
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_INT8_ENGINES = ("x86", "qnnpack")


class PredLogits(nn.Module):
    """Only the ``pred`` logits of an IANet: forward(image, flow) -> Bx1xHxW."""

    def __init__(self, network: IANet) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: Tensor, flow: Tensor) -> Tensor:
        return self.network(image, flow).pred


def fold_batchnorm(network: IANet) -> fx.GraphModule:
    """``PredLogits(network)`` traced, pruned of the unused outputs, with every BatchNorm
    folded into the convolution before it (``network`` itself is left unchanged)."""
    traced = fx.symbolic_trace(PredLogits(network.eval()))
    traced.graph.eliminate_dead_code()
    traced.recompile()
    return fuse(traced, inplace=True)


def int8_engine() -> str:
    """This torch build's int8 CPU engine: "x86" (fbgemm and oneDNN) or "qnnpack" (ARM)."""
    for engine in _INT8_ENGINES:
        if engine in torch.backends.quantized.supported_engines:
            return engine
    raise InputError("precision int8: this torch build has no int8 CPU engine")


def observe_int8(network: IANet, engine: str) -> fx.GraphModule:
    """``PredLogits(network)`` prepared for int8 post-training quantization on ``engine``.

    BatchNorm is folded, and observers record the activations' ranges (the engine's default
    settings: histogram observers for activations, per-channel symmetric int8 weights). The
    GWG module, which works on pooled vectors, stays in fp32. Run calibration inputs through
    the result, then ``convert_int8`` it. ``network`` itself is left unchanged.
    """
    quantize_fx = _quantize_fx()
    from torch.ao.quantization import get_default_qconfig_mapping

    mapping = get_default_qconfig_mapping(engine).set_module_name("network.GWG", None)
    example = torch.zeros(1, 3, 64, 64)
    with _quiet_quantization():
        return quantize_fx.prepare_fx(
            PredLogits(copy.deepcopy(network).eval()), mapping, (example, example)
        )


def convert_int8(observed: fx.GraphModule) -> fx.GraphModule:
    """The int8 network of a calibrated ``observe_int8`` result."""
    with _quiet_quantization():
        return _quantize_fx().convert_fx(observed)


def _quantize_fx() -> Any:
    """``torch.ao.quantization.quantize_fx``, which newer torch releases may no longer have."""
    try:
        from torch.ao.quantization import quantize_fx
    except ImportError as error:
        raise InputError(
            f"precision int8: torch {torch.__version__} has no FX graph-mode quantization "
            f"({error}); use fp32"
        ) from None
    return quantize_fx


@contextlib.contextmanager
def _quiet_quantization() -> Iterator[None]:
    """Silence torch's notices that its FX quantization API is deprecated: it still works,
    and ``_quantize_fx`` says so in one line once a torch release has removed it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\.")
        warnings.filterwarnings("ignore", r"torch\.ao\.quantization is deprecated")
        yield


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16)."""
    return any(flag in cpu_flags() for flag in _CPU_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The weights' dtype for "fp32" | "fp16" | "bf16" | "auto" on ``device``.

    auto: bf16 on CUDA devices that support it and on CPUs with AMX or AVX512-BF16, where
    it is faster; fp32 elsewhere (on AVX2 CPUs bf16 is emulated and slower than fp32).
    """
    if precision == "auto":
        if device.type == "cuda":
            fast = torch.cuda.is_bf16_supported()
        else:
            fast = device.type == "cpu" and cpu_has_fast_bf16()
        return torch.bfloat16 if fast else torch.float32
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: choose fp32, fp16, bf16, int8 or auto")
    return PRECISIONS[precision]


def saliency_from_logits(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bx1xhxw ``pred`` logits -> BxHxW float saliency in [0, 1] at ``size`` = (H, W).

    sigmoid, per-frame min-max ``(s - min) / (max - min + 1e-8)``, then a bilinear resize
    (antialiased when shrinking, like PIL's BILINEAR).
    """
    s = min_max(torch.sigmoid(logits.float()))
    if tuple(s.shape[-2:]) != size:
        s = TF.resize(s, list(size), antialias=True)
    return s[:, 0].clamp_(0, 1)


class Predictor:
    """IANet saliency for batches of uint8 RGB frames.

    Args:
        checkpoint: a checkpoint path, ``builtin:NAME``, a state dict or an IANet.
        size: the square side the network reads; None: the size the weights were trained
            at (``ianet.checkpoints.input_size``: 512 for the published weights, 160 for
            the built-in lite model), 512 for a module.
        device: "cpu", "cuda", ... or None for CUDA where available.
        precision: "fp32", "fp16", "bf16", "auto" (see ``resolve_precision``) or, on the CPU,
            "int8": weights and activations quantized to 8 bits after calibration.
        batch_size: most frames per forward pass; longer inputs are split.
        channels_last: channels-last memory format (faster convolutions).
        fold_bn: fold BatchNorm into the convolutions (outputs equal within 1e-4, relative;
            int8 always folds).
        compile: False, True or a ``torch.compile`` mode ("reduce-overhead" gives CUDA
            graphs, "max-autotune"); True on the CPU compiles with weight freezing.
        calibration_frames: int8 only: how many of the first frames the activations' ranges
            are measured on; their maps come from the fp32 network, later ones from int8.

    ``predictor(frames, flow_images)``: frames uint8 BxHxWx3 (CPU or CUDA), flow images
    the same or None (zero flow) -> BxHxW float saliency in [0, 1] on ``device``. Lists of
    HxWx3 frames of different sizes give lists of HxW maps (one forward pass for them all,
    as for a tensor); a None in a list of flow images means zero flow for that frame.
    ``forward_passes`` counts the network's forward passes so far; ``calibration_left``
    is the number of frames int8 calibration still needs (0 when calibrated or not int8).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | Mapping[str, Any] | nn.Module,
        size: int | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        batch_size: int = 8,
        channels_last: bool = True,
        fold_bn: bool = True,
        compile: bool | str = False,
        calibration_frames: int = 8,
    ) -> None:
        name = None
        if isinstance(checkpoint, nn.Module):  # the caller's module stays as it is
            checkpoint = copy.deepcopy(unwrap(checkpoint))
            size = size or PAPER_SIZE
        else:
            name = str(checkpoint) if not isinstance(checkpoint, Mapping) else None
            if name is not None:
                checkpoint = read_checkpoint(name)
            size = size or input_size(checkpoint, name or "")
        if size < 32 or batch_size < 1 or calibration_frames < 1:
            raise InputError(
                "Predictor: size must be >= 32, batch_size and calibration_frames >= 1 "
                f"(got {size}, {batch_size}, {calibration_frames})"
            )
        self.device = resolve_device(device)
        int8 = precision == "int8"
        if int8 and (self.device.type != "cpu" or compile is not False):
            raise InputError(
                f"precision int8: runs on the CPU without compile (device {self.device}, "
                f"compile {compile}); on a GPU use fp16 or bf16"
            )
        self.dtype = torch.float32 if int8 else resolve_precision(precision, self.device)
        self.size = size
        self.batch_size = batch_size
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = load_checkpoint(checkpoint, device=self.device, name=name)
        self.options = dict(model.options)
        self.calibration_left = 0
        if int8:
            torch.backends.quantized.engine = int8_engine()
            network = observe_int8(model, torch.backends.quantized.engine)
            self.calibration_left = calibration_frames
        else:
            network = fold_batchnorm(model) if fold_bn else PredLogits(model)
            network = network.to(dtype=self.dtype, memory_format=self.memory_format)
        self.network = _compiled(network, compile, self.device)
        self.forward_passes = 0

    def _prepare(self, pictures: Tensor | Sequence[Tensor | None] | None, count: int) -> Tensor:
        """Normalised Bx3xSxS network input from uint8 pictures; None (zero flow) -> zeros."""
        side = (self.size, self.size)
        if isinstance(pictures, Tensor):
            batch = normalise(resize_pictures(pictures.to(self.device, non_blocking=True), side))
        else:
            batch = torch.zeros(count, 3, *side, device=self.device)
            listed = list(pictures or [None] * count)
            present = [i for i, picture in enumerate(listed) if picture is not None]
            for indices in _by_size([tuple(listed[i].shape[:2]) for i in present], present):
                same = torch.stack([listed[i].to(self.device, non_blocking=True) for i in indices])
                batch[indices] = normalise(resize_pictures(same, side))
        return batch.to(dtype=self.dtype, memory_format=self.memory_format)

    @torch.inference_mode()
    def logits(self, images: Tensor, flows: Tensor) -> Tensor:
        """fp32 ``pred`` logits Bx1xSxS of normalised inputs, in chunks of ``batch_size``."""
        step = self.batch_size
        chunks = []
        for start in range(0, images.shape[0], step):
            chunk = self.network(images[start : start + step], flows[start : start + step])
            chunks.append(chunk.float())
            self._count_calibration(chunk.shape[0])
        self.forward_passes += len(chunks)
        return torch.cat(chunks)

    def _count_calibration(self, frames: int) -> None:
        """Count ``frames`` towards int8 calibration; convert to int8 once it is complete."""
        if self.calibration_left > 0:
            self.calibration_left = max(0, self.calibration_left - frames)
            if self.calibration_left == 0:
                self.network = convert_int8(self.network)

    @torch.inference_mode()
    def __call__(
        self,
        frames: Tensor | Sequence[Tensor],
        flow_images: Tensor | Sequence[Tensor | None] | None = None,
    ) -> Tensor | list[Tensor]:
        if isinstance(frames, Tensor):
            _check_pictures(frames, "frames", batched=True)
            count = frames.shape[0]
            sizes = [tuple(frames.shape[1:3])]
        else:
            for frame in frames:
                _check_pictures(frame, "frames", batched=False)
            count = len(frames)
            sizes = [tuple(frame.shape[:2]) for frame in frames]
        if isinstance(flow_images, Tensor):
            _check_pictures(flow_images, "flow_images", batched=flow_images.ndim == 4)
            flow_images = flow_images if flow_images.ndim == 4 else [flow_images]
        elif flow_images is not None:
            for flow_image in flow_images:
                if flow_image is not None:
                    _check_pictures(flow_image, "flow_images", batched=False)
        if flow_images is not None and len(flow_images) != count:
            raise InputError(f"flow_images: {len(flow_images)} for {count} frames")
        if count == 0:
            return [] if not isinstance(frames, Tensor) else torch.empty(0, *sizes[0])
        images = self._prepare(frames, count)
        flows = self._prepare(flow_images, count)
        logits = self.logits(images, flows)
        if isinstance(frames, Tensor):
            return saliency_from_logits(logits, sizes[0])
        maps: dict[int, Tensor] = {}
        for indices in _by_size(sizes, range(count)):
            resized = saliency_from_logits(logits[indices], sizes[indices[0]])
            maps.update(zip(indices, resized, strict=True))
        return [maps[index] for index in range(count)]


def _by_size(sizes: Sequence[tuple[int, ...]], indices: Sequence[int]) -> list[list[int]]:
    """``indices`` grouped by their ``sizes`` (equal sizes together), in order of appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for size, index in zip(sizes, indices, strict=True):
        groups.setdefault(size, []).append(index)
    return list(groups.values())


def _check_pictures(pictures: Tensor, name: str, batched: bool) -> None:
    """uint8 RGB pictures: BxHxWx3 when ``batched``, else HxWx3."""
    expected = 4 if batched else 3
    if pictures.dtype != torch.uint8 or pictures.ndim != expected or pictures.shape[-1] != 3:
        layout = "BxHxWx3" if batched else "HxWx3"
        raise InputError(
            f"{name}: expected uint8 {layout} RGB, got {pictures.dtype} {tuple(pictures.shape)}"
        )


def _compiled(network: nn.Module, compile: bool | str, device: torch.device) -> nn.Module:
    """``network`` through ``torch.compile`` as asked (weights frozen on the CPU)."""
    if compile is False:
        return network
    if compile is True and device.type == "cpu":
        return torch.compile(network, dynamic=False, options={"freezing": True})
    return torch.compile(network, dynamic=False, mode=None if compile is True else compile)
