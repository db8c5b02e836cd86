"""The shipped demo model: it finds the object a tracking camera follows, where motion alone
fails; it stays within its size limits; the command behind its model card runs.

In a tracking shot the camera follows the object: the object is nearly still on screen and
the background slides under it, so the magnitude of the motion points at the background.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ianet import Predictor
from ianet.checkpoints import (
    builtin_path,
    input_size,
    load_checkpoint,
    read_checkpoint,
    state_dict_of,
)
from ianet.data.lists import read_list
from ianet.data.synthetic import PRESETS, write_dataset
from ianet.metrics.measures import s_measure


@pytest.fixture(scope="module")
def tracking_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(
        tmp_path_factory.mktemp("tracking"),
        "TRACK",
        clips=2,
        frames=8,
        size=(256, 160),
        seed=9100,
        config=PRESETS["tracking"],
        test_clips=2,
        flow_method="tvl1",
        flow_options={"preset": "fast"},
    )


def _read(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())


def _mean_s(maps: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    return float(np.mean([float(s_measure(p, g > 127)) for p, g in zip(maps, masks, strict=True)]))


def test_the_demo_model_finds_a_tracked_object_that_motion_alone_misses(
    tracking_clips: Path,
) -> None:
    rows = [row for row in read_list(tracking_clips / "test.txt") if row.flow is not None]
    masks = [torch.from_numpy(np.array(Image.open(row.gt))) for row in rows]
    predictor = Predictor("builtin:ianet-lite-synthetic")  # at its trained size, 160
    model = [predictor(_read(row.image)[None], _read(row.flow)[None])[0] for row in rows]
    motion = []
    for row in rows:
        flow = np.load(
            Path(row.image).parent.parent / "flow-exact" / (Path(row.image).stem + ".npy")
        )
        magnitude = torch.from_numpy(np.hypot(flow[0], flow[1]))
        motion.append((magnitude - magnitude.min()) / (magnitude.max() - magnitude.min()))
    model_s, motion_s = _mean_s(model, masks), _mean_s(motion, masks)
    assert motion_s < 0.5, motion_s
    assert model_s > 0.8 and model_s > motion_s + 0.3, (model_s, motion_s)


def test_the_shipped_model_stays_within_its_limits():
    """<= 16 MB file, <= 4 M parameters, fp16 weights, the lite variant at 160."""
    path = builtin_path("ianet-lite-synthetic")
    assert path.stat().st_size <= 16 * 2**20
    checkpoint = read_checkpoint("builtin:ianet-lite-synthetic")
    floats = [t for t in state_dict_of(checkpoint).values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    model = load_checkpoint(checkpoint)
    assert model.options["variant"] == "lite" and input_size(checkpoint) == 160
    assert sum(p.numel() for p in model.parameters()) <= 4_000_000


def test_the_model_card_command_runs_and_the_card_lists_its_sets(tmp_path):
    """``benchmarks/builtin_model.py evaluate`` on a tiny subset: one clip of four frames."""
    root = Path(__file__).resolve().parent.parent
    scores = tmp_path / "scores.json"
    subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "builtin_model.py"),
            "--work",
            str(tmp_path),
            "evaluate",
            "--before",
            "none",
            "--sets",
            "SYNTH-HELDOUT-D",
            "--clips",
            "1",
            "--frames",
            "4",
            "--json",
            str(scores),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    result = json.loads(scores.read_text())["after"]["SYNTH-HELDOUT-D"]
    assert 0.5 < result["S"] <= 1 and 0 <= result["MAE"] < 0.2 and result["frames"] == 2
    card = (root / "ianet" / "weights" / "ianet-lite-synthetic.md").read_text()
    with (root / "configs" / "builtin-model.yaml").open() as stream:
        recipe = yaml.safe_load(stream)
    for spec in recipe["heldout"]:
        assert spec["name"] in card
