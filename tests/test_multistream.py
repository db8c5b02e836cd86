"""Several streams in one pipeline: decode reads a list of inputs at once, flow and saliency
batch the frames of every stream into one call, each stream keeps its own state."""

from __future__ import annotations

import copy
import os
import threading
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from test_decode import decode

from ianet.checkpoints import read_checkpoint
from ianet.errors import InputError
from ianet.flow import FlowEstimator
from ianet.flow.estimate import estimate_streams
from ianet_stream.config import parse_pipeline
from ianet_stream.frame import Frame, StreamEnd, StreamInfo, StreamStart
from ianet_stream.runner import run_pipeline
from ianet_stream.stage import Context, Source
from ianet_stream_plugins.decode import Decode, DecodeOptions
from ianet_stream_plugins.flow import Flow, FlowOptions
from ianet_stream_plugins.multiplex import Multiplexer
from ianet_stream_plugins.saliency import Saliency, SaliencyOptions

# Three streams of different sizes: (uri, width, height), 6 frames each.
INPUTS = (
    ("synthetic:seed=1,size=96x64,frames=6", 96, 64),
    ("synthetic:seed=2,size=128x72,frames=6", 128, 72),
    ("lavfi:testsrc2=size=80x60:rate=25:duration=0.24", 80, 60),
)
NAMES = ("synthetic", "synthetic-2", "lavfi")
CHECKPOINT = "builtin:ianet-lite-synthetic"


def frames_by_stream(messages: list) -> dict[str, list[Frame]]:
    streams: dict[str, list[Frame]] = defaultdict(list)
    for message in messages:
        if isinstance(message, Frame):
            streams[message.stream].append(message)
    return streams


def interleaved(streams: dict[str, list[Frame]], per_stream: int) -> list[list[Frame]]:
    """Batches of ``per_stream`` consecutive frames of every stream (copies of the frames)."""
    length = max(len(frames) for frames in streams.values())
    return [
        [copy.copy(frame) for frames in streams.values() for frame in frames[i : i + per_stream]]
        for i in range(0, length, per_stream)
    ]


@pytest.fixture(scope="module")
def messages() -> list:
    return decode([uri for uri, _, _ in INPUTS])


def test_a_list_of_inputs_gives_one_stream_each_with_unique_names(messages):
    starts = [m.info for m in messages if isinstance(m, StreamStart)]
    assert sorted((info.id, info.name, info.width, info.height) for info in starts) == sorted(
        (name, name, width, height) for name, (_, width, height) in zip(NAMES, INPUTS, strict=True)
    )
    for name, frames in frames_by_stream(messages).items():
        assert [frame.index for frame in frames] == list(range(6))
        assert all(frame.pts == frame.index for frame in frames)  # 1/25 s each
        positions = [i for i, m in enumerate(messages) if isinstance(m, Frame) and m.stream == name]
        start = next(
            i for i, m in enumerate(messages) if isinstance(m, StreamStart) and m.info.id == name
        )
        end = next(
            i for i, m in enumerate(messages) if isinstance(m, StreamEnd) and m.stream == name
        )
        assert start < min(positions) and max(positions) < end
    # max_frames applies to each stream; two inputs of one name get distinct ones
    twice = decode(
        ["lavfi:testsrc2=size=32x32:rate=25", "lavfi:color=size=32x32:rate=25"], max_frames=3
    )
    counts = {name: len(frames) for name, frames in frames_by_stream(twice).items()}
    assert counts == {"lavfi": 3, "lavfi-2": 3}
    assert DecodeOptions(uri=["clip.mp4"]).uri == "clip.mp4"  # one input: as a plain uri
    with pytest.raises(ValueError, match="uri"):
        DecodeOptions(uri=["lavfi:color", " "])
    with pytest.raises(ValueError, match="stdin"):
        DecodeOptions(uri=["-", "-"])


def test_an_input_that_cannot_be_opened_fails_naming_it(tmp_path):
    missing = str(tmp_path / "missing.mp4")
    source = Decode(DecodeOptions(uri=["synthetic:frames=2", missing]), Context())
    with pytest.raises(InputError, match=f"{missing}: no such file"):
        source.open()
    source.close()


class Failing(Source):
    """Two frames of one stream, then an error (an input that breaks while read)."""

    def __init__(self) -> None:
        super().__init__(None, Context())

    def run(self, emit) -> None:
        emit(StreamStart(StreamInfo("cam", "cam", "cam.mp4", 8, 8)))
        for index in range(2):
            emit(Frame(np.zeros((8, 8, 3), np.uint8), index, "cam"))
        raise RuntimeError("connection reset")


def test_an_input_error_stops_the_others_and_names_the_input():
    endless = Decode(DecodeOptions(uri="synthetic:size=32x32"), Context())
    inputs = Multiplexer([endless, Failing()], ["synthetic:size=32x32", "cam.mp4"])
    received: list = []
    inputs.open()
    done = threading.Event()

    def run() -> None:
        with pytest.raises(InputError, match=r"^cam.mp4: RuntimeError\('connection reset'\)"):
            inputs.run(received.append)
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(20)
    inputs.close()
    assert done.is_set()  # the endless input was stopped
    assert StreamEnd("synthetic") in received


def test_estimate_streams_equals_each_stream_alone():
    generator = torch.Generator().manual_seed(0)
    videos = [
        torch.randint(0, 256, (5, 40, 56, 3), dtype=torch.uint8, generator=generator)
        for _ in range(2)
    ]
    videos = [
        video.roll(1, dims=0).float().lerp(video.float(), 0.5).to(torch.uint8) for video in videos
    ]
    alone = [FlowEstimator("tvl1", preset="fast") for _ in videos]
    expected = [
        torch.cat([alone[0](videos[0][:2]).flow, alone[0](videos[0][2:]).flow]),
        alone[1](videos[1][2:]).flow,  # the second stream starts later
    ]
    together = [FlowEstimator("tvl1", preset="fast") for _ in videos]
    first = estimate_streams([(together[0], videos[0][:2])])
    both = estimate_streams([(together[0], videos[0][2:]), (together[1], videos[1][2:])])
    assert both[1].valid == (False, True, True) and not both[1].flow[0].any()
    torch.testing.assert_close(
        torch.cat([first[0].flow, both[0].flow]), expected[0], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(both[1].flow, expected[1], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="appears twice"):
        estimate_streams([(together[0], videos[0][:1]), (together[0], videos[0][1:2])])
    with pytest.raises(ValueError, match="frames differ"):
        estimate_streams([(together[0], videos[0][:1]), (together[1], videos[1][:1, :32])])


def test_flow_and_saliency_make_one_call_per_batch_of_several_streams(messages):
    infos = [m.info for m in messages if isinstance(m, StreamStart)]
    streams = frames_by_stream(messages)
    batches = interleaved(streams, per_stream=2)  # 6 frames of 3 streams and 3 sizes each
    # without warm start a stream's frames of a batch go in one estimation with the others'
    flow = Flow(FlowOptions(size="64x48", warm_start=False), Context(batch=6))
    saliency = Saliency(SaliencyOptions(checkpoint=CHECKPOINT, size=64), Context(batch=6))
    saliency.open()
    for info in infos:
        flow.start_stream(info)
    out = [saliency.process(flow.process(batch)) for batch in batches]
    assert flow.context.stats["calls"] == saliency.context.stats["calls"] == len(batches)
    for size in ("64x8", "wide"):
        with pytest.raises(ValueError, match="size"):
            FlowOptions(size=size)
    done = frames_by_stream([frame for batch in out for frame in batch])
    for info in infos:
        frames = done[info.id]
        assert [frame.index for frame in frames] == list(range(6))  # order kept per stream
        assert frames[0].flow_image is None and not frames[0].flow.any()
        # flow and maps stay at the working grid; the pictures keep their own size
        assert all(frame.flow_image.shape == (48, 64, 3) for frame in frames[1:])
        assert all(frame.image.shape == (info.height, info.width, 3) for frame in frames)
        # the stream's flow is what a flow stage sees of that stream alone computes
        single = Flow(FlowOptions(size="64x48", warm_start=False), Context(batch=6))
        single.start_stream(info)
        alone = [f for b in interleaved({info.id: streams[info.id]}, 2) for f in single.process(b)]
        for together, by_itself in zip(frames, alone, strict=True):
            torch.testing.assert_close(together.flow, by_itself.flow, atol=1e-3, rtol=0)
        maps = saliency.predictor([f.small for f in alone], [f.flow_image for f in alone])
        for frame, expected in zip(frames, maps, strict=True):
            assert frame.saliency.shape == (48, 64)
            torch.testing.assert_close(frame.saliency, expected, atol=1e-4, rtol=0)


def test_three_streams_through_one_pipeline_to_three_files(tmp_path: Path):
    out = tmp_path / "streams"
    spec = parse_pipeline(
        {
            "device": "cpu",
            "batch": 6,
            "stages": [
                {"decode": {"uri": [uri for uri, _, _ in INPUTS]}},
                {"flow": {"size": "64x48"}},
                {"saliency": {"checkpoint": CHECKPOINT, "size": 64}},
                {"composite": {"mode": "blur"}},
                {"encode": {"path": f"{out}/", "preset": "ultrafast"}},
            ],
        }
    )
    summary = run_pipeline(spec, quiet=True, signals=())
    assert summary.status == "done", summary.error
    assert summary.frames == 18
    calls = {stage.name: stage.counters.get("calls") for stage in summary.stages}
    # a stage takes the frames that are there when it is free, at most a batch of 6: how many
    # depends on timing (test_flow_and_saliency_make_one_call_per_batch_of_several_streams
    # checks what a batch of several streams gives)
    assert all(3 <= calls[name] <= 18 for name in ("flow", "saliency"))
    assert sorted(path.name for path in out.iterdir()) == sorted(f"{name}.mp4" for name in NAMES)
    for name, (_, width, height) in zip(NAMES, INPUTS, strict=True):
        with av.open(str(out / f"{name}.mp4")) as container:
            frames = list(container.decode(video=0))
        assert (frames[0].width, frames[0].height) == (width, height)
        assert len(frames) == 6
        times = [frame.time for frame in frames]
        assert times == sorted(times) and len(set(times)) == 6


def test_pipelines_of_one_process_share_the_model_and_reload_a_rewritten_file(tmp_path: Path):
    def opened(checkpoint: str) -> Saliency:
        stage = Saliency(SaliencyOptions(checkpoint=checkpoint, size=64), Context(batch=2))
        stage.open()
        return stage

    first, second = opened(CHECKPOINT), opened(CHECKPOINT)
    assert first.predictor is second.predictor  # the next clip does not load it again
    path = tmp_path / "model.pth"
    torch.save(read_checkpoint(CHECKPOINT), path)
    before = opened(str(path)).predictor
    assert before is not first.predictor and opened(str(path)).predictor is before
    os.utime(path, ns=(0, 0))  # a rewritten file is read again
    assert opened(str(path)).predictor is not before
