"""Predictor: the reference preprocessing and test procedure, zero flow, lists, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_model import scramble

from ianet.errors import InputError
from ianet.model import IANet
from ianet.predictor import Predictor, saliency_from_logits
from ianet.transforms import IMAGENET_MEAN, IMAGENET_STD, resize_pictures

SIZE = 48


@pytest.fixture(scope="module")
def lite() -> IANet:
    torch.manual_seed(0)
    return scramble(IANet("lite"))


@pytest.fixture(scope="module")
def predictor(lite) -> Predictor:
    return Predictor(lite, size=SIZE, device="cpu", precision="fp32")


def frames(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Smooth random uint8 RGB frames, BxHxWx3."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, height // 8 + 1, width // 8 + 1, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic")
    return (smooth.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def reference_maps(model: IANet, pictures: torch.Tensor, flows: torch.Tensor | None) -> np.ndarray:
    """The reference test procedure done plainly: PIL resize, normalise, eager forward,
    sigmoid, min-max, PIL resize back."""

    def load(picture: np.ndarray) -> torch.Tensor:
        resized = Image.fromarray(picture).resize((SIZE, SIZE), Image.BILINEAR)
        array = np.asarray(resized, dtype=np.float32) / 255
        array = (array - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        return torch.from_numpy(array).permute(2, 0, 1).float()

    images = torch.stack([load(p) for p in pictures.numpy()])
    if flows is None:
        flow_input = torch.zeros_like(images)
    else:
        flow_input = torch.stack([load(p) for p in flows.numpy()])
    with torch.no_grad():
        pred = model.eval()(images, flow_input).pred
    height, width = pictures.shape[1:3]
    maps = []
    for logits in pred[:, 0].numpy():
        s = 1 / (1 + np.exp(-logits.astype(np.float64)))
        s = (s - s.min()) / (s.max() - s.min() + 1e-8)
        back = Image.fromarray(s.astype(np.float32), mode="F").resize(
            (width, height), Image.BILINEAR
        )
        maps.append(np.asarray(back))
    return np.stack(maps)


def test_matches_the_reference_procedure(lite, predictor):
    pictures, flows = frames(2, 90, 120, seed=1), frames(2, 90, 120, seed=2)
    got = predictor(pictures, flows)
    assert got.shape == (2, 90, 120) and got.dtype == torch.float32
    assert got.min() >= 0 and got.max() <= 1
    expected = reference_maps(lite, pictures, flows)
    assert np.abs(got.numpy() - expected).mean() < 1 / 255


def test_zero_flow(lite, predictor):
    pictures = frames(2, 48, 80, seed=3)
    without = predictor(pictures)
    assert np.abs(without.numpy() - reference_maps(lite, pictures, None)).mean() < 1 / 255
    listed = predictor(list(pictures), [None, None])
    assert torch.allclose(torch.stack(listed), without, atol=1e-5)
    with_flow = predictor(pictures, frames(2, 48, 80, seed=4))
    assert not torch.allclose(with_flow, without, atol=1e-3)


def test_lists_of_different_sizes(predictor):
    big, small = frames(1, 72, 96, seed=5)[0], frames(1, 40, 30, seed=6)[0]
    flow = frames(1, 40, 30, seed=7)[0]
    maps = predictor([big, small], [None, flow])
    assert [tuple(m.shape) for m in maps] == [(72, 96), (40, 30)]
    assert torch.allclose(maps[1], predictor(small[None], flow[None])[0], atol=1e-5)


def test_batches_are_split(predictor):
    pictures = frames(3, 32, 32, seed=8)
    whole = predictor(pictures)
    predictor.batch_size = 2
    try:
        split = predictor(pictures)
    finally:
        predictor.batch_size = 8
    assert torch.allclose(whole, split, atol=1e-5)


def test_postprocessing_by_hand():
    logits = torch.tensor([[[[0.0, 1.0], [2.0, -3.0]]]])
    s = 1 / (1 + np.exp(-logits.numpy()[0, 0].astype(np.float64)))
    expected = (s - s.min()) / (s.max() - s.min() + 1e-8)
    got = saliency_from_logits(logits, (2, 2))
    assert got.shape == (1, 2, 2)
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-6)
    big = saliency_from_logits(torch.randn(1, 1, 64, 64), (16, 24))
    assert big.shape == (1, 16, 24) and big.min() >= 0 and big.max() <= 1


def test_preprocessing_resize_equals_pil():
    picture = frames(1, 123, 211, seed=9)
    for size in ((64, 64), (300, 300)):  # shrinking (antialiased) and enlarging
        ours = resize_pictures(picture, size)[0].permute(1, 2, 0).numpy()
        pil = Image.fromarray(picture[0].numpy()).resize(size[::-1], Image.BILINEAR)
        difference = np.abs(ours - np.asarray(pil, dtype=np.float32))
        assert difference.max() <= 1 and difference.mean() < 0.05


def test_bf16_stays_close_to_fp32(lite, predictor):
    pictures = frames(1, 64, 64, seed=10)
    bf16 = Predictor(lite, size=SIZE, device="cpu", precision="bf16")
    assert bf16.dtype == torch.bfloat16
    assert (bf16(pictures) - predictor(pictures)).abs().mean() < 0.05


def test_int8_calibrates_on_the_first_frames_then_stays_close_to_fp32(lite, predictor):
    int8 = Predictor(lite, size=SIZE, device="cpu", precision="int8", calibration_frames=3)
    calibration = frames(3, 64, 80, seed=20), frames(3, 64, 80, seed=21)
    assert int8.calibration_left == 3
    during = int8(*calibration)
    assert int8.calibration_left == 0
    assert (during - predictor(*calibration)).abs().max() < 1e-4  # fp32 while calibrating
    pictures, flows = frames(2, 64, 80, seed=22), frames(2, 64, 80, seed=23)
    difference = (int8(pictures, flows) - predictor(pictures, flows)).abs()
    assert 0 < difference.mean() < 0.03  # int8 from now on: close, not identical


def test_int8_is_cpu_only_and_uncompiled(lite):
    with pytest.raises(InputError, match="int8: runs on the CPU without compile"):
        Predictor(lite, size=SIZE, device="cpu", precision="int8", compile=True)


def test_folding_is_optional(lite, predictor):
    pictures = frames(1, 64, 64, seed=11)
    plain = Predictor(lite, size=SIZE, device="cpu", fold_bn=False, channels_last=False)
    assert torch.allclose(plain(pictures), predictor(pictures), atol=1e-4)


def test_bad_inputs(predictor):
    with pytest.raises(InputError, match="uint8"):
        predictor(torch.rand(1, 32, 32, 3))
    with pytest.raises(InputError, match="flow_images: 1 for 2 frames"):
        predictor(frames(2, 32, 32, seed=0), [None])
    with pytest.raises(InputError, match="precision"):
        Predictor(IANet("lite"), precision="fp8")


@pytest.mark.gpu
def test_cuda_matches_cpu(lite, predictor):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pictures = frames(2, 80, 100, seed=12)
    gpu = Predictor(lite, size=SIZE, device="cuda", precision="fp32")
    got = gpu(pictures.cuda())
    assert got.device.type == "cuda"
    assert (got.cpu() - predictor(pictures)).abs().mean() < 1 / 255
