"""Triplet lists: parsing, path resolution, and the report of every bad row at once."""

import shutil
from pathlib import Path

import pytest
from PIL import Image

from ianet.data.lists import ListError, check_samples, load_lists, parse_list, read_list
from ianet.data.synthetic import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(
        tmp_path_factory.mktemp("lists"), "SYN", clips=2, frames=4, size=(64, 48), seed=1
    )


def test_rows_of_a_generated_list(dataset: Path) -> None:
    samples = read_list(dataset / "train.txt")
    assert len(samples) == 4
    first, second = samples[0], samples[1]
    assert first.image == dataset / "clip000/Imgs/00000.jpg" and first.image.is_file()
    assert first.gt == dataset / "clip000/ground-truth/00000.png"
    assert first.flow is None  # frame 0: a two-column row, zero flow
    assert second.flow == dataset / "clip000/flow/00001.png"
    assert (first.dataset, first.sequence, first.line) == ("SYN", "clip000", 1)
    assert second.output_name == "00001.png"
    assert second.location == f"{dataset / 'train.txt'}:2"
    assert check_samples(samples) == []


def test_every_problem_is_reported_with_file_and_line(dataset: Path, tmp_path: Path) -> None:
    Image.new("RGB", (30, 20)).save(tmp_path / "small.png")
    (tmp_path / "broken.png").write_text("not an image")
    good = f"{dataset}/clip000/Imgs/00001.jpg {dataset}/clip000/ground-truth/00001.png"
    rows = [
        good,  # 1: fine
        "only_one_column.jpg",  # 2
        f"{good} {dataset}/clip000/flow/00001.png extra",  # 3: four columns
        f"{dataset}/clip000/Imgs/missing.jpg {dataset}/clip000/ground-truth/00001.png",  # 4
        f"broken.png {dataset}/clip000/ground-truth/00001.png",  # 5: unreadable image
        f"{dataset}/clip000/Imgs/00001.jpg small.png",  # 6: GT of another size
        f"{dataset}/clip000/Imgs/00001.jpg -",  # 7: no GT, which training needs
        "",  # blank lines are skipped
        good,  # 9: fine
    ]
    listing = tmp_path / "train.txt"
    listing.write_text("\n".join(rows) + "\n")

    with pytest.raises(ListError) as caught:
        load_lists([listing])
    message = str(caught.value)
    assert message.startswith("6 bad rows")
    for line, words in [
        (2, "expected 2 or 3 columns"),
        (3, "got 4"),
        (4, "missing.jpg: no such file"),
        (5, "not a readable image"),
        (6, "gt is 30x20 but the image is 64x48"),
        (7, "no ground truth"),
    ]:
        assert f"{listing}:{line}: " in message and words in message
    assert f"{listing}:1:" not in message and f"{listing}:9:" not in message

    samples, skipped = load_lists([listing], skip_bad_rows=True)
    assert [sample.line for sample in samples] == [1, 9]
    assert sorted({problem.line for problem in skipped}) == [2, 3, 4, 5, 6, 7]


def test_rows_without_gt_are_fine_for_inference(dataset: Path, tmp_path: Path) -> None:
    listing = tmp_path / "frames.txt"
    listing.write_text(
        f"{dataset}/clip001/Imgs/00000.jpg -\n"
        f"{dataset}/clip001/Imgs/00001.jpg - {dataset}/clip001/flow/00001.png\n"
    )
    samples, problems = load_lists([listing], require_gt=False)
    assert problems == []
    assert [(s.gt, s.flow is None, s.output_name) for s in samples] == [
        (None, True, "00000.png"),
        (None, False, "00001.png"),
    ]
    assert samples[0].sequence == "clip001"


def test_relative_paths_resolve_beside_the_list_then_in_the_current_folder(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "MyData"
    folder.mkdir()
    listing = folder / "test.txt"
    listing.write_text("SYN/clip000/Imgs/00002.jpg SYN/clip000/ground-truth/00002.png\n")
    monkeypatch.chdir(dataset.parent)  # SYN/... exists here, not beside the list
    (sample,) = read_list(listing)
    assert sample.image == dataset / "clip000/Imgs/00002.jpg"
    assert (sample.dataset, sample.sequence) == ("MyData", "clip000")

    beside = folder / "SYN/clip000/Imgs/00002.jpg"  # now beside the list too: it wins
    beside.parent.mkdir(parents=True)
    shutil.copy(sample.image, beside)
    (sample,) = read_list(listing)
    assert sample.image == folder / "SYN/clip000/Imgs/00002.jpg"


def test_a_missing_or_empty_list_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nothing\.txt: no such list file"):
        read_list(tmp_path / "nothing.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    samples, problems = parse_list(tmp_path / "empty.txt")
    assert samples == [] and [str(p) for p in problems] == [f"{tmp_path}/empty.txt: no rows"]
