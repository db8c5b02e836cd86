"""Checkpoints: our format, reference state dicts, builtin weights, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_model import spec_state_dict

from ianet import checkpoints
from ianet.checkpoints import (
    load_checkpoint,
    model_options,
    read_checkpoint,
    save_checkpoint,
)
from ianet.errors import InputError
from ianet.model import IANet


@pytest.fixture(scope="module")
def lite() -> IANet:
    torch.manual_seed(0)
    return IANet("lite").eval()


def assert_same_weights(model: IANet, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert loaded[key].dtype == (torch.float32 if value.is_floating_point() else value.dtype)
        assert torch.equal(loaded[key], value.to(loaded[key].dtype)), key


def test_our_format_round_trip(tmp_path, lite):
    optimizer = torch.optim.SGD(lite.parameters(), lr=0.1, momentum=0.9)
    path = save_checkpoint(
        tmp_path / "run" / "last.pth",
        torch.nn.DataParallel(lite),
        meta={"epoch": 3, "datasets": ["DAVIS"]},
        optimizer=optimizer.state_dict(),
        step=120,
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pth"]  # no temporary left
    raw = read_checkpoint(path)
    assert raw["format"] == "ianet-stream" and raw["step"] == 120
    assert raw["meta"] == {"epoch": 3, "datasets": ["DAVIS"]}
    assert raw["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert model_options(raw) == lite.options
    model = load_checkpoint(path)
    assert isinstance(model, IANet) and not model.training
    assert model.options == lite.options
    assert_same_weights(model, lite.state_dict())


def test_save_refuses_reserved_entries_and_other_modules(tmp_path, lite):
    with pytest.raises(TypeError, match="reserved"):
        save_checkpoint(tmp_path / "x.pth", lite, options={})
    with pytest.raises(TypeError, match="IANet"):
        save_checkpoint(tmp_path / "x.pth", torch.nn.Linear(2, 2))


def test_plain_state_dict_with_module_prefix(tmp_path, lite):
    path = tmp_path / "plain.pth"
    torch.save({f"module.{k}": v for k, v in lite.state_dict().items()}, path)
    options = model_options(read_checkpoint(path))
    assert options == lite.options  # the lite variant recognised from the keys alone
    assert_same_weights(load_checkpoint(path), lite.state_dict())


def test_reference_checkpoint_of_the_paper_network():
    expected = spec_state_dict(offset=3)
    model = load_checkpoint({f"module.{k}": v for k, v in expected.items()})
    assert model.options["variant"] == "ianet"
    assert_same_weights(model, expected)
    # The caller's tensors are copied, not adopted as the model's parameters.
    conv = model.ImageBone.backbone_features.conv1.weight
    assert conv.data_ptr() != expected["ImageBone.backbone_features.conv1.weight"].data_ptr()


def test_fp16_builtin_weights(lite):
    name = "test-fp16-builtin"
    target = Path(str(checkpoints.resources.files("ianet.weights"))) / f"{name}.pth"
    half = {k: v.half() if v.is_floating_point() else v for k, v in lite.state_dict().items()}
    torch.save(half, target)
    try:
        model = load_checkpoint(f"builtin:{name}")
    finally:
        target.unlink()
    assert_same_weights(model, half)


def test_unknown_builtin():
    with pytest.raises(InputError, match="builtin:nothing: no such builtin weights"):
        load_checkpoint("builtin:nothing")


def test_wrong_checkpoint_names_keys_and_shapes(lite):
    state = dict(lite.state_dict())
    del state["lme3.conv2.weight"]
    state["GWG.FC.0.weight"] = torch.zeros(7, 7, 1, 1)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(InputError) as error:
        load_checkpoint(state)
    message = str(error.value)
    assert "\n" not in message
    assert "1 missing keys (e.g. lme3.conv2.weight)" in message
    assert "1 unexpected keys (e.g. extra.weight)" in message
    assert "GWG.FC.0.weight is 7x7x1x1 in the file" in message


def test_paper_options_on_a_lite_file_say_what_differs(lite):
    with pytest.raises(InputError) as error:
        load_checkpoint(lite.state_dict(), options={"variant": "ianet"})
    message = str(error.value)
    assert "missing keys (e.g. ImageBone.backbone_features.conv1.weight" in message
    assert len(message) < 1000


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(text)
    empty = tmp_path / "empty.pth"
    torch.save({"format": "ianet-stream", "model": {}}, empty)
    with pytest.raises(InputError, match="holds no weights"):
        load_checkpoint(empty)


def test_module_source_is_returned_in_eval_mode(lite):
    lite.train()
    model = load_checkpoint(torch.nn.DataParallel(lite))
    assert model is lite and not model.training
