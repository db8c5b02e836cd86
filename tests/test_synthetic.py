"""The synthetic video generator: determinism, exact masks and flow, the dataset and its CLI."""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ianet.data.synthetic import (
    PRESETS,
    SceneConfig,
    SyntheticFrame,
    SyntheticVideo,
    clip_seed,
    generate_clip,
    write_dataset,
)
from ianet_stream.cli import main
from ianet_stream.video import write_video

SIZE = (160, 96)
# Mean absolute warping error bounds, in grey levels of the gain-compensated pictures. The
# rendered pictures are exact up to uint8 rounding and the bilinear interpolation of the
# check itself: measured 0.4 to 1.9 over 48 clips, while a flow half a pixel off gives 2 to
# 6.5 and zero flow 6 to 23. JPEG (quality 95) adds its own error: measured 1.8 to 3.3.
EXACT_BOUND = 2.5
JPEG_BOUND = 4.5


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion of an HxW bool mask by a square of side 2 * radius + 1."""
    height, width = mask.shape
    padded = np.pad(mask, radius, constant_values=False)
    result = mask.copy()
    for dy, dx in itertools.product(range(2 * radius + 1), repeat=2):
        result &= padded[dy : dy + height, dx : dx + width]
    return result


def bilinear(picture: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples (Nx3) of an HxWx3 float picture at points inside it."""
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = picture[y0, x0] * (1 - fx) + picture[y0, x0 + 1] * fx
    bottom = picture[y0 + 1, x0] * (1 - fx) + picture[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def warp_error(
    source: tuple[np.ndarray, float],
    target: tuple[np.ndarray, float],
    displacement: np.ndarray,
    source_region: np.ndarray,
    target_region: np.ndarray,
) -> float:
    """Mean |target(p + d(p)) - source(p)| over p deep inside both regions (grey levels).

    Pixels the brightness gain pushed to 255 (no longer proportional to the scene) are left
    out with their neighbours.

    Args:
        source, target: HxWx3 pictures divided by their gain, with their gain;
        displacement: 2xHxW on the source's grid;
        source_region, target_region: HxW bool masks of the layer checked.
    """
    (source, source_gain), (target, target_gain) = source, target
    source_region = source_region & ~(source * source_gain > 254.5).any(-1)
    target_region = target_region & ~(target * target_gain > 254.5).any(-1)
    height, width = source_region.shape
    ys, xs = np.nonzero(erode(source_region, 2))
    tx = xs + displacement[0, ys, xs]
    ty = ys + displacement[1, ys, xs]
    keep = (tx >= 2) & (tx <= width - 3) & (ty >= 2) & (ty <= height - 3)
    ys, xs, tx, ty = ys[keep], xs[keep], tx[keep], ty[keep]
    keep = erode(target_region, 2)[np.rint(ty).astype(int), np.rint(tx).astype(int)]
    assert keep.sum() > 100, "too few pixels to check"
    samples = bilinear(target, tx[keep], ty[keep])
    return float(np.abs(samples - source[ys[keep], xs[keep]]).mean())


def check_exact(pictures: list[np.ndarray], clip: list[SyntheticFrame], bound: float) -> None:
    """Warp each frame onto its neighbour with ``flow`` and ``motion``, on and off the objects."""
    for before, after in itertools.pairwise(range(len(clip))):
        previous, current = clip[before], clip[after]
        a = (pictures[before].astype(np.float64) / previous.gain, previous.gain)
        b = (pictures[after].astype(np.float64) / current.gain, current.gain)
        for salient in (True, False):
            was = (previous.mask > 0) == salient
            now = (current.mask > 0) == salient
            forward = warp_error(a, b, current.flow, was, now)
            backward = warp_error(b, a, -current.motion, now, was)
            assert forward < bound and backward < bound, (after, salient, forward, backward)


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    first = generate_clip(7, (96, 64), 4)
    again = generate_clip(7, (96, 64), 4)
    other = generate_clip(8, (96, 64), 4)
    for one, two in zip(first, again, strict=True):
        for name in ("image", "mask", "flow", "motion"):
            left, right = getattr(one, name), getattr(two, name)
            assert (left is None and right is None) or left.tobytes() == right.tobytes()
        assert one.gain == two.gain
    assert not np.array_equal(first[2].image, other[2].image)


def test_frames_have_the_documented_shapes_and_values():
    clip = generate_clip(1, (80, 48), 3)
    assert [frame.index for frame in clip] == [0, 1, 2]
    assert clip[0].flow is None and clip[0].motion is None
    for frame in clip:
        assert frame.image.shape == (48, 80, 3) and frame.image.dtype == np.uint8
        assert frame.mask.shape == (48, 80) and frame.mask.dtype == np.uint8
        assert set(np.unique(frame.mask)) <= {0, 255}
    for frame in clip[1:]:
        assert frame.flow.shape == frame.motion.shape == (2, 48, 80)
        assert frame.flow.dtype == frame.motion.dtype == np.float32
    assert any(frame.mask.any() for frame in clip)


@pytest.mark.parametrize(
    ("seed", "config"),
    [
        (0, PRESETS["default"]),
        (3, PRESETS["default"]),
        (5, dataclasses.replace(PRESETS["hard"], objects=1, occluder_probability=1.0)),
    ],
    ids=["default-0", "default-3", "hard-occluded"],
)
def test_flow_and_motion_warp_one_frame_onto_the_next(seed, config):
    clip = generate_clip(seed, SIZE, 5, config)
    check_exact([frame.image for frame in clip], clip, EXACT_BOUND)


def test_warping_with_the_wrong_flow_is_caught():
    """The check above fails when the objects' flow is replaced by the (still) background's."""
    config = SceneConfig(camera_speed=(0.0, 0.0), zoom_range=(1.0, 1.0), brightness_amplitude=0)
    clip = generate_clip(2, SIZE, 3, config)
    wrong = clip[:1] + [
        dataclasses.replace(frame, flow=np.zeros_like(frame.flow), motion=np.zeros_like(frame.flow))
        for frame in clip[1:]
    ]
    with pytest.raises(AssertionError):
        check_exact([frame.image for frame in wrong], wrong, EXACT_BOUND)


def test_endless_video_replaces_objects_that_leave():
    config = SceneConfig(enter_leave_probability=1.0, object_speed=(0.08, 0.1), distractors=1)
    frames = itertools.islice(SyntheticVideo(4, (64, 32), None, config), 240)
    covered = [frame.mask.any() for frame in frames]
    # An object crosses the view in about 20 frames: without replacements the last 120
    # frames would have no object at all.
    assert np.mean(covered[120:]) > 0.5


def read_list(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text().splitlines()]


def test_dataset_layout_lists_and_jpeg_flow(tmp_path):
    folder = write_dataset(
        tmp_path, "TOY", clips=3, frames=4, size=SIZE, seed=11, video_writer=write_video
    )
    assert folder == tmp_path / "TOY"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TOY"]  # nothing partial left
    train, test = read_list(folder / "train.txt"), read_list(folder / "test.txt")
    assert {row[0].split("/")[0] for row in train} == {"clip000", "clip001"}
    assert {row[0].split("/")[0] for row in test} == {"clip002"}
    for row in train + test:
        frame = int(Path(row[0]).stem)
        assert len(row) == (2 if frame == 0 else 3)
        assert all((folder / path).is_file() for path in row)
        assert row[0].split("/")[-3] == Path(row[0]).parts[0]
        assert Path(row[1]).name == f"{frame:05d}.png"
    clip_folder = folder / "clip000"
    clip = generate_clip(clip_seed(11, 0), SIZE, 4)
    pictures = [np.asarray(Image.open(p)) for p in sorted((clip_folder / "Imgs").iterdir())]
    masks = [np.asarray(Image.open(p)) for p in sorted((clip_folder / "ground-truth").iterdir())]
    assert all(np.array_equal(mask, frame.mask) for mask, frame in zip(masks, clip, strict=True))
    for index in range(1, 4):
        flow = np.load(clip_folder / "flow-exact" / f"{index:05d}.npy")
        assert flow.dtype == np.float32 and np.array_equal(flow, clip[index].flow)
        colour = np.asarray(Image.open(clip_folder / "flow" / f"{index:05d}.png"))
        assert colour.shape == (SIZE[1], SIZE[0], 3)
    assert not (clip_folder / "flow" / "00000.png").exists()
    check_exact(pictures, clip, JPEG_BOUND)


def test_the_same_seed_writes_the_same_mp4(tmp_path):
    for name in ("A", "B"):
        write_dataset(
            tmp_path, name, clips=1, frames=48, size=(320, 192), seed=9101,
            config=PRESETS["hard"], video_writer=write_video,
        )  # fmt: skip
    first, second = (tmp_path / name / "videos" / "clip000.mp4" for name in ("A", "B"))
    assert first.read_bytes() == second.read_bytes()


def test_mp4_plays_with_every_frame_and_odd_sizes_are_padded(tmp_path):
    folder = write_dataset(
        tmp_path, "ODD", clips=1, frames=5, size=(65, 49), seed=0, video_writer=write_video
    )
    with av.open(str(folder / "videos" / "clip000.mp4")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 5
    assert (frames[0].width, frames[0].height) == (66, 50)
    assert read_list(folder / "test.txt") == []
    assert Image.open(folder / "clip000" / "Imgs" / "00000.jpg").size == (65, 49)


def test_a_failed_write_leaves_no_dataset_folder(tmp_path):
    def broken_writer(path, pictures, fps):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path, clips=2, frames=2, size=(64, 48), video_writer=broken_writer)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_dataset_and_refuses_to_overwrite(tmp_path, capsys):
    args = ["synth", "--out", str(tmp_path), "--clips", "2", "--frames", "3", "--size", "64x48"]
    assert main([*args, "--quiet"]) == 0
    assert (tmp_path / "SYNTH" / "videos" / "clip001.mp4").is_file()
    assert len(read_list(tmp_path / "SYNTH" / "train.txt")) == 3
    assert main([*args, "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--preset", "hard", "--quiet"]) == 0


def test_overwrite_leaves_a_folder_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "SYNTH"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own work")
    args = ["synth", "--out", str(tmp_path), "--clips", "2", "--frames", "2", "--size", "64x48"]
    assert main([*args, "--overwrite", "--quiet"]) == 1
    assert "not an output of ianet-stream synth" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "my own work"


@pytest.mark.parametrize("size", ["320", "12x8", "axb", "320x"])
def test_cli_rejects_a_bad_size_with_exit_2(tmp_path, capsys, size):
    assert main(["synth", "--out", str(tmp_path), "--size", size]) == 2
    assert "--size" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_tracking_camera_keeps_the_object_still_while_the_background_pans():
    for frame in itertools.islice(SyntheticVideo(5, SIZE, 12, PRESETS["tracking"]), 1, None):
        speed = np.hypot(*frame.flow)
        on_object = frame.mask > 127
        assert on_object.any()
        assert speed[on_object].mean() < 0.35 * speed[~on_object].mean()


@pytest.mark.parametrize(
    ("scene", "message"),
    [
        ("distractors=many", "--scene distractors: expected a count or [low, high]"),
        ("object_spin=many", "--scene object_spin: expected a number"),
        ("object_speed=0.3", "--scene object_speed: expected [low, high]"),
        ("speed=1", "KEY one of objects, distractors"),
        ("objects=5", "SceneConfig.objects: expected 1 to 3"),
    ],
)
def test_cli_scene_overrides_are_checked(tmp_path, capsys, scene, message):
    assert main(["synth", "--out", str(tmp_path), "--scene", scene]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert list(tmp_path.iterdir()) == []


def test_cli_scene_overrides_change_the_scene(tmp_path):
    def first_mask(name: str, *scene: str) -> np.ndarray:
        args = ["synth", "--out", str(tmp_path), "--name", name, "--clips", "1", "--frames", "1"]
        assert main([*args, "--quiet", *scene]) == 0
        return np.array(Image.open(tmp_path / name / "clip000" / "ground-truth" / "00000.png"))

    plain = first_mask("PLAIN")
    assert np.array_equal(first_mask("SAME"), plain)
    assert not np.array_equal(first_mask("MORE", "--scene", "objects=3"), plain)


def test_console_script_help_exits_0():
    script = Path(sys.executable).with_name("ianet-stream")
    result = subprocess.run(
        [str(script), "synth", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 0
    assert "--size WxH" in result.stdout and "flow-exact" in result.stdout
