"""Export: ONNX (checked, compared with onnxruntime) and TorchScript, and the CLI command."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from test_model import scramble

from ianet.checkpoints import save_checkpoint
from ianet.errors import InputError
from ianet.export import example_inputs, export_model
from ianet.model import IANet
from ianet_stream.cli import main

SIZE = 48


@pytest.fixture(scope="module")
def lite() -> IANet:
    torch.manual_seed(0)
    return scramble(IANet("lite"))


def pred(model: IANet, image: torch.Tensor, flow: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(image, flow).pred.numpy()


def test_onnx_matches_pytorch(tmp_path, lite):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    path = export_model(lite, tmp_path / "lite.onnx", size=SIZE, dynamic_batch=True)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert [o.name for o in graph.graph.output] == ["pred"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image, flow = example_inputs(SIZE, batch=2)
    (got,) = session.run(["pred"], {"image": image.numpy(), "flow": flow.numpy()})
    expected = pred(lite, image, flow)
    assert got.shape == (2, 1, SIZE, SIZE)
    assert np.abs(got - expected).max() <= 1e-3


def test_onnx_missing_names_the_install(tmp_path, lite, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    with pytest.raises(InputError, match=r"pip install 'ianet-stream\[onnx\]'"):
        export_model(lite, tmp_path / "lite.onnx", size=SIZE)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_cli_round_trip(tmp_path, lite):
    checkpoint = save_checkpoint(tmp_path / "lite.pth", lite)
    out = tmp_path / "lite.ts"
    code = main(
        [
            "export",
            "--checkpoint",
            str(checkpoint),
            "--format",
            "torchscript",
            "--out",
            str(out),
            "--size",
            str(SIZE),
            "--quiet",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lite.pth", "lite.ts"]
    scripted = torch.jit.load(str(out))
    image, flow = example_inputs(SIZE)
    with torch.no_grad():
        got = scripted(image, flow).numpy()
    assert np.abs(got - pred(lite, image, flow)).max() <= 1e-4


def test_cli_reports_a_bad_checkpoint(tmp_path):
    code = main(
        [
            "export",
            "--checkpoint",
            str(tmp_path / "absent.pth"),
            "--format",
            "torchscript",
            "--out",
            str(tmp_path / "x.ts"),
        ]
    )
    assert code == 1
    assert not (tmp_path / "x.ts").exists()
