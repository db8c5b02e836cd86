"""The broad synthetic scenes: determinism, exact masks and flow through every new feature,
photo textures read offline from installed wheels, and the error without them."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import socket

import numpy as np
import pytest
import torch
from PIL import Image
from test_synthetic import erode, warp_error

from ianet.data import _render as render
from ianet.data import photos
from ianet.data.synthetic import (
    PRESETS,
    SceneConfig,
    SyntheticVideo,
    clip_seed,
    generate_clip,
    write_dataset,
)
from ianet.flow import FlowEstimator, flow_to_image
from ianet.transforms import resize_uint8, working_size
from ianet_stream.cli import main
from ianet_stream_plugins import flow as flow_stage

SIZE = (160, 96)
# Effects that change the picture only; off, the picture is the drawn scene (times the gain).
NO_EFFECTS = {
    "lighting_amplitude": 0.0,
    "motion_blur_probability": 0.0,
    "defocus_probability": 0.0,
    "noise_probability": 0.0,
    "jpeg_probability": 0.0,
    "near_defocus": (0.0, 0.0),
}
PLAIN = dataclasses.replace(
    PRESETS["broad"],
    **NO_EFFECTS,
    objects=1,
    distractors=2,
    object_size=(0.25, 0.34),
    near_props=0,
    complex_shape_probability=0.0,
    articulated_probability=0.0,
    stop_probability=0.0,
    camera_roll=0.0,
    camera_shake=0.0,
    pattern_probability=0.0,
    tracking_probability=0.0,
)
needs_photos = pytest.mark.skipif(
    any(
        importlib.util.find_spec(module) is None  # type: ignore[attr-defined]
        for module in ("skimage", "sklearn")
    ),
    reason="needs the photos extra (scikit-image and scikit-learn)",
)


def layer_warp_errors(clip, light: bool = False) -> list[tuple[float, float]]:
    """(error with the exact flow, error with the flow 0.7 px off) per layer and frame pair.

    Each layer moves by one similarity map, so its pixels of frame t-1 warped by ``flow``
    land on the same texture in frame t (and back with ``motion``); pictures are divided by
    the gain (and the lighting field) first.
    """
    results = []
    for previous, current in itertools.pairwise(clip):
        scale = [f.gain * (f.light[..., None] if light else 1) for f in (previous, current)]
        a = (previous.image / scale[0], previous.gain)
        b = (current.image / scale[1], current.gain)
        for layer in np.unique(current.layers):
            was, now = previous.layers == layer, current.layers == layer
            if erode(was, 2).sum() < 400 or erode(now, 2).sum() < 400:
                continue
            try:
                exact = warp_error(a, b, current.flow, was, now)
                back = warp_error(b, a, -current.motion, now, was)
                off = warp_error(a, b, current.flow + 0.7, was, now)
            except AssertionError:  # too few pixels land inside both regions
                continue
            results.append((max(exact, back), off))
    return results


def assert_exact(clip, light: bool = False, bound: float = 2.5) -> None:
    errors = layer_warp_errors(clip, light)
    assert len(errors) >= 4, "too few layers to check"
    for exact, off in errors:
        assert exact < bound and exact < 0.5 * off, errors


@pytest.mark.parametrize(
    "change",
    [
        {"camera_roll": 0.05, "camera_speed": (0.01, 0.03)},
        {"camera_shake": 0.02},
        {"zoom_range": (0.7, 1.4), "zoom_period": (8.0, 12.0)},
        {"near_props": 2, "camera_speed": (0.02, 0.04)},
        {"articulated_probability": 1.0},
        {"complex_shape_probability": 1.0, "distractors": 4},
        {"stop_probability": 1.0, "objects": 2},
        {"tracking_probability": 1.0, "camera_roll": 0.03},
        {"lighting_amplitude": 0.5},
    ],
    ids=[
        "roll",
        "shake",
        "fast-zoom",
        "parallax",
        "articulated",
        "holes-thin",
        "stop",
        "track",
        "lighting",
    ],
)
def test_flow_and_motion_are_exact_on_every_layer(change):
    config = dataclasses.replace(PLAIN, **change)
    for seed in (1, 2):
        clip = generate_clip(seed, SIZE, 4, config)
        assert_exact(clip, light=change.get("lighting_amplitude", 0) > 0)


def test_same_seed_same_video_and_effects_leave_masks_and_flow_alone():
    config = dataclasses.replace(PRESETS["broad"], near_props=1)
    effects = {key: value for key, value in NO_EFFECTS.items() if key != "near_defocus"}
    clean = dataclasses.replace(config, **effects)
    first, again = generate_clip(5, SIZE, 4, config), generate_clip(5, SIZE, 4, config)
    other, plain = generate_clip(6, SIZE, 4, config), generate_clip(5, SIZE, 4, clean)
    for one, two, three in zip(first, again, plain, strict=True):
        for name in ("image", "mask", "flow", "motion", "layers"):
            left, right = getattr(one, name), getattr(two, name)
            assert (left is None and right is None) or left.tobytes() == right.tobytes()
        for name in ("mask", "flow", "motion", "layers"):
            left, right = getattr(one, name), getattr(three, name)
            assert (left is None and right is None) or left.tobytes() == right.tobytes()
    assert not np.array_equal(first[2].image, other[2].image)


@pytest.mark.parametrize(
    "effect",
    [
        {"motion_blur_probability": 1.0},
        {"defocus_probability": 1.0},
        {"noise_probability": 1.0},
        {"jpeg_probability": 1.0},
        {"lighting_amplitude": 0.4},
        {"posterize_probability": 1.0, "monochrome_probability": 1.0},
        {"outline_probability": 1.0},
    ],
    ids=["motion-blur", "defocus", "noise", "jpeg", "lighting", "style", "outline"],
)
def test_each_effect_changes_the_picture_not_the_scene(effect):
    config = dataclasses.replace(PLAIN, camera_speed=(0.06, 0.06))
    sharp = generate_clip(3, SIZE, 3, config)
    changed = generate_clip(3, SIZE, 3, dataclasses.replace(config, **effect))
    for one, two in zip(sharp, changed, strict=True):
        assert np.array_equal(one.mask, two.mask)
        assert one.flow is None or np.array_equal(one.flow, two.flow)
    assert not np.array_equal(sharp[2].image, changed[2].image)
    if "motion_blur_probability" in effect:
        # The blur averages the picture along the motion: fewer sharp edges.
        def edges(picture):
            return np.abs(np.diff(picture.astype(np.float32), axis=1)).mean()

        assert edges(changed[2].image) < 0.9 * edges(sharp[2].image)
        assert np.array_equal(changed[0].image, sharp[0].image)  # no motion before frame 1


def test_objects_stop_and_start_again():
    still_camera = dataclasses.replace(
        PLAIN, stop_probability=1.0, camera_speed=(0.0, 0.0), zoom_range=(1.0, 1.0)
    )
    moving = []
    for frame in SyntheticVideo(4, SIZE, 24, still_camera):
        if frame.flow is not None and (frame.mask > 0).any():
            moving.append(float(np.abs(frame.flow[:, frame.mask > 0]).max()) > 0.05)
    assert any(moving) and not all(moving), moving
    assert any(a and not b for a, b in itertools.pairwise(moving))  # it stops
    assert any(b and not a for a, b in itertools.pairwise(moving))  # and starts again


def test_near_props_move_faster_than_the_background():
    config = dataclasses.replace(
        PLAIN,
        near_props=1,
        near_parallax=(2.5, 2.5),
        camera_speed=(0.03, 0.03),
        zoom_range=(1.0, 1.0),
        occluder_probability=0.0,
    )
    ratios = []
    for frame in itertools.islice(SyntheticVideo(2, SIZE, 6, config), 1, None):
        near = frame.layers == frame.layers.max()  # the near prop is the nearest layer
        background = frame.layers == 0
        if near.sum() > 50 and background.sum() > 50:
            speed = np.hypot(*frame.motion)  # on this frame's grid, as ``layers``
            ratios.append(speed[near].mean() / speed[background].mean())
    assert ratios and np.allclose(ratios, 2.5, rtol=0.02), ratios


def test_shapes_with_holes_and_thin_parts_stay_within_the_unit_disc():
    ring = render.Ring(0.5)
    assert ring.signed_distance(np.array(0.0), np.array(0.0)) > 0  # the hole
    assert ring.signed_distance(np.array(0.75), np.array(0.0)) < 0
    stick = render.Capsule((0.0, 0.0), (0.9, 0.0), 0.02)
    assert stick.signed_distance(np.array(0.5), np.array(0.01)) < 0
    assert stick.signed_distance(np.array(0.5), np.array(0.05)) > 0
    angle = np.linspace(0, 2 * np.pi, 720)
    u, v = np.cos(angle) * 1.001, np.sin(angle) * 1.001
    grid = np.linspace(-1, 1, 81)
    inside_counts = set()
    for seed in range(24):
        shape = render.complex_shape(np.random.default_rng(seed))
        assert (shape.signed_distance(u, v) > 0).all(), seed  # nothing beyond radius 1
        inside = shape.signed_distance(grid[None, :], grid[:, None]) < 0
        inside_counts.add(int(inside.sum()))
        assert 0 < inside.sum() < 0.8 * inside.size
    assert len(inside_counts) > 20  # varied


@needs_photos
def test_photo_textures_come_from_the_installed_wheels_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the generator tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in photos.TRAINING + photos.HELDOUT:
        path = photos.photo_path(name)
        assert "site-packages" in path.parts or "dist-packages" in path.parts, path
    picture = photos.load_photo("chelsea")
    assert picture.dtype == np.uint8 and picture.shape == (300, 451, 3)
    clip = generate_clip(1, SIZE, 2, dataclasses.replace(PLAIN, photo_probability=1.0))
    assert clip[1].image.shape == (SIZE[1], SIZE[0], 3)
    assert not set(photos.TRAINING) & set(photos.HELDOUT)
    training = [c for name, c in PRESETS.items() if name not in ("heldout-photos", "style")]
    assert all(config.photo_set == "train" for config in training)


def test_a_photo_preset_without_the_photos_extra_fails_with_one_clear_line(
    monkeypatch, tmp_path, capsys
):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(photos.MissingPhotosError, match=r"pip install 'ianet-stream\[photos\]'"):
        SyntheticVideo(0, SIZE, 2, PRESETS["photo"])
    assert generate_clip(0, SIZE, 2, PRESETS["broad"])[1].image.shape == (96, 160, 3)
    assert main(["synth", "--out", str(tmp_path), "--preset", "photo", "--clips", "1"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--preset photo" in error and "ianet-stream[photos]" in error
    assert len(error.replace("\n", " ").split("Error")) <= 2
    assert list(tmp_path.iterdir()) == []


def test_flow_images_are_estimated_at_the_pipelines_working_size(tmp_path):
    """Frames larger than the working size: flow at 256 on the short side, as the flow stage."""
    size = (288, 176)  # short side 176 > flow_size 128
    folder = write_dataset(
        tmp_path,
        "WORK",
        clips=1,
        frames=3,
        size=size,
        seed=2,
        config=PRESETS["default"],
        test_clips=1,
        flow_method="tvl1",
        flow_options={"preset": "fast"},
        flow_size=128,
    )
    # The flow stage's own working size and reduction of the pictures.
    assert flow_stage.working_size is working_size and flow_stage.resize_uint8 is resize_uint8
    assert working_size(176, 288, 128) == (128, 209)
    pictures = torch.from_numpy(
        np.stack([f.image for f in generate_clip(clip_seed(2, 0), size, 3, PRESETS["default"])])
    )
    # JPEG files differ from the pictures; the flow was computed on the pictures.
    estimator = FlowEstimator("tvl1", preset="fast")
    flow = estimator(resize_uint8(pictures, (128, 209))).flow
    expected = resize_uint8(flow_to_image(flow), (176, 288))
    for index in (1, 2):
        written = np.asarray(Image.open(folder / "clip000" / "flow" / f"{index:05d}.png"))
        assert written.shape == (176, 288, 3)
        assert np.array_equal(written, expected[index].numpy())


def test_cli_takes_count_ranges_and_checks_the_flow_size(tmp_path, capsys):
    args = ["synth", "--out", str(tmp_path), "--clips", "1", "--frames", "2", "--size", "64x48"]
    assert main([*args, "--preset", "broad", "--scene", "objects=[1,3]", "--quiet"]) == 0
    assert main([*args, "--name", "B", "--scene", "objects=[3,1]"]) == 2
    assert "SceneConfig.objects: expected 1 to 3" in capsys.readouterr().err
    assert main([*args, "--name", "C", "--flow-size", "8"]) == 2
    assert "--flow-size" in capsys.readouterr().err


def test_scene_config_rejects_bad_new_values():
    with pytest.raises(ValueError, match="photo_set"):
        SceneConfig(photo_set="everything")
    with pytest.raises(ValueError, match="near_parallax"):
        SceneConfig(near_parallax=(0.5, 2.0))
    with pytest.raises(ValueError, match="camera_roll"):
        SceneConfig(camera_roll=1.0)
