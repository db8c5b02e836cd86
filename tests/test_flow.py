"""ianet.flow: TV-L1 accuracy, the flow convention, RAFT plumbing, the colour wheel, flow files.

RAFT runs here with random weights (``weights="none"``): those tests check shapes, padding,
warm start and weight loading, not the quality of the flow (no pretrained weights offline).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from ianet.data.synthetic import generate_clip
from ianet.errors import InputError
from ianet.flow import (
    FlowEstimator,
    estimate_flow,
    flow_input,
    flow_to_image,
    motion_flow,
    read_flo,
    read_flow,
    tvl1_options,
    write_flo,
    write_flow,
)
from ianet.flow.raft import build_raft, raft_flow

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def textured(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """1x1xHxW smooth random texture in [0, 255] (several octaves of noise)."""
    generator = torch.Generator().manual_seed(seed)
    picture = torch.zeros(1, 1, height, width)
    for cell in (3, 6, 12, 24):
        noise = torch.rand(1, 1, height // cell + 3, width // cell + 3, generator=generator)
        picture += F.interpolate(noise, size=(height, width), mode="bicubic") * cell**0.5
    picture -= picture.amin()
    return picture * (255 / picture.amax())


def moved(picture: torch.Tensor, matrix: list[list[float]], shift: list[float]):
    """Frames (prev, next) as 1xHxWx3 uint8 and the exact flow 2xHxW of prev -> next.

    ``next`` shows ``picture`` moved by x -> A (x - c) + c + shift about the centre c.
    """
    height, width = picture.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2]).view(2, 1, 1)
    points = torch.stack((xs, ys)) - centre
    a = torch.tensor(matrix, dtype=torch.float32)
    t = torch.tensor(shift, dtype=torch.float32).view(2, 1, 1)
    source = torch.einsum("ij,jhw->ihw", torch.linalg.inv(a), points - t) + centre
    grid = torch.stack((source[0] / (width - 1) * 2 - 1, source[1] / (height - 1) * 2 - 1), -1)
    second = F.grid_sample(picture, grid[None], mode="bicubic", align_corners=True)
    flow = torch.einsum("ij,jhw->ihw", a, points) + t - points

    def rgb(image: torch.Tensor) -> torch.Tensor:
        return (
            image.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).expand(-1, -1, 3)[None]
        )

    return rgb(picture), rgb(second).contiguous(), flow


def epe(flow: torch.Tensor, truth: torch.Tensor, margin: int = 0) -> float:
    error = (flow - truth).square().sum(dim=-3).sqrt()
    if margin:
        error = error[..., margin:-margin, margin:-margin]
    return error.mean().item()


def test_identical_frames_give_zero_flow():
    frames = textured(64, 96).round().to(torch.uint8)[0].permute(1, 2, 0).expand(-1, -1, 3)[None]
    flow = estimate_flow(frames, frames.clone())
    assert flow.shape == (1, 2, 64, 96) and flow.dtype == torch.float32
    assert flow.abs().max().item() < 1e-3


@pytest.mark.parametrize(
    ("matrix", "shift"),
    [
        ([[1.0, 0.0], [0.0, 1.0]], [1.3, -0.6]),  # sub-pixel translation
        ([[math.cos(0.03), -math.sin(0.03)], [math.sin(0.03), math.cos(0.03)]], [0.0, 0.0]),
    ],
    ids=["translation", "rotation"],
)
def test_tvl1_recovers_known_motion(matrix, shift):
    prev, next, truth = moved(textured(96, 128, seed=1), matrix, shift)
    flow = estimate_flow(prev, next, "tvl1", preset="balanced")[0]
    assert epe(flow, truth, margin=8) < 0.2


def test_tvl1_can_stop_at_half_resolution():
    prev, next, truth = moved(textured(96, 128, seed=1), [[1.0, 0.0], [0.0, 1.0]], [1.3, -0.6])
    flow = estimate_flow(prev, next, preset="fast", finest_level=1)
    assert flow.shape == (1, 2, 96, 128)
    assert epe(flow[0], truth, margin=8) < 0.3


def test_batch_equals_loop():
    pairs = [
        moved(textured(48, 80, seed), [[1, 0], [0, 1]], [0.5 * seed, -0.7]) for seed in range(3)
    ]
    prev = torch.cat([p for p, _, _ in pairs])
    next = torch.cat([n for _, n, _ in pairs])
    batched = estimate_flow(prev, next, preset="fast")
    looped = torch.cat([estimate_flow(p, n, preset="fast") for p, n, _ in pairs])
    torch.testing.assert_close(batched, looped, atol=1e-4, rtol=0)


def test_estimate_flow_rejects_bad_input():
    frames = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8 RGB"):
        estimate_flow(frames.float(), frames.float())
    with pytest.raises(ValueError, match="BxHxWx3"):
        estimate_flow(frames[0], frames[0])
    with pytest.raises(ValueError, match="differ"):
        estimate_flow(frames, torch.zeros(1, 32, 40, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown flow method"):
        estimate_flow(frames, frames, "lucas_kanade")
    with pytest.raises(ValueError, match="preset"):
        estimate_flow(frames, frames, preset="slow")
    with pytest.raises(ValueError, match="unknown TV-L1 option"):
        tvl1_options(warp=3)


# ----------------------------------------------------------------------------- convention


@pytest.fixture(scope="module")
def clip():
    return generate_clip(0, (224, 128), 3)


def test_motion_flow_matches_the_generator_on_the_moving_object(clip):
    prev = torch.from_numpy(clip[1].image)[None]
    current = torch.from_numpy(clip[2].image)[None]
    on_object = torch.from_numpy(clip[2].mask > 0)
    inside = -F.max_pool2d(-on_object.float()[None], 5, stride=1, padding=2)[0] > 0  # 2 px in
    assert inside.sum() > 1000
    motion = motion_flow(prev, current, "tvl1")[0]
    truth = torch.from_numpy(clip[2].motion)
    assert truth[:, on_object].norm(dim=0).mean() > 2  # the object does move
    error = (motion - truth).square().sum(0).sqrt()
    assert error[on_object].mean() < 0.4
    assert error[inside].mean() < 0.25
    # The other alignment is ordinary flow on the previous frame's grid.
    previous = motion_flow(prev, current, "tvl1", alignment="previous")[0]
    torch.testing.assert_close(previous, estimate_flow(prev, current)[0])
    assert epe(previous, torch.from_numpy(clip[2].flow)) < 0.5
    image = flow_input(prev, current, "tvl1")
    assert torch.equal(image, flow_to_image(motion[None]))


def test_flow_estimator_follows_a_stream(clip):
    frames = torch.from_numpy(np.stack([frame.image for frame in clip]))
    estimator = FlowEstimator("tvl1", warm_start=False)
    first = estimator(frames[:1])
    assert first.valid == (False,) and first.flow.abs().max() == 0
    rest = estimator(frames[1:])
    assert rest.valid == (True, True)
    torch.testing.assert_close(rest.flow, motion_flow(frames[:-1], frames[1:]))
    estimator.reset()
    again = estimator(frames)
    assert again.valid == (False, True, True)
    torch.testing.assert_close(again.flow[1:], rest.flow)
    # a new size (the working size changed): the last frame is resized to it, the stream goes on
    assert estimator(frames[:1, :64]).valid == (True,)
    with pytest.raises(ValueError, match="alignment"):
        FlowEstimator(alignment="next")


# ----------------------------------------------------------------------------- RAFT, random weights


@pytest.mark.parametrize("method", ["raft_small", "raft_large"])
def test_raft_any_size_with_random_weights(method):
    generator = torch.Generator().manual_seed(0)
    prev = torch.randint(0, 256, (2, 45, 70, 3), dtype=torch.uint8, generator=generator)
    next = prev.roll(2, dims=2)
    flow = estimate_flow(prev, next, method, weights="none", iterations=2)
    assert flow.shape == (2, 2, 45, 70) and flow.dtype == torch.float32
    warm = estimate_flow(prev, next, method, weights="none", iterations=2, init=flow)
    assert warm.shape == flow.shape and not torch.equal(warm, flow)


def test_raft_flow_computes_what_torchvision_forward_does():
    torch.manual_seed(0)
    model = build_raft("raft_small", "none")
    prev = torch.randint(0, 256, (1, 128, 136, 3), dtype=torch.uint8)
    next = torch.randint(0, 256, (1, 128, 136, 3), dtype=torch.uint8)
    with torch.no_grad():
        ours = raft_flow(model, prev, next, iterations=3)
        images = [x.permute(0, 3, 1, 2).float() / 127.5 - 1 for x in (prev, next)]
        theirs = model(*images, num_flow_updates=3)[-1]
    torch.testing.assert_close(ours, theirs)


def test_raft_weights_from_a_file_and_from_torchvision_cache(tmp_path, monkeypatch):
    torch.manual_seed(1)
    reference = build_raft("raft_small", "none")
    state = reference.state_dict()
    path = tmp_path / "small.pth"
    torch.save(state, path)
    loaded = build_raft("raft_small", path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "raft_small_C_T_V2-01064c6d.pth"
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    from_cache = build_raft("raft_small", "auto")
    assert all(torch.equal(from_cache.state_dict()[k], v) for k, v in state.items())

    with pytest.raises(InputError, match="not found"):
        build_raft("raft_small", tmp_path / "missing.pth")
    with pytest.raises(InputError, match="not raft_large weights"):
        build_raft("raft_large", path)


def test_raft_auto_weights_offline_says_what_to_do(offline_torch_hub):
    with pytest.raises(InputError) as error:
        build_raft("raft_large", "auto")
    message = str(error.value)
    assert "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in message
    assert str(offline_torch_hub) in message
    assert "\n" not in message
    (offline_torch_hub / "raft_large_C_T_SKHT_V2-ff5fadd5.pth").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot load raft_large weights"):
        build_raft("raft_large", "auto")


# ----------------------------------------------------------------------------- colour, files


def test_colour_wheel_spot_values():
    flow = torch.tensor([[1.0, -1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0, 0.0]]).view(1, 2, 1, 5)
    colours = flow_to_image(flow)[0, 0].tolist()
    right, left, down, up, still = colours
    assert right == [255, 0, 0] and left == [0, 209, 255]
    assert down == [255, 229, 0] and up == [88, 0, 255]
    assert still == [255, 255, 255]


def test_colour_wheel_matches_torchvision_and_normalises_per_image():
    generator = torch.Generator().manual_seed(3)
    flow = torch.randn(1, 2, 20, 30, generator=generator) * 4
    expected = torchvision.utils.flow_to_image(flow).permute(0, 2, 3, 1)
    assert torch.equal(flow_to_image(flow), expected)
    pair = flow_to_image(torch.cat((flow, 10 * flow)))
    assert torch.equal(pair[0], pair[1])


def test_flo_and_npy_round_trip(tmp_path):
    flow = torch.randn(2, 7, 11)
    write_flo(tmp_path / "a.flo", flow)
    data = (tmp_path / "a.flo").read_bytes()
    assert data[:4] == b"PIEH" and len(data) == 12 + 7 * 11 * 8
    assert np.frombuffer(data[4:12], "<i4").tolist() == [11, 7]
    assert torch.equal(read_flo(tmp_path / "a.flo"), flow)
    write_flow(tmp_path / "b.npy", flow.numpy())
    assert torch.equal(read_flow(tmp_path / "b.npy"), flow)
    (tmp_path / "bad.flo").write_bytes(b"\x00" * 40)
    with pytest.raises(InputError, match=r"not a \.flo file"):
        read_flow(tmp_path / "bad.flo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flo", "b.npy", "bad.flo"]


# ----------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@cuda
def test_gpu_matches_cpu():
    prev, next, _ = moved(textured(96, 128, seed=2), [[1.0, 0.0], [0.0, 1.0]], [1.5, 0.5])
    on_cpu = estimate_flow(prev, next)
    on_gpu = estimate_flow(prev.cuda(), next.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-2, rtol=0)
    assert torch.equal(flow_to_image(on_gpu).cpu(), flow_to_image(on_gpu.cpu()))


@pytest.mark.parametrize(("reference", "expected"), [("preceding", 1.5), ("processed", 4.5)])
def test_flow_across_a_gap_of_a_live_input(reference, expected):
    """Frames 1 and 2 were dropped at the door: frame 3 arrives carrying frame 2's picture,
    and its flow is one frame interval (the motion the model learnt) or, on request, the
    motion since frame 0 that went through."""
    from ianet_stream.frame import Frame, StreamInfo
    from ianet_stream.stage import Context
    from ianet_stream_plugins.flow import Flow, FlowOptions

    texture = textured(64, 96, seed=2)
    pictures = [moved(texture, [[1, 0], [0, 1]], [1.5 * index, 0])[1][0] for index in range(4)]
    stage = Flow(FlowOptions(preset="balanced", size=None, reference=reference), Context())
    stage.open()
    stage.start_stream(StreamInfo("s", "s", "cam", 96, 64))
    stage.process([Frame(pictures[0].numpy(), 0, "s")])
    late = Frame(pictures[3].numpy(), 3, "s", previous=pictures[2].numpy())
    (processed,) = stage.process([late])
    motion = processed.flow[0, 16:-16, 16:-16].mean().item()
    assert motion == pytest.approx(expected, abs=0.3)
    assert processed.flow_image is not None


def test_the_flow_stage_degrades_in_documented_steps():
    from ianet_stream.frame import Frame, StreamInfo
    from ianet_stream.stage import Context
    from ianet_stream_plugins.flow import Flow, FlowOptions

    stage = Flow(FlowOptions(preset="balanced", size=256), Context())
    stage.open()
    steps = []
    while (step := stage.degrade()) is not None:
        steps.append(step)
    assert steps == [
        "tvl1 preset balanced -> fast",
        "working size 256 -> 192",
        "working size 192 -> 144",
        "working size 144 -> 108",
        "working size 108 -> 96",
        "flow estimated for every second frame, reused in between",
    ]
    stage.start_stream(StreamInfo("s", "s", "cam", 96, 64))
    texture = textured(64, 96, seed=3)
    frames = [
        Frame(moved(texture, [[1, 0], [0, 1]], [index, 0])[1][0].numpy(), index, "s")
        for index in range(4)
    ]
    stage.process(frames)
    assert frames[1].flow is frames[0].flow and frames[3].flow is frames[2].flow
    assert frames[2].flow is not frames[0].flow


def test_the_flow_stage_gives_the_same_flow_however_frames_are_batched():
    from ianet_stream.frame import Frame, StreamInfo
    from ianet_stream.stage import Context
    from ianet_stream_plugins.flow import Flow, FlowOptions

    texture = textured(48, 64, seed=5)
    pictures = [moved(texture, [[1, 0], [0, 1]], [0.7 * i, 0.3 * i])[1][0] for i in range(8)]
    results = []
    for grouping in ([1] * 8, [4, 4], [3, 4, 1]):
        stage = Flow(FlowOptions(size=None), Context(batch=4))
        stage.start_stream(StreamInfo("s", "s", "cam", 64, 48))
        frames = [Frame(picture.numpy(), index, "s") for index, picture in enumerate(pictures)]
        start = 0
        for count in grouping:
            stage.process(frames[start : start + count])
            start += count
        results.append(torch.stack([frame.flow for frame in frames]))
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_streams_go_on_when_degrading_shrinks_the_working_size():
    from ianet_stream.frame import Frame, StreamInfo
    from ianet_stream.stage import Context
    from ianet_stream_plugins.flow import Flow, FlowOptions

    stage = Flow(FlowOptions(size=128), Context(batch=2))
    texture = textured(128, 192, seed=6)
    pictures = [moved(texture, [[1, 0], [0, 1]], [2 * i, 0])[1][0].numpy() for i in range(2)]
    for stream in ("a", "b"):
        stage.start_stream(StreamInfo(stream, stream, "cam", 192, 128))
    stage.process([Frame(pictures[0], 0, "a"), Frame(pictures[0], 0, "b")])
    assert stage.degrade() == "working size 128 -> 96"
    later = stage.process([Frame(pictures[1], 1, "a"), Frame(pictures[1], 1, "b")])
    for frame in later:
        assert frame.flow.shape == (2, 96, 144) and frame.flow_image is not None
        assert frame.flow[0].mean() > 0.3  # the motion, in pixels of the smaller grid
