"""Training on the CPU: the loss goes down, resume is exact, DDP runs, divergence stops."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ianet.checkpoints import read_checkpoint
from ianet.data.synthetic import write_dataset
from ianet_stream.cli import main
from ianet_stream.console import console

# Tiny and fast: the lite network at 32x32 on a handful of synthetic frames, one thread
# (faster for tiny tensors, and immune to a busy machine's OpenMP waits).
TINY = ["--variant", "lite", "--size", "32", "--backbone-weights", "none", "--workers", "0"]
TINY += ["--threads", "1"]


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = write_dataset(
        tmp_path_factory.mktemp("train"), "SYN", clips=3, frames=3, size=(48, 32), seed=4
    )
    two = folder / "two.txt"  # two frames: one batch, the same every step
    two.write_text("".join((folder / "train.txt").read_text().splitlines(True)[1:3]))
    return {"train": folder / "train.txt", "test": folder / "test.txt", "two": two}


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """No line wrapping of long paths in messages."""
    monkeypatch.setattr(console, "width", 1000)


def log_rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def train(*args: str) -> int:
    return main(["train", "--quiet", *TINY, *map(str, args)])


def test_a_few_steps_lower_the_loss_and_validation_picks_the_best(
    lists: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code = train(
        "--train-list", lists["two"], "--val-list", lists["test"], "--out", out,
        "--batch-size", "2", "--epochs", "6", "--set", "optimizer=adam",
        "--lr-encoder", "1e-3", "--lr-decoder", "1e-3",
    )  # fmt: skip
    assert code == 0
    rows = log_rows(out)
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    losses = [float(row["loss"]) for row in rows]
    assert losses[-1] < losses[0] - 0.05
    assert all(float(row["lr_encoder"]) == 1e-3 for row in rows)
    assert float(rows[0]["loss_pred"]) > 0 and float(rows[0]["images_per_s"]) > 0
    final = read_checkpoint(out / "final.pth")
    assert final["meta"]["step"] == 6 and final["meta"]["train_config"]["variant"] == "lite"
    best = read_checkpoint(out / "best.pth")
    assert 0 < best["meta"]["step"] <= 6 and (out / "last.pth").is_file()


def test_resume_gives_the_same_weights_as_a_straight_run(
    lists: dict[str, Path], tmp_path: Path
) -> None:
    # 6 samples, batch 2: 3 steps per epoch; stop mid-epoch at step 2, resume to step 5
    # across the epoch boundary, where the learning rates drop; augmentations on.
    common = ["--train-list", lists["train"], "--batch-size", "2", "--epochs", "3"]
    common += ["--set", "lr_milestones=[1]", "--set", "hflip=true", "--set", "min_scale=0.7"]
    common += ["--set", "colour_jitter=0.3"]
    assert train(*common, "--out", tmp_path / "straight", "--max-steps", "5") == 0
    assert train(*common, "--out", tmp_path / "halves", "--max-steps", "2") == 0
    halves = tmp_path / "halves"
    assert train(*common, "--out", halves, "--max-steps", "5", "--resume", halves / "last.pth") == 0

    straight = read_checkpoint(tmp_path / "straight" / "final.pth")["model"]
    resumed = read_checkpoint(halves / "final.pth")["model"]
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)

    def losses(out: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "images_per_s"} for row in log_rows(out)]

    assert losses(halves) == losses(tmp_path / "straight")  # the log too, step for step
    assert [float(row["lr_decoder"]) for row in log_rows(halves)] == [5e-3] * 3 + [5e-4] * 2


def test_a_diverging_run_stops_with_a_clear_message_and_keeps_the_good_checkpoint(
    lists: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], wide_console: None
) -> None:
    out = tmp_path / "nan"
    code = main(
        ["train", *TINY, "--train-list", str(lists["train"]), "--out", str(out),
         "--batch-size", "2", "--save-every", "1", "--lr-encoder", "1e12", "--lr-decoder",
         "1e12", "--set", "momentum=0"]
    )  # fmt: skip
    assert code == 1
    message = capsys.readouterr().err
    assert "the loss became" in message and "training stopped" in message
    assert f"the last good checkpoint is {out / 'last.pth'}" in message
    assert not (out / "final.pth").exists()
    kept = read_checkpoint(out / "last.pth")
    diverged = int(log_rows(out)[-1]["step"])
    assert kept["training"]["step"] == diverged - 1
    assert all(torch.isfinite(value).all() for value in kept["model"].values())


def test_weights_that_overflow_while_the_loss_is_finite_are_never_saved(
    lists: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], wide_console: None
) -> None:
    out = tmp_path / "inf"
    code = main(
        ["train", *TINY, "--train-list", str(lists["train"]), "--out", str(out),
         "--batch-size", "2", "--save-every", "1", "--lr-encoder", "3e38", "--lr-decoder",
         "3e38", "--set", "momentum=0"]
    )  # fmt: skip
    assert code == 1
    message = capsys.readouterr().err
    assert "weight or optimiser tensor(s) became NaN or infinite by step 1" in message
    assert "last.pth was not written and no checkpoint was written before it" in message
    assert math.isfinite(float(log_rows(out)[0]["loss"]))  # the loss alone would not tell
    assert sorted(path.name for path in out.iterdir()) == ["log.csv"]


@pytest.mark.slow  # three processes start and import torch
def test_ddp_with_two_processes_and_resume_on_one(lists: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "ianet_stream.cli", "train", "--quiet", *TINY,
        "--device", "cpu", "--train-list", str(lists["train"]), "--out", str(out),
        "--batch-size", "4", "--max-steps", "2",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [row["step"] for row in log_rows(out)] == ["1", "2"]  # rank 0 alone writes
    last = read_checkpoint(out / "last.pth")
    assert last["training"]["world_size"] == 2 and last["training"]["step"] == 2

    code = train(
        "--train-list", lists["train"], "--out", out, "--batch-size", "4", "--max-steps", "3",
        "--resume", out / "last.pth",
    )  # fmt: skip
    assert code == 0
    assert [row["step"] for row in log_rows(out)] == ["1", "2", "3"]
    assert read_checkpoint(out / "final.pth")["meta"]["step"] == 3


def test_init_starts_from_a_checkpoint_and_rejects_another_variant(
    lists: dict[str, Path], tmp_path: Path, wide_console: None, capsys: pytest.CaptureFixture
) -> None:
    start = "builtin:ianet-lite-synthetic"
    out = tmp_path / "tuned"
    code = train(
        "--train-list", lists["two"], "--out", out, "--batch-size", "2", "--max-steps", "1",
        "--init", start, "--lr-encoder", "0", "--lr-decoder", "0",
    )  # fmt: skip
    assert code == 0
    tuned = read_checkpoint(out / "final.pth")["model"]
    shipped = read_checkpoint(start)["model"]
    weights = [key for key in shipped if shipped[key].is_floating_point() and "running" not in key]
    assert all(torch.equal(tuned[key], shipped[key].float()) for key in weights)
    code = train(
        "--train-list", lists["two"], "--out", tmp_path / "other", "--batch-size", "2",
        "--max-steps", "1", "--variant", "ianet", "--init", start,
    )  # fmt: skip
    assert code == 1
    assert "ianet-lite-synthetic" in capsys.readouterr().err


def test_options_come_from_defaults_then_yaml_then_the_command_line(tmp_path: Path) -> None:
    from ianet_stream.commands.train import read_config

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("size: 64\nbatch_size: 4\nloss_weights: paper\nlr_milestones: [3, 5]\n")
    config = read_config(recipe, ["optimizer=adamw", "hflip=true"], {"size": 32, "seed": None})
    assert (config.size, config.batch_size, config.optimizer, config.hflip) == (
        32,
        4,
        "adamw",
        True,
    )
    assert config.output_weights == (1, 1, 1, 0.8, 0.8, 0.4, 0.4)
    assert config.lr_milestones == (3, 5) and config.epochs == 20 and config.lr_decoder == 5e-3

    paper = read_config(Path("configs/train-paper.yaml"), [], {})
    assert paper == type(paper)()  # the YAML spells out the defaults: the reference recipe

    recipe.write_text("size: 64\nbatch_sise: 4\n")
    with pytest.raises(ValueError, match=r"recipe\.yaml: batch_sise: unknown option"):
        read_config(recipe, [], {})
    with pytest.raises(ValueError, match=r"momentum: must be in \[0, 1\)"):
        read_config(None, ["momentum=1.5"], {})


def test_bad_lists_and_a_used_folder_stop_before_training(
    lists: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], wide_console: None
) -> None:
    broken = tmp_path / "broken.txt"
    broken.write_text(f"{lists['train'].parent}/clip000/Imgs/00000.jpg nowhere.png\nx y z w\n")
    code = main(["train", *TINY, "--train-list", str(broken), "--out", str(tmp_path / "o")])
    error = capsys.readouterr().err
    assert code == 1 and f"{broken}:1: gt" in error and f"{broken}:2: expected 2 or 3" in error
    assert not (tmp_path / "o").exists()

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "last.pth").write_bytes(b"")
    code = main(
        ["train", *TINY, "--train-list", str(lists["two"]), "--out", str(tmp_path / "used")]
    )
    assert code == 1 and "pass --resume" in capsys.readouterr().err
