"""Salient-object detection metrics: S-measure, F-measure, E-measure and MAE, in torch.

Measures of a frame (pred in [0, 1], GT binary):

- S-measure (Fan et al., ICCV 2017), alpha 0.5: object term (mean and std of the
  prediction on GT foreground and on background) plus region term (SSIM of the four
  quadrants around the GT centroid, weighted by area); ``1 - mean(pred)`` for an
  all-background GT, ``mean(pred)`` for an all-foreground GT; clipped at 0.
- F-measure, beta^2 0.3, at the 256 thresholds k / 255 (pred >= threshold, F = 0 where
  there is no true positive); max and mean over the dataset's averaged curve; adaptive F
  at the threshold ``min(2 * mean(pred), 1)``.
- E-measure (Fan et al., IJCAI 2018) of the binarised map at the same thresholds; max,
  mean and adaptive as for F.
- MAE: mean of ``|pred - gt|``.

Both protocols read 8-bit maps, divide by 255 and min-max scale each map to [0, 1]
(a constant map is left as ``v / 255``); GT is binarised at > 128. Float maps given to
``frame_scores`` or ``SODAccumulator`` are used as they are (PySODMetrics'
``normalize=False``). ``evaluate`` resizes
a prediction of another size than its GT to the GT's size (bilinear, antialiased, back
to 8 bits; the DAVSOD toolbox does the same with MATLAB's ``imresize``, bicubic).

``protocol="davsod"`` (the DAVSOD toolbox, ``EvaluateTool/main.m``, and the MATLAB
S-measure / E-measure code it uses):

- Averages the frames of each sequence, then the sequences of a dataset (curves too:
  max F is the maximum of the dataset's averaged F curve).
- Skips the first and the last frame of each sequence (``select_frames``).
- Thresholds are exact: the normalised prediction is compared with k / 255 and with the
  adaptive threshold in integer arithmetic (MATLAB's floating point, ``1:-1/255:0`` and
  ``mapminmax``, can break a tie either way).
- The S-measure centroid is MATLAB's ``round`` of the 1-based mean (half away from zero).
- E-measure, which the DAVSOD toolbox leaves out, follows the authors' other toolboxes:
  binarised with pred > threshold, adaptive threshold ``2 * mean(pred)`` uncapped.

``protocol="pysod"`` (PySODMetrics' Smeasure, Fmeasure, Emeasure and MAE; checked
against version 1.6.2) gives its numbers on the same files to 1e-6, edge cases included:

- Averages over all frames of a dataset; no frame skipped.
- Thresholds on the 8-bit quantised map ``floor(pred * 255)``; E binarised like F.
- Centroid rounded half to even (NumPy), 0-based plus one.
- A quadrant where both prediction and GT are constant scores as PySODMetrics' NumPy
  rounding decides (1 if the mean of the block is exact, else 0).

Where the GT centroid rounds onto the last row or column, one quadrant is empty (area
weight 0): PySODMetrics (and, by its code, the MATLAB toolbox) then gives NaN; we give
that quadrant 0.

Typical use::

    from ianet.metrics import evaluate, pairs_from_folders, select_frames

    frames = select_frames(pairs_from_folders("out/maps", "data/test"), "davsod")
    scores = evaluate(frames, "davsod")  # {"DAVIS": DatasetScores(...), ...}
"""

from ianet.metrics.accumulate import DatasetScores, SODAccumulator
from ianet.metrics.files import (
    FramePair,
    evaluate,
    load_pair,
    missing_predictions,
    pairs_from_folders,
    pairs_from_samples,
    read_map,
    select_frames,
)
from ianet.metrics.measures import (
    PROTOCOLS,
    FrameScores,
    Protocol,
    e_measure_curve,
    f_measure_curve,
    frame_scores,
    mae,
    s_measure,
)

__all__ = [
    "PROTOCOLS",
    "DatasetScores",
    "FramePair",
    "FrameScores",
    "Protocol",
    "SODAccumulator",
    "e_measure_curve",
    "evaluate",
    "f_measure_curve",
    "frame_scores",
    "load_pair",
    "mae",
    "missing_predictions",
    "pairs_from_folders",
    "pairs_from_samples",
    "read_map",
    "s_measure",
    "select_frames",
]
