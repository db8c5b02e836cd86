"""Saliency metrics: PySODMetrics' numbers to 1e-6, the DAVSOD protocol's choices, file reading."""

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ianet.errors import InputError
from ianet.metrics import (
    FramePair,
    SODAccumulator,
    e_measure_curve,
    evaluate,
    f_measure_curve,
    frame_scores,
    pairs_from_folders,
    read_map,
    select_frames,
)
from ianet.metrics.measures import (
    ByteHistograms,
    byte_histogram_numpy,
    byte_histograms,
    scores_from_histograms,
    split_from_profiles,
)

py_sod_metrics = pytest.importorskip("py_sod_metrics")
TOLERANCE = 1e-6


def smooth(generator: torch.Generator, count: int, height: int, width: int) -> torch.Tensor:
    """(count, height, width) smooth random fields in [0, 1] (blobs)."""
    coarse = torch.rand(count, 1, 3, 4, generator=generator)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    low, high = field.amin((2, 3), keepdim=True), field.amax((2, 3), keepdim=True)
    return ((field - low) / (high - low))[:, 0]


def cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, pred uint8 HxW, gt uint8 HxW): random, structured and edge cases."""
    generator = torch.Generator().manual_seed(0)
    made = []
    for index in range(8):
        height, width = 23 + 7 * index, 41 + 5 * index
        truth, noise = smooth(generator, 2, height, width)
        gt = ((truth > 0.55) * 255).to(torch.uint8).numpy()
        blend = (0.7 * truth + 0.3 * noise) * 255
        made.append((f"blobs{index}", blend.round().to(torch.uint8).numpy(), gt))
        made.append((f"random{index}", (torch.rand(height, width) * 256).byte().numpy(), gt))
        made.append((f"narrow-range{index}", (truth * 40 + 100).to(torch.uint8).numpy(), gt))
        made.append((f"binary{index}", ((noise > 0.5) * 255).to(torch.uint8).numpy(), gt))
        for value in (0, 1, 128, 200, 255):
            made.append((f"constant{value}-{index}", np.full_like(gt, value), gt))
        made.append((f"black-gt{index}", made[-6][1], np.zeros_like(gt)))
        made.append((f"white-gt{index}", made[-7][1], np.full_like(gt, 255)))
        one = np.zeros_like(gt)
        one[height // 3, width // 4] = 255
        made.append((f"one-pixel-gt{index}", made[-8][1], one))
    return made


CASES = cases()


def pysod(pred: np.ndarray, gt: np.ndarray, normalize: bool = True) -> dict[str, np.ndarray]:
    """PySODMetrics' per-frame numbers; curves reversed to ascending thresholds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measures = py_sod_metrics.Smeasure(), py_sod_metrics.Fmeasure()
        measures += py_sod_metrics.Emeasure(), py_sod_metrics.MAE()
        for measure in measures:
            measure.step(pred, gt, normalize=normalize)
    s, f, e, mae = (measure.get_results() for measure in measures)
    return {
        "s_measure": s["sm"],
        "mae": mae["mae"],
        "adaptive_f": f["fm"]["adp"],
        "adaptive_e": e["em"]["adp"],
        "f_curve": f["fm"]["curve"][::-1],
        "e_curve": e["em"]["curve"][::-1],
        "precision": f["pr"]["p"][::-1],
        "recall": f["pr"]["r"][::-1],
    }


def assert_frame_matches(name: str, ours, reference: dict[str, np.ndarray]) -> None:
    for key, expected in reference.items():
        got = getattr(ours, key)[0].numpy()
        assert np.abs(got - expected).max() <= TOLERANCE, f"{name}: {key}"


@pytest.mark.parametrize("source", ["uint8", "float"])
def test_every_frame_equals_pysodmetrics(source: str) -> None:
    for name, pred, gt in CASES:
        if source == "uint8":
            ours = frame_scores(torch.from_numpy(pred), torch.from_numpy(gt) > 128, "pysod")
            assert_frame_matches(name, ours, pysod(pred, gt))
        else:
            values = pred / 255.0
            ours = frame_scores(torch.from_numpy(values), torch.from_numpy(gt) > 128, "pysod")
            assert_frame_matches(name, ours, pysod(values, gt > 128, normalize=False))


def test_dataset_scores_equal_pysodmetrics_averages() -> None:
    accumulator = SODAccumulator("pysod")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measures = py_sod_metrics.Smeasure(), py_sod_metrics.Fmeasure()
        measures += py_sod_metrics.Emeasure(), py_sod_metrics.MAE()
        for _, pred, gt in CASES:
            for measure in measures:
                measure.step(pred, gt)
            accumulator.update(torch.from_numpy(pred), torch.from_numpy(gt), sequence="s")
    s, f, e, mae = (measure.get_results() for measure in measures)
    result = accumulator.result()["all"]
    expected = {
        "S": s["sm"],
        "maxF": f["fm"]["curve"].max(),
        "meanF": f["fm"]["curve"].mean(),
        "adpF": f["fm"]["adp"],
        "maxE": e["em"]["curve"].max(),
        "meanE": e["em"]["curve"].mean(),
        "adpE": e["em"]["adp"],
        "MAE": mae["mae"],
        "frames": len(CASES),
    }
    assert result.to_json() == pytest.approx(expected, abs=TOLERANCE)


def test_numpy_and_torch_histograms_agree() -> None:
    for protocol in ("pysod", "davsod"):
        for name, pred, gt in CASES[:24]:
            ours = byte_histogram_numpy(pred, gt > 128, protocol)
            batch = byte_histograms(
                torch.from_numpy(pred)[None], torch.from_numpy(gt > 128)[None], protocol
            )
            for got, expected in zip(ours.tensors(), batch.tensors(), strict=True):
                assert torch.equal(got, expected), name


def test_frames_of_different_sizes_score_in_one_batch() -> None:
    frames = CASES[:6:2]
    histograms = ByteHistograms.cat(
        [byte_histogram_numpy(p, g > 128, "pysod") for _, p, g in frames]
    )
    together = scores_from_histograms(histograms, "pysod").s_measure
    alone = [
        frame_scores(torch.from_numpy(p), torch.from_numpy(g), "pysod").s_measure
        for _, p, g in frames
    ]
    assert torch.allclose(together, torch.cat(alone), atol=1e-12, rtol=0)


def test_centroid_rounding_follows_each_toolbox() -> None:
    # foreground in columns 0 and 1: 0-based mean 0.5 -> NumPy rounds to 0 (split 1);
    # 1-based mean 1.5 -> MATLAB rounds to 2 (split 2)
    rows = torch.tensor([[2, 2, 0]])
    cols = torch.tensor([[2, 2, 0, 0]])
    assert [int(t) for t in split_from_profiles(rows, cols, "pysod")] == [1, 1]
    assert [int(t) for t in split_from_profiles(rows, cols, "davsod")] == [2, 2]


def reference_e_measure(binary: np.ndarray, gt: np.ndarray) -> float:
    """E-measure of a binary map pixel by pixel, as the MATLAB Enhancedmeasure.m does."""
    fm, g = binary.astype(float), gt.astype(float)
    if g.sum() == 0:
        enhanced = 1 - fm
    elif (1 - g).sum() == 0:
        enhanced = fm
    else:
        a, b = fm - fm.mean(), g - g.mean()
        enhanced = ((2 * a * b / (a * a + b * b + np.spacing(1)) + 1) ** 2) / 4
    return enhanced.sum() / (g.size - 1 + np.spacing(1))


def reference_f_measure(binary: np.ndarray, gt: np.ndarray) -> float:
    """F-measure (beta^2 0.3) as the DAVSOD toolbox's Fmeasure_calu.m computes it."""
    true_pos = (binary & gt).sum()
    if true_pos == 0:
        return 0.0
    precision, recall = true_pos / binary.sum(), true_pos / gt.sum()
    return 1.3 * precision * recall / (0.3 * precision + recall)


@pytest.mark.parametrize(
    "row",
    [
        [0, 51, 102, 153, 204, 255],  # normalises to k / 5: every level ties a threshold
        [100, 108, 116, 124, 132, 140],  # min-max scaled: (v - 100) / 40, ties at 51 / 255...
        [128, 128, 128, 128, 128, 128],  # constant: left as 128 / 255
    ],
)
def test_davsod_thresholds_are_exact_and_e_is_strict(row: list[int]) -> None:
    pred = torch.tensor([row, row[::-1]], dtype=torch.uint8)
    gt = torch.tensor([[0, 0, 0, 1, 1, 1], [1, 1, 0, 1, 0, 0]], dtype=torch.bool)
    bytes_, truth = pred.numpy().astype(int), gt.numpy()
    low, span = bytes_.min(), bytes_.max() - bytes_.min()
    # value >= k / 255 in exact integers: 255 (v - low) / span >= k, or v >= k if constant
    scaled = 255 * (bytes_ - low) if span else bytes_
    step = span or 1
    _, _, f_curve = f_measure_curve(pred, gt, "davsod")
    e_curve = e_measure_curve(pred, gt, "davsod")
    for k in range(256):
        at_least, above = scaled >= k * step, scaled > k * step
        assert f_curve[0, k] == pytest.approx(reference_f_measure(at_least, truth), abs=1e-12)
        assert e_curve[0, k] == pytest.approx(reference_e_measure(above, truth), abs=1e-12)
    exact = np.array([[Fraction(int(v), 255 * step) for v in line] for line in scaled])
    twice_mean = 2 * exact.sum() / exact.size  # the second map: exactly 1, a tie
    scores = frame_scores(pred, gt, "davsod")
    at_least, above = exact >= min(twice_mean, 1), exact > twice_mean
    assert scores.adaptive_f[0] == pytest.approx(reference_f_measure(at_least, truth))
    assert scores.adaptive_e[0] == pytest.approx(reference_e_measure(above, truth))
    assert scores.mae[0] == pytest.approx(np.abs(exact.astype(float) - truth).mean())


def test_davsod_s_measure_is_pysods_unless_the_centroid_ties() -> None:
    for name, pred, gt in CASES[:12]:
        rows = torch.from_numpy(gt > 128).sum(1)[None]
        cols = torch.from_numpy(gt > 128).sum(0)[None]
        same_split = all(
            torch.equal(a, b)
            for a, b in zip(
                split_from_profiles(rows, cols, "pysod"),
                split_from_profiles(rows, cols, "davsod"),
                strict=True,
            )
        )
        davsod = frame_scores(torch.from_numpy(pred), torch.from_numpy(gt), "davsod").s_measure
        if same_split:
            assert davsod[0] == pytest.approx(pysod(pred, gt)["s_measure"], abs=TOLERANCE), name


def test_an_empty_quadrant_scores_zero_where_pysodmetrics_gives_nan() -> None:
    gt = np.zeros((6, 8), np.uint8)
    gt[:, -1] = 255  # centroid on the last column: the right quadrants are empty
    pred = np.tile(np.arange(8, dtype=np.uint8) * 30, (6, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(pysod(pred, gt)["s_measure"])
    ours = frame_scores(torch.from_numpy(pred), torch.from_numpy(gt), "pysod").s_measure
    assert 0 < float(ours[0]) < 1


def constant_frame(value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame with S-measure 1 - value / 255: constant prediction, all-background GT."""
    return torch.full((1, 8, 10), value, dtype=torch.uint8), torch.zeros(1, 8, 10, dtype=torch.bool)


def test_davsod_averages_sequences_then_frames() -> None:
    frames = {"a": [10, 30], "b": [200]}
    davsod, pysod_protocol = SODAccumulator("davsod"), SODAccumulator("pysod")
    for sequence, values in frames.items():
        for value in values:
            for accumulator in (davsod, pysod_protocol):
                accumulator.update(*constant_frame(value), sequence=sequence, dataset="D")
    by_sequence = davsod.result()["D"]
    by_frame = pysod_protocol.result()["D"]
    assert by_sequence.s_measure == pytest.approx(((1 - 20 / 255) + (1 - 200 / 255)) / 2)
    assert by_frame.s_measure == pytest.approx(1 - 80 / 255)
    assert (by_sequence.frames, by_sequence.sequences) == (3, 2)
    assert (by_frame.frames, by_frame.sequences) == (3, 2)


def test_davsod_skips_first_and_last_frame_of_each_sequence() -> None:
    def pair(sequence: str, name: str) -> FramePair:
        return FramePair("D", sequence, Path(f"gt/{sequence}/{name}"), Path(f"p/{sequence}/{name}"))

    pairs = [pair("a", f"{i}.png") for i in (3, 1, 0, 2)] + [pair("b", "x.png"), pair("b", "y.png")]
    kept = select_frames(pairs, "davsod")
    assert [(p.sequence, p.gt.name) for p in kept] == [("a", "1.png"), ("a", "2.png")]
    assert select_frames(pairs, "pysod") == pairs


def write_sequence(root: Path, values: list[int]) -> None:
    for folder in ("gt/D/s", "pred/D/s"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index, value in enumerate(values):
        pred, gt = constant_frame(value)
        Image.fromarray(pred[0].numpy()).save(root / f"pred/D/s/{index:03d}.png")
        Image.fromarray(gt[0].numpy()).save(root / f"gt/D/s/{index:03d}.png")


def test_evaluate_files_per_protocol(tmp_path: Path) -> None:
    write_sequence(tmp_path, [0, 50, 100, 255])
    pairs = pairs_from_folders(tmp_path / "pred", tmp_path / "gt")
    threads = torch.get_num_threads()
    davsod = evaluate(select_frames(pairs, "davsod"), "davsod", workers=2)["D"]
    assert davsod.frames == 2 and davsod.s_measure == pytest.approx(1 - 75 / 255)
    assert torch.get_num_threads() == threads  # evaluate scores with one, then restores
    pysod_protocol = evaluate(pairs, "pysod", batch_size=3)["D"]
    assert pysod_protocol.frames == 4
    assert pysod_protocol.s_measure == pytest.approx(1 - 405 / 4 / 255)


def test_reference_layout_maps_ground_truth_folder_away(tmp_path: Path) -> None:
    for rel in ("gt/DAVIS/bear/ground-truth/00000.png", "gt/DAVIS/bear/flow/00000.png"):
        (tmp_path / rel).parent.mkdir(parents=True)
        Image.new("L", (4, 4)).save(tmp_path / rel)
    (tmp_path / "pred").mkdir()
    (pair,) = pairs_from_folders(tmp_path / "pred", tmp_path / "gt")
    assert (pair.dataset, pair.sequence) == ("DAVIS", "bear")
    assert pair.pred == tmp_path / "pred/DAVIS/bear/00000.png"


def test_read_map_converts_to_8_bit_grey(tmp_path: Path) -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 255
    Image.fromarray(rgb).save(tmp_path / "green.png")
    assert read_map(tmp_path / "green.png").shape == (4, 5)
    assert 140 < int(read_map(tmp_path / "green.png")[0, 0]) < 160  # 0.587 * 255
    Image.fromarray(np.full((4, 5), 40000, np.uint16)).save(tmp_path / "deep.png")
    assert int(read_map(tmp_path / "deep.png")[0, 0]) == 40000 >> 8
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"broken\.png: not a readable PNG"):
        read_map(tmp_path / "broken.png")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_scores_equal_cpu_scores() -> None:
    frames = [(p, g) for name, p, g in CASES if name.endswith("0")]
    preds = torch.stack([torch.from_numpy(p) for p, _ in frames])
    gts = torch.stack([torch.from_numpy(g) for _, g in frames])
    for protocol in ("pysod", "davsod"):
        cpu = frame_scores(preds, gts, protocol).packed()
        cuda = frame_scores(preds.cuda(), gts.cuda(), protocol).packed().cpu()
        assert torch.allclose(cpu, cuda, atol=1e-9, rtol=0)
        floats = preds.double() / 255
        cpu = frame_scores(floats, gts, protocol).packed()
        cuda = frame_scores(floats.cuda(), gts.cuda(), protocol).packed().cpu()
        assert torch.allclose(cpu, cuda, atol=1e-9, rtol=0)
