"""``ianet-stream prepare``: videos and masks become a dataset that train and test accept."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ianet.data.lists import load_lists
from ianet.data.synthetic import write_dataset
from ianet.flow import flow_to_image
from ianet_stream.cli import main
from ianet_stream.video import write_video


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic clips as mp4 files (videos/), with their masks as MASKS/<stem>/*.png."""
    folder = write_dataset(
        tmp_path_factory.mktemp("prepare"), "SRC", clips=2, frames=5, size=(64, 48), seed=5,
        video_writer=write_video,
    )  # fmt: skip
    for clip in ("clip000", "clip001"):
        shutil.copytree(folder / clip / "ground-truth", folder / "masks" / clip)
    return folder


def test_videos_and_masks_become_train_and_test_lists(source: Path, tmp_path: Path) -> None:
    arguments = ["prepare", "--quiet", "--videos", str(source / "videos"), "--out", str(tmp_path)]
    assert main([*arguments, "--masks", str(source / "masks"), "--name", "MINE"]) == 0
    dataset = tmp_path / "MINE"
    rows = (dataset / "train.txt").read_text().splitlines()
    assert rows == (dataset / "test.txt").read_text().splitlines()
    assert rows[:2] == [
        "clip000/Imgs/00000.jpg clip000/ground-truth/00000.png",
        "clip000/Imgs/00001.jpg clip000/ground-truth/00001.png clip000/flow/00001.png",
    ]
    samples, problems = load_lists([dataset / "train.txt"])
    assert problems == [] and len(samples) == 10
    assert {(s.dataset, s.sequence) for s in samples} == {("MINE", "clip000"), ("MINE", "clip001")}
    with Image.open(samples[1].image) as image, Image.open(samples[1].flow) as flow:
        assert image.size == flow.size == (64, 48)
    assert np.array_equal(  # the masks are the video's, frame for frame
        np.asarray(Image.open(dataset / "clip001/ground-truth/00003.png")),
        np.asarray(Image.open(source / "clip001/ground-truth/00003.png")),
    )

    # The flow images follow the flow convention: they resemble the generator's exact
    # motion images, and not those of the reversed motion.
    for index in range(1, 5):
        ours = np.asarray(Image.open(dataset / f"clip000/flow/{index:05d}.png")).astype(float)
        exact = np.asarray(Image.open(source / f"clip000/flow/{index:05d}.png")).astype(float)
        motion = np.load(source / f"clip000/flow-exact/{index:05d}.npy")
        reversed_ = flow_to_image(-torch.from_numpy(motion)[None])[0].numpy().astype(float)
        assert np.abs(ours - exact).mean() < 0.5 * np.abs(ours - reversed_).mean()


def test_without_masks_every_other_frame_resized(source: Path, tmp_path: Path) -> None:
    arguments = ["prepare", "--quiet", "--videos", str(source / "videos"), "--out", str(tmp_path)]
    assert main([*arguments, "--every", "2", "--size", "96x64"]) == 0
    dataset = tmp_path / "videos"  # named after the videos' folder
    assert not (dataset / "train.txt").exists()
    rows = (dataset / "test.txt").read_text().splitlines()
    assert rows[:3] == [
        "clip000/Imgs/00000.jpg -",
        "clip000/Imgs/00002.jpg - clip000/flow/00002.png",
        "clip000/Imgs/00004.jpg - clip000/flow/00004.png",
    ]
    samples, problems = load_lists([dataset / "test.txt"], require_gt=False)
    assert problems == [] and len(samples) == 6
    assert Image.open(samples[2].flow).size == (96, 64)


def test_a_video_with_the_wrong_number_of_masks_fails_alone(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    masks = tmp_path / "masks"
    shutil.copytree(source / "masks", masks)
    (masks / "clip001" / "00004.png").unlink()
    code = main(
        ["prepare", "--videos", str(source / "videos"), "--masks", str(masks), "--out",
         str(tmp_path / "out"), "--name", "D"]
    )  # fmt: skip
    assert code == 3
    assert "clip001.mp4: no mask for frame 4 (4 masks)" in " ".join(capsys.readouterr().err.split())
    rows = (tmp_path / "out/D/train.txt").read_text().splitlines()
    assert len(rows) == 5 and all(row.startswith("clip000/") for row in rows)
    assert not (tmp_path / "out/D/clip001").exists()
