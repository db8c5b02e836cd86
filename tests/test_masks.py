"""The masks sink: one 8-bit PNG per frame, from saliency or the ground-truth mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_decode import decode, feed

from ianet.atomic import written_by
from ianet_stream.errors import ConfigError, InputError
from ianet_stream.frame import Frame, StreamEnd, StreamInfo, StreamStart
from ianet_stream.stage import Context
from ianet_stream_plugins.masks import WRITER, Masks, MasksOptions


def write_masks(messages: list, path: Path, context: Context | None = None) -> None:
    """Write ``messages`` with the masks sink to ``path``."""
    feed(Masks(MasksOptions(path=str(path)), context or Context()), messages)


def saliency_stream(maps: list, name: str = "clip") -> list:
    height, width = maps[0].shape
    info = StreamInfo(id=name, name=name, uri=f"{name}.mp4", width=width, height=height)
    frames = [
        Frame(image=np.zeros((height, width, 3), np.uint8), index=i, stream=name, saliency=m)
        for i, m in enumerate(maps)
    ]
    return [StreamStart(info), *frames, StreamEnd(name)]


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


def test_saliency_is_written_as_rounded_8_bit(tmp_path: Path) -> None:
    ramp = np.linspace(0, 1, 7 * 5, dtype=np.float32).reshape(5, 7)
    maps = [ramp, 1 - ramp, np.full((5, 7), 0.5, np.float32)]
    write_masks(saliency_stream(maps), tmp_path)
    files = sorted((tmp_path / "clip").glob("*.png"))
    assert [p.name for p in files] == ["00000.png", "00001.png", "00002.png"]
    assert written_by(tmp_path / "clip") == WRITER  # a later run may replace it
    for path, values in zip(files, maps, strict=True):
        assert np.array_equal(read(path), np.rint(values * 255).astype(np.uint8))
    assert read(files[0])[0, 0] == 0 and read(files[0])[-1, -1] == 255
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]


def test_tensor_saliency_is_downloaded(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    values = torch.tensor([[0.0, 0.25], [0.75, 1.0]])
    write_masks(saliency_stream([values]), tmp_path)
    assert read(tmp_path / "clip" / "00000.png").tolist() == [[0, 64], [191, 255]]


def test_synthetic_ground_truth_without_saliency(tmp_path: Path) -> None:
    messages = decode("synthetic:seed=5,size=64x48,frames=3")
    write_masks(messages, tmp_path)
    for frame in messages[1:-1]:
        written = read(tmp_path / "synthetic" / f"{frame.index:05d}.png")
        assert np.array_equal(written, frame.mask) and set(np.unique(written)) <= {0, 255}


def test_frames_without_saliency_or_mask_are_refused(tmp_path: Path) -> None:
    messages = decode("lavfi:testsrc2=size=32x32:rate=25:duration=0.08")
    context = Context()
    with pytest.raises(ConfigError, match="saliency"):
        try:
            write_masks(messages, tmp_path, context)
        finally:
            context.failed = True
    assert list(tmp_path.iterdir()) == []


def test_failed_run_leaves_no_folder(tmp_path: Path) -> None:
    messages = saliency_stream([np.zeros((4, 4), np.float32)] * 3)
    context = Context()
    sink = Masks(MasksOptions(path=str(tmp_path)), context)
    sink.start_stream(messages[0].info)
    sink.process(messages[1:3])
    context.failed = True
    sink.close()
    assert list(tmp_path.iterdir()) == []


def test_a_rerun_replaces_the_stream_folder(tmp_path: Path) -> None:
    write_masks(saliency_stream([np.ones((4, 4), np.float32)] * 3), tmp_path)
    write_masks(saliency_stream([np.zeros((4, 4), np.float32)]), tmp_path)
    assert [p.name for p in (tmp_path / "clip").glob("*.png")] == ["00000.png"]
    assert read(tmp_path / "clip" / "00000.png").max() == 0


def test_a_folder_it_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    own = tmp_path / "clip"
    own.mkdir()
    (own / "00000.png").write_bytes(b"a user's ground truth")
    with pytest.raises(InputError, match="clip: already exists and is not an output of the masks"):
        write_masks(saliency_stream([np.zeros((4, 4), np.float32)]), tmp_path)
    assert [p.name for p in own.iterdir()] == ["00000.png"]
    assert (own / "00000.png").read_bytes() == b"a user's ground truth"
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]  # no temporary left
