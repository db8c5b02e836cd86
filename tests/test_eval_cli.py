"""``ianet-stream eval`` on generated maps: JSON, table, protocols, lists, plots and errors."""

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ianet_stream.cli import main
from ianet_stream.console import console

KEYS = {"S", "maxF", "meanF", "adpF", "maxE", "meanE", "adpE", "MAE", "dtSSD", "frames"}
FRAMES = 4  # per sequence


def write_maps(root: Path, pred_size: tuple[int, int] = (36, 48)) -> None:
    """gt/ and pred/ with datasets A and B, sequences s0 and s1 of FRAMES frames each."""
    generator = torch.Generator().manual_seed(3)
    for dataset in ("A", "B"):
        for sequence in ("s0", "s1"):
            coarse = torch.rand(2 * FRAMES, 1, 3, 4, generator=generator)
            fields = F.interpolate(coarse, size=(36, 48), mode="bicubic", align_corners=False)
            for index in range(FRAMES):
                truth, noise = fields[2 * index], fields[2 * index + 1]
                gt = (truth > 0.5).to(torch.uint8) * 255
                pred = ((0.8 * truth + 0.2 * noise).clamp(0, 1) * 255).to(torch.uint8)
                pred = F.interpolate(pred[None].float(), size=pred_size, mode="bilinear")[0]
                for kind, image in (("gt", gt), ("pred", pred.round().to(torch.uint8))):
                    folder = root / kind / dataset / sequence
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(image[0].numpy()).save(folder / f"{index:05d}.png")


@pytest.fixture(autouse=True)
def wide_console(monkeypatch) -> None:
    """Error lines unwrapped by the console, so that a test sees them as printed."""
    monkeypatch.setattr(console, "width", 1000)


def eval_args(root: Path, *options: str) -> list[str]:
    """``eval`` of root/pred against root/gt with the options."""
    return ["eval", "--pred", str(root / "pred"), "--gt", str(root / "gt"), *options]


@pytest.fixture
def maps(tmp_path: Path) -> Path:
    write_maps(tmp_path)
    return tmp_path


def pysod_loop(gt_root: Path, pred_root: Path, dataset: str) -> dict[str, float]:
    """PySODMetrics' standard loop over one dataset's files."""
    cv2 = pytest.importorskip("cv2")
    py_sod_metrics = pytest.importorskip("py_sod_metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s, f = py_sod_metrics.Smeasure(), py_sod_metrics.Fmeasure()
        e, mae = py_sod_metrics.Emeasure(), py_sod_metrics.MAE()
        for gt_path in sorted((gt_root / dataset).rglob("*.png")):
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
            pred_path = pred_root / gt_path.relative_to(gt_root)
            pred = cv2.imread(str(pred_path), cv2.IMREAD_GRAYSCALE)
            for measure in (s, f, e, mae):
                measure.step(pred, gt)
    fm, em = f.get_results()["fm"], e.get_results()["em"]
    return {
        "S": s.get_results()["sm"],
        "maxF": fm["curve"].max(),
        "meanF": fm["curve"].mean(),
        "adpF": fm["adp"],
        "maxE": em["curve"].max(),
        "meanE": em["curve"].mean(),
        "adpE": em["adp"],
        "MAE": mae.get_results()["mae"],
    }


def test_pysod_protocol_writes_pysodmetrics_numbers(maps: Path, capsys) -> None:
    out = maps / "scores.json"
    code = main(eval_args(maps, "--protocol", "pysod", "--json", str(out)))
    assert code == 0
    scores = json.loads(out.read_text())
    assert list(scores) == ["A", "B"]
    for dataset, result in scores.items():
        assert set(result) == KEYS
        assert result["frames"] == 2 * FRAMES
        expected = pysod_loop(maps / "gt", maps / "pred", dataset)
        assert {k: result[k] for k in expected} == pytest.approx(expected, abs=1e-6)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "maxF" in captured.err and "pysod protocol" in captured.err and "A" in captured.err


def test_davsod_protocol_skips_sequence_ends(maps: Path) -> None:
    out = maps / "scores.json"
    code = main(eval_args(maps, "--json", str(out), "--quiet"))
    assert code == 0
    scores = json.loads(out.read_text())
    assert all(result["frames"] == 2 * (FRAMES - 2) for result in scores.values())
    assert all(0 < result["S"] <= 1 for result in scores.values())


def test_list_matches_predictions_by_dataset_sequence_and_gt_name(maps: Path) -> None:
    listed = maps / "lists" / "A"  # the list's folder names the dataset
    listed.mkdir(parents=True)
    rows = [
        f"{sequence}/Imgs/{index:05d}.jpg {maps}/gt/A/{sequence}/{index:05d}.png"
        for sequence in ("s0", "s1")
        for index in range(FRAMES)
    ]
    (listed / "test.txt").write_text("\n".join(rows) + "\n")
    by_list, by_folder = maps / "list.json", maps / "folder.json"
    common = ["eval", "--pred", str(maps / "pred"), "--protocol", "pysod", "--quiet"]
    assert main([*common, "--list", str(listed / "test.txt"), "--json", str(by_list)]) == 0
    assert main([*common, "--gt", str(maps / "gt"), "--json", str(by_folder)]) == 0
    assert json.loads(by_list.read_text())["A"] == json.loads(by_folder.read_text())["A"]


def test_predictions_of_another_size_are_resized(tmp_path: Path) -> None:
    write_maps(tmp_path, pred_size=(18, 24))
    out = tmp_path / "scores.json"
    code = main(eval_args(tmp_path, "--json", str(out), "--quiet"))
    assert code == 0
    assert json.loads(out.read_text())["A"]["S"] > 0.5


def test_missing_predictions_fail_with_one_line(maps: Path, capsys) -> None:
    (maps / "pred/A/s0/00001.png").unlink()
    args = eval_args(maps)
    assert main(args) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert "1 of 8 predictions missing" in message and "00001.png" in message
    out = maps / "scores.json"
    assert main([*args, "--allow-missing", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["A"]["frames"] == 2 * (FRAMES - 2) - 1


def test_missing_folder_fails_with_one_line(maps: Path, capsys) -> None:
    assert main(["eval", "--pred", str(maps / "nowhere"), "--gt", str(maps / "gt")]) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "nowhere: no such prediction folder" in message


def test_bad_arguments_exit_2(maps: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--pred", str(maps / "pred")])  # neither --gt nor --list
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--pred", "p", "--gt", "g", "--protocol", "matlab"])
    assert exit_info.value.code == 2
    assert main(["eval", "--pred", "p", "--gt", "g", "--batch-size", "0"]) == 2
    assert "--batch-size 0" in capsys.readouterr().err


def test_plot_without_matplotlib_names_the_extra(maps: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(eval_args(maps, "--plot", "p")) == 2
    assert "pip install 'ianet-stream[plot]'" in capsys.readouterr().err


def test_plot_draws_one_png_per_dataset(maps: Path) -> None:
    pytest.importorskip("matplotlib")
    plots = maps / "plots"
    code = main(eval_args(maps, "--plot", str(plots), "--quiet"))
    assert code == 0
    written = sorted(path.name for path in plots.iterdir())
    assert written == ["A.png", "B.png"]
    assert (plots / "A.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
