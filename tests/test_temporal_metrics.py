"""Temporal stability metrics (``ianet.metrics.temporal``) and ``ianet-stream eval``'s dtSSD
and ``--video`` scoring, against values computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from ianet.metrics.temporal import (
    DtSSDAccumulator,
    StabilityAccumulator,
    dtssd,
    normalised_map,
    warped_iou,
)
from ianet.temporal import warp_previous
from ianet_stream.cli import main
from ianet_stream.console import console


@pytest.fixture(autouse=True)
def wide_console(monkeypatch) -> None:
    monkeypatch.setattr(console, "width", 1000)


def square(top: int, left: int, side: int = 4, size: tuple[int, int] = (10, 10)) -> torch.Tensor:
    mask = torch.zeros(size)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_dtssd_is_100_times_the_rms_of_the_change_difference():
    pred, previous = torch.zeros(2, 2), torch.zeros(2, 2)
    pred[0, 0] = 1  # the prediction changes on 1 of 4 pixels, the GT does not
    gt = torch.zeros(2, 2)
    assert float(dtssd(pred, previous, gt, gt)) == pytest.approx(100 * math.sqrt(1 / 4))
    assert float(dtssd(pred, previous, pred, previous)) == 0  # changes as the GT does
    batch = dtssd(torch.stack([pred, pred]), torch.stack([previous, pred]), gt[None], gt[None])
    assert batch.tolist() == pytest.approx([50.0, 0.0])


def test_the_maps_are_normalised_as_the_protocols_read_them():
    pred = torch.tensor([[51, 102], [153, 204]], dtype=torch.uint8)
    assert normalised_map(pred).flatten().tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    constant = normalised_map(torch.full((2, 2), 51, dtype=torch.uint8))
    assert constant.flatten().tolist() == pytest.approx([0.2] * 4)


def test_dtssd_averages_per_sequence_for_davsod_and_per_pair_for_pysod():
    changes = DtSSDAccumulator()
    zero, one = torch.zeros(1, 4), torch.zeros(1, 4)
    one[0, 0] = 1  # a residual change of 1 on 1 of 4 pixels: dtSSD 50
    for residual in (zero, one, zero):  # sequence a: pairs 50, 50
        changes.add("D", "a", residual)
    for residual in (zero, zero):  # sequence b: one pair, 0
        changes.add("D", "b", residual)
    assert changes.result("davsod") == pytest.approx({"D": (50 + 0) / 2})
    assert changes.result("pysod") == pytest.approx({"D": (50 + 50 + 0) / 3})


def test_warped_iou_with_and_without_the_motion():
    previous, current = square(2, 2), square(2, 4)  # moved 2 pixels right
    inside = torch.ones(1, 10, 10, dtype=torch.bool)
    assert float(warped_iou(current[None], previous[None], inside)) == pytest.approx(8 / 24)
    flow = torch.zeros(1, 2, 10, 10)
    flow[:, 0] = 2
    warped, inside = warp_previous(previous[None, None], flow)
    assert float(warped_iou(current[None], warped[:, 0], inside[:, 0])) == 1
    empty = torch.zeros(1, 10, 10)
    assert float(warped_iou(empty, empty, inside[:, 0])) == 1  # both empty: stable


def test_stability_of_a_flashing_sequence():
    pictures = torch.full((4, 10, 10, 3), 100, dtype=torch.uint8)  # a still picture
    maps = [square(1, 1), square(1, 1), square(5, 5), square(5, 5)]  # the mask jumps once
    accumulator = StabilityAccumulator(flow=lambda prev, cur: torch.zeros(1, 2, 10, 10))
    for picture, saliency in zip(pictures, maps, strict=True):
        accumulator.update(picture, saliency)
    scores = accumulator.result()
    assert scores.ious == (1.0, 0.0, 1.0)
    assert (scores.median_iou, scores.flashes) == (1.0, pytest.approx(1 / 3))
    assert scores.warping_error == pytest.approx((0 + 32 / 100 + 0) / 3)
    assert scores.mean_area == pytest.approx(16 / 100)
    assert (scores.pairs, scores.frames) == (3, 4)


def test_a_missing_map_breaks_the_pairs():
    accumulator = StabilityAccumulator(flow=lambda prev, cur: torch.zeros(1, 2, 10, 10))
    picture = torch.zeros(10, 10, 3, dtype=torch.uint8)
    accumulator.update(picture, square(1, 1))
    accumulator.skip()
    accumulator.update(picture, square(5, 5))
    assert accumulator.result().pairs == 0


def write_png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def test_eval_reports_dtssd_beside_the_other_measures(tmp_path: Path, capsys):
    # one sequence of 4 frames, 4x4 pixels; the GT stays, the prediction flickers
    gt = np.zeros((4, 4))
    gt[:2] = 255
    preds = [gt.copy() for _ in range(4)]
    preds[1][3, 3] = 255  # a flash on 1 of 16 pixels at frame 1 only
    for index, pred in enumerate(preds):
        write_png(tmp_path / "gt" / "D" / "s" / f"{index:05d}.png", gt)
        write_png(tmp_path / "pred" / "D" / "s" / f"{index:05d}.png", pred)
    out = tmp_path / "scores.json"
    args = ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    assert main([*args, "--protocol", "pysod", "--json", str(out)]) == 0
    flash = 100 * math.sqrt(1 / 16)  # pairs (0,1) and (1,2) each change 1 of 16 pixels by 1
    assert json.loads(out.read_text())["D"]["dtSSD"] == pytest.approx((flash + flash + 0) / 3)
    assert "dtSSD" in capsys.readouterr().err
    assert main([*args, "--json", str(out), "--quiet"]) == 0  # davsod: frames 1 and 2 only
    assert json.loads(out.read_text())["D"]["dtSSD"] == pytest.approx(flash)


def write_clip(path: Path, frames: int) -> np.ndarray:
    """A still textured clip (64x48, lossless) and its picture."""
    generator = np.random.default_rng(0)
    picture = np.kron(generator.integers(0, 255, (12, 16, 3)), np.ones((4, 4, 1)))
    picture = picture.astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=25, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return picture


def test_eval_video_scores_the_maps_of_a_clip_against_its_frames(tmp_path: Path, capsys):
    clip = tmp_path / "still.mp4"
    write_clip(clip, 5)
    masks = [square(8, 8, 16, (48, 64)), square(8, 8, 16, (48, 64)), square(24, 40, 16, (48, 64))]
    masks += [masks[-1], masks[-1]]  # one jump in 4 pairs
    for index, mask in enumerate(masks):
        write_png(tmp_path / "maps" / "still" / f"{index:05d}.png", mask.numpy() * 255)
    out = tmp_path / "stability.json"
    args = ["eval", "--pred", str(tmp_path / "maps"), "--video", str(clip), "--json", str(out)]
    assert main(args) == 0
    result = json.loads(out.read_text())["still"]
    assert result["median_warped_iou"] == pytest.approx(1.0)
    assert result["flashes"] == pytest.approx(1 / 4)
    assert result["mean_area"] == pytest.approx(256 / (48 * 64))
    assert (result["frames"], result["pairs"]) == (5, 4)
    assert "warped IoU" in capsys.readouterr().err


def test_eval_video_without_maps_fails_with_one_line(tmp_path: Path, capsys):
    clip = tmp_path / "still.mp4"
    write_clip(clip, 2)
    (tmp_path / "maps").mkdir()
    assert main(["eval", "--pred", str(tmp_path / "maps"), "--video", str(clip)]) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "00000.png" in message
