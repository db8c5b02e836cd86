"""The composite stage and its compositing functions, on small synthetic pictures."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from ianet.errors import InputError
from ianet_stream.frame import Frame, StreamInfo
from ianet_stream.stage import Context
from ianet_stream_plugins import composite_ops
from ianet_stream_plugins.composite import Composite, CompositeOptions

HEIGHT, WIDTH = 48, 64
TOP, BOTTOM, LEFT, RIGHT = 12, 36, 16, 48  # the object's box


def noise_picture(seed: int = 0) -> np.ndarray:
    """An HxWx3 uint8 picture of random pixels (a blur changes every one of them)."""
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def box_map() -> torch.Tensor:
    """An HxW saliency map: 1 inside the object's box, 0 elsewhere."""
    saliency = torch.zeros(HEIGHT, WIDTH)
    saliency[TOP:BOTTOM, LEFT:RIGHT] = 1
    return saliency


def as_batch(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255


def run_stage(frames: list[Frame], **options) -> list[Frame]:
    stage = Composite(CompositeOptions(**options), Context(device="cpu"))
    stage.open()
    try:
        return stage.process(frames)
    finally:
        stage.close()


def frame(index: int = 0, picture: np.ndarray | None = None, stream: str = "clip") -> Frame:
    image = noise_picture(index) if picture is None else picture
    return Frame(image=image, index=index, stream=stream, saliency=box_map())


def test_soft_mask_thresholds_then_feathers():
    saliency = torch.linspace(0, 1, WIDTH).expand(1, 1, HEIGHT, WIDTH)
    hard = composite_ops.soft_mask(saliency, threshold=0.5, feather=0)
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert hard[0, 0, 0, : WIDTH // 2].sum() == 0 and hard[0, 0, 0, WIDTH // 2 + 1 :].min() == 1
    feathered = composite_ops.soft_mask(saliency, threshold=0.5, feather=3)
    edge = feathered[0, 0, HEIGHT // 2]
    assert 0.3 < edge[WIDTH // 2] < 0.7
    assert edge[0] == 0 and edge[-1] == pytest.approx(1)
    assert torch.all(edge[1:] >= edge[:-1])


def test_large_blur_matches_a_full_resolution_one_away_from_the_borders():
    import kornia

    picture = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    blurred = composite_ops.gaussian_blur(picture, 12.0)
    reference = kornia.filters.gaussian_blur2d(picture, 73, (12.0, 12.0), border_type="replicate")
    difference = (blurred - reference)[..., 24:-24, 24:-24].abs().amax()
    assert difference < 2 / 255
    assert blurred.std() < picture.std() / 10


def test_blur_keeps_the_object_and_blurs_the_background():
    picture = noise_picture()
    output = run_stage([frame(picture=picture)], mode="blur", threshold=0.5, feather=0)[0].output
    output = output.numpy().astype(int)
    inside = (slice(TOP, BOTTOM), slice(LEFT, RIGHT))
    assert np.abs(output[inside] - picture[inside]).max() <= 1
    background = output.copy()
    background[inside] = 128
    changed = np.abs(background - picture).max(axis=2) > 8
    changed[inside] = True
    assert changed.mean() > 0.95
    assert output[:TOP].std() < picture[:TOP].std() / 3


def test_blur_does_not_bleed_the_object_into_the_background():
    picture = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    picture[TOP:BOTTOM, LEFT:RIGHT] = 255
    output = run_stage([frame(picture=picture)], mode="blur", threshold=0.5, feather=0)[0].output
    assert output[:TOP].max() == 0 and output[TOP:BOTTOM, LEFT:RIGHT].min() == 255


def test_replace_with_a_colour():
    picture = noise_picture()
    output = run_stage([frame(picture=picture)], mode="replace", background="#102030")[0].output
    output = output.numpy()
    assert (output[0, 0] == [16, 32, 48]).all()
    assert (output[:4] == [16, 32, 48]).all()
    assert np.array_equal(output[TOP + 6 : BOTTOM - 6, LEFT + 6 : RIGHT - 6],
                          picture[TOP + 6 : BOTTOM - 6, LEFT + 6 : RIGHT - 6])  # fmt: skip


def test_alpha_is_the_mask():
    saliency = torch.rand(HEIGHT, WIDTH)
    source = Frame(image=noise_picture(), index=0, stream="clip", saliency=saliency)
    output = run_stage([source], mode="alpha", feather=0)[0].output
    assert output.shape == (HEIGHT, WIDTH, 4) and output.dtype == torch.uint8
    assert torch.equal(output[..., 3], (saliency * 255).round().to(torch.uint8))
    assert np.array_equal(output[..., :3].numpy(), source.image)


def test_mask_mode_is_the_grey_map():
    output = run_stage([frame()], mode="mask", threshold=0.5, feather=0)[0].output
    assert output.shape == (HEIGHT, WIDTH, 3)
    expected = (box_map() * 255).to(torch.uint8)
    for channel in range(3):
        assert torch.equal(output[..., channel], expected)


def test_highlight_dims_the_background_and_outlines_the_object():
    picture = np.full((HEIGHT, WIDTH, 3), 200, dtype=np.uint8)
    output = run_stage(
        [frame(picture=picture)],
        mode="highlight",
        threshold=0.5,
        feather=0,
        dim=0.25,
        outline=2,
        outline_colour="#ff0000",
    )[0].output.numpy()
    assert (output[2, 2] == 50).all()  # far outside: dimmed
    assert (output[HEIGHT // 2, WIDTH // 2] == 200).all()  # deep inside: as it was
    for y, x in [(TOP, WIDTH // 2), (BOTTOM - 1, WIDTH // 2), (HEIGHT // 2, LEFT), (TOP - 1, 30)]:
        red, green, blue = output[y, x].astype(int)
        assert red > 200 and green < 80 and blue < 80, (y, x, output[y, x])


def test_highlight_desaturates_and_tints():
    picture = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    picture[..., 0] = 255
    output = run_stage(
        [frame(picture=picture)],
        mode="highlight",
        style="desaturate",
        tint="#0000ff",
        outline=0,
        threshold=0.5,
        feather=0,
    )[0].output.numpy()
    red, green, blue = output[2, 2].astype(int)
    assert red == green == blue  # grey
    red, green, blue = output[HEIGHT // 2, WIDTH // 2].astype(int)
    assert red > 100 and blue > 50 and green == 0  # red with some blue mixed in


def test_grid_lays_out_labelled_panels():
    panels = [
        torch.full((HEIGHT, WIDTH, 3), value, dtype=torch.uint8) for value in (50, 100, 150, 200)
    ]
    mosaic = composite_ops.grid(panels, ["picture", "flow", "saliency", "blur"], columns=2)
    strip = composite_ops.label_height(WIDTH)
    assert strip >= 12 and strip % 2 == 0
    assert mosaic.shape == (2 * (strip + HEIGHT), 2 * WIDTH + 2, 3) and mosaic.dtype == torch.uint8
    cell = strip + HEIGHT
    assert torch.equal(mosaic[strip:cell, :WIDTH], panels[0])
    assert torch.equal(mosaic[cell + strip :, WIDTH + 2 :], panels[3])
    label = mosaic[:strip, :WIDTH, 0]
    assert label.max() > 200 and (label > 128).float().mean() > 0.02  # text is drawn
    row = composite_ops.grid(panels, ["a", "b", "c", "d"], columns=4)
    assert row.shape == (strip + HEIGHT, 4 * WIDTH + 6, 3)


def test_grid_stage_shows_picture_white_flow_map_and_composite():
    first, second = frame(0), frame(1)
    second.flow_image = torch.zeros(HEIGHT, WIDTH, 3, dtype=torch.uint8)
    outputs = run_stage([first, second], mode="grid", grid_composite="blur")
    strip = composite_ops.label_height(WIDTH)
    cell = strip + HEIGHT
    for source in outputs:
        assert source.output.shape == (2 * cell, 2 * WIDTH + 2, 3)
        assert np.array_equal(source.output[strip:cell, :WIDTH].numpy(), source.image)
        saliency = source.output[cell + strip :, :WIDTH, 0]
        assert torch.equal(saliency, (box_map() * 255).to(torch.uint8))
    assert (outputs[0].output[strip:cell, WIDTH + 2 :] == 255).all()  # no flow yet: white
    assert (outputs[1].output[strip:cell, WIDTH + 2 :] == 0).all()


def test_stage_takes_numpy_or_tensor_pictures_and_mixed_sizes():
    from_numpy = run_stage([frame(0), frame(1)], mode="highlight")
    tensors = [frame(0), frame(1)]
    for source in tensors:
        source.image = torch.from_numpy(source.image)
    large = Frame(
        image=torch.zeros(HEIGHT * 2, WIDTH * 2, 3, dtype=torch.uint8),
        index=2,
        stream="clip",
        saliency=torch.ones(HEIGHT * 2, WIDTH * 2),
    )
    from_tensors = run_stage([*tensors, large], mode="highlight")
    for a, b in zip(from_numpy, from_tensors, strict=False):
        assert isinstance(b.output, torch.Tensor) and b.output.dtype == torch.uint8
        assert torch.equal(a.output, b.output)
    assert from_tensors[2].output.shape == (HEIGHT * 2, WIDTH * 2, 3)


def test_stage_without_saliency_says_what_is_missing():
    source = Frame(image=noise_picture(), index=0, stream="clip")
    with pytest.raises(InputError, match="needs a saliency stage before it"):
        run_stage([source])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"feather": -1}, "feather"),
        ({"threshold": 1.5}, "threshold"),
        ({"strength": -2}, "strength"),
        ({"mode": "sepia"}, "mode must be one of"),
        ({"grid_columns": 0}, "grid_columns"),
        ({"tint": "#12345"}, "tint must be a colour"),
        ({"background": "#zzzzzz"}, "background must be a colour"),
        ({"background": "no/such/file.mp4"}, "background must be a colour"),
        ({"dim": 2}, "dim"),
    ],
)
def test_impossible_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        CompositeOptions(**options)


def test_replace_with_a_picture_file(tmp_path: Path):
    backdrop = np.zeros((HEIGHT // 2, WIDTH // 2, 3), dtype=np.uint8)
    backdrop[..., 1] = 180
    path = tmp_path / "backdrop.png"
    Image.fromarray(backdrop).save(path)
    output = run_stage([frame()], mode="replace", background=str(path))[0].output.numpy()
    assert (output[:4, :, 1] == 180).all() and (output[:4, :, [0, 2]] == 0).all()


def write_video(path: Path, colours: list[tuple[int, int, int]]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for colour in colours:
            picture = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
            picture[:] = colour
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())


def test_replace_with_a_video_file_loops_it(tmp_path: Path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    path = tmp_path / "backdrop.mp4"
    write_video(path, colours)
    stage = Composite(CompositeOptions(mode="replace", background=str(path)), Context())
    stage.open()
    try:
        info = StreamInfo(id="clip", name="clip", uri="clip", width=WIDTH, height=HEIGHT)
        stage.start_stream(info)
        seen = []
        for start in (0, 4):
            frames = stage.process([frame(start + i) for i in range(4)])
            seen += [source.output[0, 0].numpy().astype(int) for source in frames]
        stage.end_stream("clip")
        stage.start_stream(info)
        restarted = stage.process([frame(8)])[0].output[0, 0].numpy().astype(int)
    finally:
        stage.close()
    for index, pixel in enumerate(seen):
        assert np.abs(pixel - colours[index % 3]).max() < 12, (index, pixel)
    assert np.abs(restarted - colours[0]).max() < 12


def test_unreadable_background_file_fails_at_open(tmp_path: Path):
    path = tmp_path / "backdrop.mp4"
    path.write_text("not a video")
    stage = Composite(CompositeOptions(mode="replace", background=str(path)), Context())
    with pytest.raises(InputError, match=r"backdrop\.mp4"):
        stage.open()


# -------------------------------------------------- full resolution from a reduced map


def reference_blur(picture: np.ndarray, saliency: torch.Tensor, sigma: float) -> np.ndarray:
    """The blur composite computed plainly at full resolution in float: the map upsampled
    to the picture, a mask-weighted Gaussian of the background, a linear blend."""
    import kornia

    height, width = picture.shape[:2]
    image = as_batch(picture)
    mask = torch.nn.functional.interpolate(
        saliency[None, None], size=(height, width), mode="bilinear", align_corners=False
    )
    weight = 1 - mask
    size = 2 * int(3 * sigma) + 1
    blurred = kornia.filters.gaussian_blur2d(
        torch.cat([image * weight, weight], 1), size, (sigma, sigma), border_type="replicate"
    )
    background = (blurred[:, :3] / blurred[:, 3:].clamp_min(1e-4)).clamp(0, 1)
    output = torch.lerp(background, image, mask)
    return (output * 255).round()[0].permute(1, 2, 0).numpy()


def test_blur_from_a_reduced_map_matches_a_plain_full_resolution_blur():
    height, width = 192, 320
    rng = np.random.default_rng(4)
    coarse = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    picture = np.array(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    saliency = torch.zeros(48, 80)  # the working size: a quarter of the picture
    saliency[12:36, 20:60] = 1
    saliency = composite_ops.gaussian_blur(saliency[None, None], 2.0)[0, 0]
    source = Frame(image=picture, index=0, stream="clip", saliency=saliency)
    ours = run_stage([source], mode="blur", strength=15, feather=0)[0].output.numpy()
    reference = reference_blur(picture, saliency, 15)
    difference = np.abs(ours.astype(float) - reference)
    assert difference.mean() < 1.5 and np.percentile(difference, 99) < 8  # grey levels
    assert ours.shape == picture.shape and ours.dtype == np.uint8


def test_highlight_from_a_reduced_map_matches_a_plain_full_resolution_highlight():
    height, width = 192, 320
    picture = np.random.default_rng(5).integers(0, 256, (height, width, 3), dtype=np.uint8)
    saliency = torch.zeros(48, 80)
    saliency[12:36, 20:60] = 1
    saliency = composite_ops.gaussian_blur(saliency[None, None], 2.0)[0, 0]
    source = Frame(image=picture, index=0, stream="clip", saliency=saliency)
    ours = run_stage([source], mode="highlight", dim=0.3, outline=0, feather=0)[0].output
    mask = torch.nn.functional.interpolate(
        saliency[None, None], size=(height, width), mode="bilinear", align_corners=False
    )
    image = as_batch(picture)
    reference = torch.lerp(image * 0.3, image, mask)
    reference = (reference * 255).round()[0].permute(1, 2, 0)
    difference = (ours.float() - reference).abs()
    assert difference.mean() < 0.75 and difference.max() <= 3  # grey levels


def test_every_mode_works_from_a_map_smaller_than_the_picture():
    picture = noise_picture()
    small = box_map()[::2, ::2].contiguous()
    for mode in ("mask", "alpha", "blur", "replace", "highlight", "grid"):
        source = Frame(image=picture, index=0, stream="clip", saliency=small)
        output = run_stage([source], mode=mode, threshold=0.5)[0].output
        assert output.dtype == torch.uint8 and output.shape[:2] >= (HEIGHT, WIDTH), mode
        if mode in ("mask", "alpha"):
            alpha = output[..., -1].float()
            assert alpha[TOP + 4 : BOTTOM - 4, LEFT + 4 : RIGHT - 4].min() > 240  # feathered
            assert alpha[: TOP - 4].max() < 16
