"""Big frames cost what the model costs: the model stages work at a working size, so a
720p frame gives the maps a 180p one does, and no stage but compositing and the sinks holds
a full-resolution copy."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ianet.data.synthetic import SyntheticVideo
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context
from ianet_stream_plugins.flow import Flow, FlowOptions
from ianet_stream_plugins.saliency import Saliency, SaliencyOptions


def maps(pictures: list[np.ndarray]) -> list[Frame]:
    """The frames after the flow (working size: short side 180) and saliency stages."""
    height, width = pictures[0].shape[:2]
    flow = Flow(FlowOptions(size=180), Context())
    saliency = Saliency(SaliencyOptions(), Context())
    flow.open()
    saliency.open()
    flow.start_stream(StreamInfo("s", "s", "clip", width, height))
    frames = [Frame(picture, index, "s") for index, picture in enumerate(pictures)]
    return [saliency.process(flow.process([frame]))[0] for frame in frames]


def test_a_720p_frame_gives_the_maps_of_its_180p_version():
    small = [sample.image for sample in SyntheticVideo(11, (320, 180), 5)]
    large = [np.array(Image.fromarray(p).resize((1280, 720), Image.BICUBIC)) for p in small]
    for low, high in zip(maps(small), maps(large), strict=True):
        assert high.saliency.shape == low.saliency.shape == (180, 320)
        difference = (high.saliency - low.saliency).abs()
        assert difference.mean() < 1 / 255, difference.mean()  # resize noise


def test_the_model_stages_hold_no_full_resolution_float_tensor():
    pictures = [sample.image for sample in SyntheticVideo(12, (1280, 720), 3)]
    for frame in maps(pictures):
        tensors = [value for value in vars(frame).values() if isinstance(value, torch.Tensor)]
        floats = [value for value in tensors if value.is_floating_point()]
        assert len(floats) == 2  # flow and saliency, at the working size: 320x180
        assert all(value.numel() <= 2 * 320 * 180 for value in floats)
        assert frame.image.dtype == torch.uint8 and frame.image.shape == (720, 1280, 3)
