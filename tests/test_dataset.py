"""The training dataset equals the reference preprocessing; augmentations stay consistent."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate
from torchvision import transforms

from ianet.data.augment import Augment, flip_flow_image
from ianet.data.dataset import TripletDataset, normalise_batch
from ianet.data.lists import Sample, read_list
from ianet.data.synthetic import write_dataset
from ianet.flow import flow_to_image
from ianet.transforms import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    folder = write_dataset(
        tmp_path_factory.mktemp("dataset"), "SYN", clips=2, frames=3, size=(96, 64), seed=2
    )
    return read_list(folder / "train.txt")


def reference(sample: Sample, size: int) -> tuple[torch.Tensor, ...]:
    """The reference recipe, spelled with torchvision's transforms on PIL images."""
    picture = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    label = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    image = picture(Image.open(sample.image).convert("RGB"))
    gt = label(Image.open(sample.gt).convert("L"))
    flow = (
        picture(Image.open(sample.flow).convert("RGB"))
        if sample.flow is not None
        else torch.zeros(3, size, size)
    )
    return image, flow, gt


@pytest.mark.parametrize("size", [48, 128])  # shrinking (antialiased) and enlarging
def test_preprocessing_equals_the_reference_recipe(samples: list[Sample], size: int) -> None:
    dataset = TripletDataset(samples, size=size)
    chosen = [0, 1]  # frame 0 has no flow (zero after normalisation), frame 1 has one
    image, flow, gt = normalise_batch(default_collate([dataset[i] for i in chosen]), "cpu")
    assert image.shape == flow.shape == (2, 3, size, size) and gt.shape == (2, 1, size, size)
    for row, index in enumerate(chosen):
        expected = reference(samples[index], size)
        for ours, theirs in zip((image[row], flow[row], gt[row]), expected, strict=True):
            assert torch.equal(ours, theirs)
    assert flow[0].abs().max() == 0 and flow[1].abs().max() > 0
    assert 0 < gt.mean() < 1 and gt.unique().numel() > 2  # soft labels from bilinear resizing


def flipped_flow(flow: torch.Tensor) -> torch.Tensor:
    """The flow of the mirrored video: pixels mirrored, x displacement negated."""
    mirrored = flow.flip(-1).clone()
    mirrored[:, 0] = -mirrored[:, 0]
    return mirrored


def test_flipping_a_flow_image_flips_the_motion_it_encodes() -> None:
    height, width = 64, 96
    y, x = torch.meshgrid(
        torch.linspace(-1, 1, height, dtype=torch.float64),
        torch.linspace(-1, 1, width, dtype=torch.float64),
        indexing="ij",
    )
    generator = torch.Generator().manual_seed(0)
    flow = torch.stack([3 * x + torch.sin(4 * y), 2 * y - x])[None]
    flow = flow + 0.3 * torch.randn(flow.shape, generator=generator, dtype=torch.float64)
    coded = flow_to_image(flow)[0].numpy()
    expected = flow_to_image(flipped_flow(flow))[0].numpy().astype(int)

    ours = flip_flow_image(coded).astype(int)
    naive = coded[:, ::-1].astype(int)  # mirroring the pixels only keeps the old direction

    # The wheel jumps between its two ends at the -x direction: there 8-bit rounding can
    # land a pixel on either side, so those pixels (within 3 degrees) are left out.
    motion = flipped_flow(flow)[0]
    angle = torch.atan2(-motion[1], -motion[0]).numpy()
    away_from_seam = np.abs(np.abs(angle) - np.pi) > np.deg2rad(3)
    error = np.abs(ours - expected).max(axis=-1)[away_from_seam]
    assert error.max() <= 4 and error.mean() < 1
    assert np.abs(naive - expected).max(axis=-1)[away_from_seam].mean() > 40
    # Flipping twice gives the image back, up to rounding (away from both seams).
    original = torch.atan2(-flow[0, 1], -flow[0, 0]).abs().numpy()
    clear = (np.abs(original - np.pi) > np.deg2rad(3)) & (original > np.deg2rad(3))
    twice = flip_flow_image(flip_flow_image(coded)).astype(int)
    assert np.abs(twice - coded).max(axis=-1)[clear].max() <= 4


def square_sample(folder: Path) -> Sample:
    """A white square on black as picture and GT; as flow, motion (+1, 0) inside it."""
    height, width = 80, 120
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[20:60, 10:50] = 255
    flow = torch.zeros(1, 2, height, width, dtype=torch.float64)
    flow[0, 0][torch.from_numpy(mask > 0)] = 1.0
    paths = {"image": folder / "img.png", "gt": folder / "gt.png", "flow": folder / "flow.png"}
    Image.fromarray(np.repeat(mask[..., None], 3, axis=-1)).save(paths["image"])
    Image.fromarray(mask).save(paths["gt"])
    Image.fromarray(flow_to_image(flow)[0].numpy()).save(paths["flow"])
    return Sample(**paths, dataset="T", sequence="s", list_path=folder / "l.txt", line=1)


def test_augmentations_move_picture_gt_and_flow_together(tmp_path: Path) -> None:
    sample = square_sample(tmp_path)
    plain = TripletDataset([sample], size=64)[0]
    augment = Augment(hflip=True, min_scale=0.8)
    dataset = TripletDataset([sample], size=64, augment=augment, seed=3)
    items = [dataset[(0, epoch)] for epoch in range(8)]

    again = dataset[(0, 0)]
    assert all(torch.equal(items[0][key], again[key]) for key in ("image", "gt", "flow"))
    assert len({item["gt"].numpy().tobytes() for item in items}) > 1  # it does vary
    right = torch.from_numpy(flow_to_image(torch.tensor([[[[1.0]], [[0.0]]]]))[0, 0, 0].numpy())
    left = torch.from_numpy(flow_to_image(torch.tensor([[[[-1.0]], [[0.0]]]]))[0, 0, 0].numpy())
    flips = 0
    for item in items:
        inside = item["gt"][0] == 255
        assert torch.equal(item["image"][0], item["gt"][0])  # the same crop and flip
        moving = (item["flow"] < 250).any(dim=0)
        assert torch.equal(moving[inside], torch.ones_like(moving[inside]))
        assert not moving[item["gt"][0] == 0].any()
        colour = item["flow"][:, inside].T.int()
        flipped = (colour - left.int()).abs().max() <= 3
        assert flipped or (colour - right.int()).abs().max() <= 3
        # A flipped item has the square on the other side (it starts at x = 10 of 120).
        flips += int(flipped)
        centre = inside.nonzero()[:, 1].float().mean()
        assert (centre > 32) == flipped
    assert 0 < flips < len(items)
    assert torch.equal(plain["gt"], TripletDataset([sample], size=64)[0]["gt"])


def test_colour_jitter_changes_the_picture_only(samples: list[Sample]) -> None:
    plain = TripletDataset(samples, size=32)[1]
    jittered = TripletDataset(samples, size=32, augment=Augment(colour_jitter=0.4))[(1, 5)]
    assert not torch.equal(plain["image"], jittered["image"])
    assert torch.equal(plain["gt"], jittered["gt"]) and torch.equal(plain["flow"], jittered["flow"])
