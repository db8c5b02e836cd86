"""Optical flow: estimators and the colour coding IANet's flow stream reads.

``estimate_flow`` is ordinary optical flow between uint8 RGB frames (``tvl1``, weight-free;
``raft_small`` / ``raft_large`` from torchvision); ``motion_flow`` / ``flow_input`` give the
flow the model reads for a frame (``docs/architecture.md``, "Flow convention"), and
``FlowEstimator`` gives it for a stream; ``flow_to_image`` is the colour wheel;
``read_flow`` / ``write_flow`` store raw flow as ``.flo`` or ``.npy``.
"""

from importlib import import_module
from typing import Any

# Imported on first use: colour-coding flow must not pull in torchvision's RAFT.
_LAZY = {
    "flow_to_image": "ianet.flow.colour",
    "ALIGNMENTS": "ianet.flow.estimate",
    "METHODS": "ianet.flow.estimate",
    "FlowEstimator": "ianet.flow.estimate",
    "StreamFlow": "ianet.flow.estimate",
    "check_options": "ianet.flow.estimate",
    "estimate_flow": "ianet.flow.estimate",
    "estimate_streams": "ianet.flow.estimate",
    "flow_input": "ianet.flow.estimate",
    "motion_flow": "ianet.flow.estimate",
    "read_flo": "ianet.flow.io",
    "read_flow": "ianet.flow.io",
    "write_flo": "ianet.flow.io",
    "write_flow": "ianet.flow.io",
    "PRESETS": "ianet.flow.tvl1",
    "TVL1Options": "ianet.flow.tvl1",
    "tvl1_options": "ianet.flow.tvl1",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ianet.flow' has no attribute {name!r}")
