"""``ianet-stream test``: one PNG per row, at the frame's size, equal to the Predictor's map."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ianet import IANet, Predictor, save_checkpoint
from ianet.data.synthetic import write_dataset
from ianet.inference import to_8bit
from ianet_stream.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("test_cli")
    labelled = write_dataset(
        root, "SYN", clips=2, frames=3, size=(64, 48), seed=6, test_clips=2
    )  # six rows with GT; frame 0 of each clip without flow
    unlabelled = write_dataset(root, "RAW", clips=1, frames=2, size=(80, 48), seed=7)
    frames = unlabelled / "frames.txt"  # rows without GT: 'img -' and 'img - flow'
    frames.write_text("clip000/Imgs/00000.jpg -\nclip000/Imgs/00001.jpg - clip000/flow/00001.png\n")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(root / "lite.pth", IANet("lite"))
    return {"labelled": labelled / "test.txt", "unlabelled": frames, "checkpoint": checkpoint}


def test_maps_land_at_dataset_sequence_and_gt_name_at_frame_size(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    code = main(
        ["test", "--quiet", "--list", str(inputs["labelled"]), "--list", str(inputs["unlabelled"]),
         "--checkpoint", str(inputs["checkpoint"]), "--out", str(tmp_path), "--size", "64",
         "--batch-size", "4", "--workers", "1", "--threads", "1", "--device", "cpu",
         "--precision", "fp32"]
    )  # fmt: skip
    assert code == 0
    written = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*.png"))
    assert written == [
        *(f"RAW/clip000/0000{i}.png" for i in range(2)),
        *(f"SYN/clip00{c}/0000{i}.png" for c in range(2) for i in range(3)),
    ]
    for name, size in (("SYN/clip001/00002.png", (64, 48)), ("RAW/clip000/00001.png", (80, 48))):
        with Image.open(tmp_path / name) as image:
            assert (image.mode, image.size) == ("L", size)

    # Each map is the Predictor's (the reference test procedure), rows with and without flow.
    predictor = Predictor(inputs["checkpoint"], size=64, device="cpu", precision="fp32")
    clip = inputs["labelled"].parent / "clip001"
    frames = [torch.from_numpy(np.array(Image.open(clip / f"Imgs/0000{i}.jpg"))) for i in (0, 1)]
    flow = torch.from_numpy(np.array(Image.open(clip / "flow/00001.png")))
    expected = predictor(frames, [None, flow])
    for index, saliency in enumerate(expected):
        written_map = np.asarray(Image.open(tmp_path / f"SYN/clip001/0000{index}.png"))
        assert np.array_equal(written_map, to_8bit(saliency))
        assert int(written_map.max()) - int(written_map.min()) > 128  # min-max normalised


def test_rows_writing_the_same_file_are_refused(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twice = inputs["labelled"].with_name("twice.txt")
    twice.write_text(inputs["labelled"].read_text() * 2)
    code = main(
        ["test", "--list", str(twice), "--checkpoint", str(inputs["checkpoint"]),
         "--out", str(tmp_path / "out"), "--size", "64", "--device", "cpu"]
    )  # fmt: skip
    assert code == 1
    assert "written by more than one row" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()
