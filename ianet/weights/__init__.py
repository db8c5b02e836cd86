"""The weights ianet-stream knows: what each was trained for, in one place (torchvision style).

Each entry of ``Weights`` describes one set of IANet weights: the network variant, the
input size it was trained at (the size ``Predictor``, ``ianet-stream test``, the saliency
stage and ``export`` use unless told otherwise), the flow it was trained on, its parameter
count, where the file comes from and its measured scores. ``builtin:NAME`` resolves to
``NAME.pth`` in this folder: our checkpoint format (fp16 weights, cast to fp32 on load).

Weights not listed here (a checkpoint you trained) carry their input size in their own
metadata (``meta.train_config.size``, written by ``ianet-stream train``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Score:
    """Scores on one evaluation set (S-measure, max F-measure, MAE)."""

    dataset: str
    s_measure: float
    max_f: float
    mae: float


@dataclass(frozen=True)
class WeightsInfo:
    """What one set of weights is.

    Attributes:
        name: ``builtin:NAME`` for weights shipped in this package, else a file name.
        variant: the ``IANet`` variant (``"ianet"``, ``"lite"`` or ``"lite-efficientnet"``).
        input_size: the square side it was trained at.
        flow_method: the flow its flow images came from (``ianet.flow`` method names).
        parameters: number of parameters.
        source: where the file comes from.
        scores: measured scores; ``card``: the model card (a file in this package) or a URL.
    """

    name: str
    variant: str
    input_size: int
    flow_method: str
    parameters: int
    source: str
    scores: tuple[Score, ...]
    card: str


class Weights(Enum):
    """The weights ianet-stream ships or knows of."""

    LITE_SYNTHETIC = WeightsInfo(
        name="builtin:ianet-lite-synthetic",
        variant="lite",
        input_size=160,
        flow_method="tvl1",
        parameters=3_900_287,
        source="shipped in this package (ianet/weights/ianet-lite-synthetic.pth)",
        scores=(
            Score("synthetic default scenes, held out", 0.940, 0.921, 0.015),
            Score("synthetic unseen scene parameters", 0.896, 0.911, 0.031),
            Score("synthetic tracking shots", 0.949, 0.944, 0.016),
            Score("synthetic hard preset", 0.866, 0.881, 0.022),
            Score("synthetic broad scenes", 0.630, 0.506, 0.098),
            Score("synthetic broad scenes, unseen parameters", 0.641, 0.419, 0.117),
            Score("synthetic held-out photographs", 0.613, 0.393, 0.066),
            Score("synthetic style shift", 0.665, 0.548, 0.060),
            Score("an independent generator", 0.820, 0.747, 0.050),
        ),
        card="ianet-lite-synthetic.md",
    )
    PUBLISHED = WeightsInfo(
        name="IANet.pth",
        variant="ianet",
        input_size=512,
        flow_method="raft_large",
        parameters=106_942_054,
        source="the authors' release: https://pan.baidu.com/s/1IPwwghNX4GrBOgKWT2NO0w "
        "(extraction code u9wa), linked from https://github.com/mindingyao/IANet",
        scores=(
            Score("DAVIS16", 0.927, 0.918, 0.016),
            Score("FBMS", 0.892, 0.888, 0.033),
            Score("SegTrack-V2", 0.891, 0.857, 0.013),
            Score("ViSal", 0.947, 0.951, 0.011),
            Score("DAVSOD", 0.784, 0.710, 0.067),
            Score("VOS", 0.829, 0.762, 0.063),
        ),
        card="https://github.com/mindingyao/IANet",
    )

    @property
    def info(self) -> WeightsInfo:
        return self.value


BUILTIN_PREFIX = "builtin:"


def builtin(name: str) -> Weights | None:
    """The entry of ``builtin:NAME`` (``name`` with or without the prefix), or None."""
    wanted = name if name.startswith(BUILTIN_PREFIX) else BUILTIN_PREFIX + name
    return next((weights for weights in Weights if weights.info.name == wanted), None)


def for_variant(variant: str) -> Weights:
    """The known weights of a network variant without metadata of its own (a plain state
    dict of the paper's network is the published release)."""
    return Weights.LITE_SYNTHETIC if variant.startswith("lite") else Weights.PUBLISHED
