"""The shipped demo model finds the object a tracking camera follows, where motion alone fails.

In a tracking shot the camera follows the object: the object is nearly still on screen and
the background slides under it, so the magnitude of the motion points at the background.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ianet import Predictor
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
