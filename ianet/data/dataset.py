"""Datasets over triplet lists, with the reference recipe's preprocessing.

Reference recipe (spec §6): picture and flow read as 8-bit RGB, GT as 8-bit grey; each
resized to ``size`` x ``size`` with PIL's bilinear filter (antialiased when shrinking, as
``torchvision.transforms.Resize`` does on PIL images; the GT becomes a soft label); scaled to
[0, 1]; picture and flow normalised with the ImageNet mean and std; the flow of a row without
one is zero after normalisation.

The datasets return 8-bit tensors (four times less to copy between processes and to the
device); ``normalise_batch`` does the float part on the device, with the same operations as
``ToTensor`` + ``Normalize`` and therefore the same values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ianet.data.augment import Augment, crop_box, flip_flow_image, jitter_colour
from ianet.data.lists import Sample
from ianet.transforms import normalise

Box = tuple[float, float, float, float]


def read_rgb(path: Path) -> Image.Image:
    """An image file as 8-bit RGB."""
    with Image.open(path) as image:
        return image.convert("RGB")


def read_grey(path: Path) -> Image.Image:
    """An image file as 8-bit grey (PIL mode ``L``)."""
    with Image.open(path) as image:
        return image.convert("L")


def _resize(image: Image.Image, size: int, box: Box | None) -> Image.Image:
    return image.resize((size, size), Image.Resampling.BILINEAR, box=box)


def _chw(image: Image.Image | np.ndarray) -> Tensor:
    """HxWxC or HxW 8-bit image -> CxHxW uint8 tensor."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def normalise_batch(batch: dict[str, Tensor], device: torch.device | str) -> tuple[Tensor, ...]:
    """A collated ``TripletDataset`` batch -> (image, flow, gt) float tensors on ``device``.

    Returns:
        image Bx3xSxS and flow Bx3xSxS normalised (flow zero where the row had none),
        gt Bx1xSxS in [0, 1].
    """
    image = normalise(batch["image"].to(device, non_blocking=True))
    flow = normalise(batch["flow"].to(device, non_blocking=True))
    has_flow = batch["has_flow"].to(device, non_blocking=True).view(-1, 1, 1, 1)
    flow = torch.where(has_flow, flow, torch.zeros((), device=flow.device))
    gt = batch["gt"].to(device, non_blocking=True).float().div(255)
    return image, flow, gt


class TripletDataset(Dataset):
    """Training or validation samples at ``size`` x ``size``, augmented on request.

    An item (key ``index`` or ``(index, epoch)``) is a dict: ``image`` 3xSxS uint8, ``flow``
    3xSxS uint8 (zeros where the row has none), ``has_flow`` bool, ``gt`` 1xSxS uint8 and
    ``index``. Augmentations draw from a generator seeded by (seed, epoch, index), so an item
    does not depend on which worker decodes it or on what was decoded before.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int = 512,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        if any(sample.gt is None for sample in samples):
            raise ValueError("TripletDataset needs a GT for every sample")
        self.samples = list(samples)
        self.size = size
        self.augment = augment or Augment()
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor | int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[index]
        image = read_rgb(sample.image)
        gt = read_grey(sample.gt)
        flow = read_rgb(sample.flow) if sample.flow is not None else None
        box = None
        if self.augment.enabled:
            rng = np.random.default_rng([self.seed, epoch, index])
            image, gt, flow, box = self._augment(image, gt, flow, rng)
        image = _resize(image, self.size, box)
        if self.augment.colour_jitter > 0:
            image = jitter_colour(image, self.augment.colour_jitter, rng)
        return {
            "image": _chw(image),
            "flow": _chw(_resize(flow, self.size, box))
            if flow is not None
            else torch.zeros(3, self.size, self.size, dtype=torch.uint8),
            "has_flow": torch.tensor(flow is not None),
            "gt": _chw(_resize(gt, self.size, box)),
            "index": index,
        }

    def _augment(
        self,
        image: Image.Image,
        gt: Image.Image,
        flow: Image.Image | None,
        rng: np.random.Generator,
    ) -> tuple[Image.Image, Image.Image, Image.Image | None, Box | None]:
        if self.augment.hflip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            gt = gt.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if flow is not None:
                flow = Image.fromarray(flip_flow_image(np.asarray(flow)))
        box = None
        if self.augment.min_scale < 1:
            box = crop_box(image.width, image.height, self.augment.min_scale, rng)
        return image, gt, flow, box


class FrameDataset(Dataset):
    """Frames and flow images at their own size, for inference (``ianet.Predictor``).

    An item is a dict: ``frame`` HxWx3 uint8, ``flow`` HxWx3 uint8 (resized to the frame's
    size if it differs) or None (no flow column), ``index``. Frames of a list can differ in
    size: load items one at a time (``batch_size=None``).
    """

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor | int | None]:
        sample = self.samples[index]
        frame = torch.from_numpy(np.asarray(read_rgb(sample.image)).copy())
        flow = None
        if sample.flow is not None:
            flow_image = read_rgb(sample.flow)
            if flow_image.size != (frame.shape[1], frame.shape[0]):
                flow_image = flow_image.resize(
                    (frame.shape[1], frame.shape[0]), Image.Resampling.BILINEAR
                )
            flow = torch.from_numpy(np.asarray(flow_image).copy())
        return {"frame": frame, "flow": flow, "index": index}
