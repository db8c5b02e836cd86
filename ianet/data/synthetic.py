"""Synthetic video salient-object data with exact masks and exact optical flow.

A scene is a stack of textured layers, each drawn through a known similarity map (local
coordinates -> screen), back to front:

1. the background, a periodic texture several times larger than the frame (procedural, or a
   mirrored photograph), seen through a camera that pans, zooms, rolls and shakes, or
   follows the first object (a tracking shot: the object stays in place on screen while the
   background slides under it);
2. distractors: objects of the same kinds of shape and texture as the salient ones (or, as
   "scenery", textured like the background), fixed to the background (they move exactly as
   it does, so only motion tells them apart);
3. the salient objects, which move on their own relative to the background (translation,
   slight rotation and scale; articulated ones swing their limbs), bounce inside the view or
   enter and leave it, and may stop and start again;
4. at most one occluder (a bar or a blob) fixed to the background, in front of everything;
5. near props: parallax layers on a plane nearer than the background, which move a few times
   faster than it as the camera pans, often out of focus (poles, wheels, leaves).

Because every layer's map is known at every frame, the mask (the salient objects' visible
pixels) and the flow (the map of whichever layer is visible at a pixel) are exact. Shapes
with holes and thin parts are exact too: the picture and the mask are drawn from one signed
distance. What happens after the scene is drawn changes the picture, never the mask or the
flow: a global brightness gain and a lighting field (gradients, a moving spot, a light
switched on or off), motion blur (the layers drawn at poses spread over the exposure,
centred on the frame's instant), defocus, sensor noise, JPEG compression (through PIL) and,
in the held-out ``style`` preset, outlines, posterisation and monochrome grading. These
effects draw from a random stream of their own, so turning one on leaves the scene (masks,
flow, layer positions) unchanged.

Photographs come from the wheels of scikit-image and scikit-learn (``ianet.data.photos``,
the ``photos`` extra); presets without photographs work without them.

Numpy (and PIL for photographs and JPEG) only, except ``write_dataset``, which estimates and
colour-codes flow with ``ianet.flow``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ianet.atomic import atomic_output, check_replaceable
from ianet.data import _render as render
from ianet.data import photos
from ianet.errors import InputError

if TYPE_CHECKING:
    import torch

    from ianet.flow import FlowEstimator

VideoWriter = Callable[[Path, Sequence[np.ndarray], float], None]
WRITER = "ianet-stream synth"  # marks a dataset's folder: --overwrite replaces only these
Count = int | tuple[int, int]


@dataclass(frozen=True)
class SceneConfig:
    """Scene parameters. Lengths and speeds are fractions of the frame's shorter side.

    Counts are a number or a ``(low, high)`` range drawn per clip. Every parameter after
    ``tracking_probability`` defaults to "off", which gives the scenes of the first
    generator, byte for byte.

    Attributes:
        objects: salient objects in the scene at once (1-3).
        distractors: background-attached look-alikes of the objects.
        object_size: range of the radius of objects and distractors.
        object_speed: range of an object's own speed relative to the background, per frame.
        object_spin: largest rotation of an object, radians per frame.
        object_pulse: largest relative change of an object's own scale.
        camera_speed: range of the camera's pan speed, per frame.
        zoom_range: range of the camera's magnification (1 = one texel per pixel).
        occluder_probability: chance that a clip has an occluder in front of the objects.
        brightness_amplitude: largest relative change of the global brightness gain.
        enter_leave_probability: chance that an object enters or leaves the view rather than
            staying in it (objects that leave are replaced by new ones entering).
        camouflage_probability: chance that an object or distractor has the background's hue.
        tracking_probability: chance that the camera follows the first object, which then
            stays in view, nearly still on screen, while the background pans at its speed
            (the motion's magnitude alone points at the background, not at the object).
        zoom_period: range of the period of the camera's zoom cycle, in frames.
        camera_roll: largest speed of the camera's rotation about its axis, radians per frame.
        camera_shake: size of the camera's hand-held shake, per frame.
        near_props: count of props on a nearer plane (parallax layers, in front of all).
        near_parallax: range of a near prop's motion as a multiple of the background's.
        near_defocus: range of a near prop's defocus blur (Gaussian sigma).
        complex_shape_probability: chance that a shape has holes or thin parts (a ring, a
            body with holes, a spiky body, a bent stick) rather than being star-shaped.
        articulated_probability: chance that an object has limbs that swing as it moves.
        stop_probability: chance that an object stops for a while and starts again (its own
            motion, spin and limbs pause; it still moves with the background).
        scenery_probability: chance that a distractor is textured like the background.
        pattern_probability: chance that a texture is plain or a man-made pattern (checks,
            grid, dots) rather than procedural noise.
        photo_probability: chance that a texture (background, object, distractor, prop) is
            a part of a photograph of ``photo_set``.
        photo_set: ``train`` or ``heldout`` (``ianet.data.photos``).
        lighting_amplitude: strength of the lighting field (a gradient that turns, a spot
            that moves, a light switched on or off).
        motion_blur_probability: chance that a clip is filmed with a long exposure.
        defocus_probability: chance that a clip is out of focus (its focus may drift).
        noise_probability: chance that a clip has sensor noise.
        jpeg_probability: chance that a clip's frames are JPEG-compressed (quality 12-60).
        outline_probability: chance that an object or distractor has a dark outline.
        posterize_probability: chance that a clip's colours are posterised (3-6 levels).
        monochrome_probability: chance that a clip is grey or sepia.
    """

    objects: Count = 1
    distractors: Count = 3
    object_size: tuple[float, float] = (0.2, 0.34)
    object_speed: tuple[float, float] = (0.012, 0.035)
    object_spin: float = 0.03
    object_pulse: float = 0.08
    camera_speed: tuple[float, float] = (0.0, 0.025)
    zoom_range: tuple[float, float] = (0.85, 1.2)
    occluder_probability: float = 0.5
    brightness_amplitude: float = 0.15
    enter_leave_probability: float = 0.3
    camouflage_probability: float = 0.2
    tracking_probability: float = 0.0
    zoom_period: tuple[float, float] = (60.0, 200.0)
    camera_roll: float = 0.0
    camera_shake: float = 0.0
    near_props: Count = 0
    near_parallax: tuple[float, float] = (1.5, 3.0)
    near_defocus: tuple[float, float] = (0.0, 0.0)
    complex_shape_probability: float = 0.0
    articulated_probability: float = 0.0
    stop_probability: float = 0.0
    scenery_probability: float = 0.0
    pattern_probability: float = 0.0
    photo_probability: float = 0.0
    photo_set: str = "train"
    lighting_amplitude: float = 0.0
    motion_blur_probability: float = 0.0
    defocus_probability: float = 0.0
    noise_probability: float = 0.0
    jpeg_probability: float = 0.0
    outline_probability: float = 0.0
    posterize_probability: float = 0.0
    monochrome_probability: float = 0.0

    def __post_init__(self) -> None:
        for name, low, high in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, list | tuple):
                value = tuple(value)
                if len(value) != 2 or not all(_is_int(n) for n in value):
                    raise ValueError(f"SceneConfig.{name}: expected a count or [low, high]")
                object.__setattr__(self, name, value)
            elif not _is_int(value):
                raise ValueError(f"SceneConfig.{name}: expected a count or [low, high]")
            bounds = value if isinstance(value, tuple) else (value, value)
            if not low <= bounds[0] <= bounds[1] <= high:
                raise ValueError(f"SceneConfig.{name}: expected {low} to {high}, got {value}")
        for name in _RANGES:
            value = tuple(float(bound) for bound in getattr(self, name))
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ValueError(f"SceneConfig.{name}: expected [low, high], 0 <= low <= high")
            object.__setattr__(self, name, value)  # lists (from YAML) become tuples
        if not (self.object_size[0] > 0 and self.object_size[1] <= 0.5):
            raise ValueError(
                f"SceneConfig.object_size: expected within (0, 0.5], got {self.object_size}"
            )
        if not self.zoom_range[0] > 0:
            raise ValueError(f"SceneConfig.zoom_range: expected > 0, got {self.zoom_range}")
        if not self.zoom_period[0] >= 2:
            raise ValueError(f"SceneConfig.zoom_period: expected >= 2, got {self.zoom_period}")
        if not self.near_parallax[0] >= 1:
            raise ValueError(
                "SceneConfig.near_parallax: expected >= 1 (nearer than the background)"
            )
        if not 0 <= self.brightness_amplitude < 0.5:
            raise ValueError("SceneConfig.brightness_amplitude: expected within [0, 0.5)")
        if not 0 <= self.lighting_amplitude <= 0.6:
            raise ValueError("SceneConfig.lighting_amplitude: expected within [0, 0.6]")
        for name in ("camera_roll", "camera_shake"):
            if not 0 <= getattr(self, name) <= 0.2:
                raise ValueError(f"SceneConfig.{name}: expected within [0, 0.2]")
        for name in _PROBABILITIES:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SceneConfig.{name}: expected a probability in [0, 1]")
        if self.photo_set not in photos.SETS:
            raise ValueError(
                f"SceneConfig.photo_set: expected one of {', '.join(photos.SETS)}, "
                f"got {self.photo_set!r}"
            )

    @property
    def uses_photos(self) -> bool:
        """Whether scenes need the photographs (the ``photos`` extra)."""
        return self.photo_probability > 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_COUNTS = (("objects", 1, 3), ("distractors", 0, 64), ("near_props", 0, 8))
_RANGES = (
    "object_size",
    "object_speed",
    "camera_speed",
    "zoom_range",
    "zoom_period",
    "near_parallax",
    "near_defocus",
)
_PROBABILITIES = tuple(
    name for name in SceneConfig.__dataclass_fields__ if name.endswith("_probability")
)

# The broad scenes the built-in model is trained on: every kind of shape, camera, parallax,
# lighting and optics, objects that stop and start, textures of all kinds.
_BROAD = SceneConfig(
    objects=(1, 3),
    distractors=(0, 6),
    object_size=(0.08, 0.38),
    object_speed=(0.008, 0.05),
    object_spin=0.05,
    object_pulse=0.1,
    camera_speed=(0.0, 0.04),
    zoom_range=(0.75, 1.35),
    zoom_period=(16.0, 200.0),
    occluder_probability=0.4,
    brightness_amplitude=0.2,
    enter_leave_probability=0.3,
    camouflage_probability=0.25,
    tracking_probability=0.15,
    camera_roll=0.01,
    camera_shake=0.006,
    near_props=(0, 2),
    near_parallax=(1.5, 3.5),
    near_defocus=(0.0, 0.02),
    complex_shape_probability=0.35,
    articulated_probability=0.25,
    stop_probability=0.3,
    scenery_probability=0.4,
    pattern_probability=0.2,
    lighting_amplitude=0.3,
    motion_blur_probability=0.3,
    defocus_probability=0.2,
    noise_probability=0.4,
    jpeg_probability=0.4,
)

PRESETS: dict[str, SceneConfig] = {
    "default": SceneConfig(),
    "hard": SceneConfig(
        objects=2,
        distractors=6,
        object_size=(0.12, 0.26),
        object_speed=(0.02, 0.06),
        object_spin=0.05,
        object_pulse=0.12,
        camera_speed=(0.01, 0.04),
        zoom_range=(0.75, 1.35),
        occluder_probability=0.8,
        brightness_amplitude=0.25,
        enter_leave_probability=0.5,
        camouflage_probability=0.5,
    ),
    "tracking": SceneConfig(tracking_probability=1.0),
    "broad": _BROAD,
    "photo": replace(_BROAD, photo_probability=0.6),
    "parallax": replace(
        _BROAD,
        near_props=(1, 3),
        near_parallax=(2.0, 4.0),
        camera_speed=(0.01, 0.045),
        tracking_probability=0.3,
        photo_probability=0.4,
    ),
    "still": replace(
        _BROAD,
        object_speed=(0.004, 0.03),
        camera_speed=(0.0, 0.015),
        stop_probability=0.8,
        photo_probability=0.4,
    ),
    "heldout-photos": replace(_BROAD, photo_probability=0.8, photo_set="heldout"),
    "style": replace(
        _BROAD,
        photo_probability=0.7,
        photo_set="heldout",
        pattern_probability=0.5,
        outline_probability=0.7,
        posterize_probability=0.5,
        monochrome_probability=0.5,
    ),
}
"""Scene presets. ``default``, ``hard`` and ``tracking`` are the first generator's scenes.
``broad`` has every new feature with procedural textures only; ``photo``, ``parallax`` and
``still`` add training photographs (more parallax props; objects that mostly stop and
start). Evaluation only: ``heldout-photos`` (held-out photographs) and ``style`` (held-out
photographs drawn in a style no training preset has: outlines, posterised colours, grey or
sepia pictures, many flat and patterned textures)."""


@dataclass(frozen=True, eq=False)
class SyntheticFrame:
    """One frame of a synthetic video.

    Attributes:
        index: position in the video, from 0.
        image: HxWx3 uint8 RGB picture (brightness gain applied).
        mask: HxW uint8, 255 on the salient objects' visible pixels, 0 elsewhere.
        flow: 2xHxW float32 exact optical flow from the previous frame to this one on the
            previous frame's grid (x then y, pixels): what ``estimate_flow(prev, this)``
            should return. ``None`` for index 0.
        motion: 2xHxW float32 motion of each pixel of this frame since the previous one, on
            this frame's grid (minus the exact flow from this frame back to the previous
            one): the model's flow input before colour coding. ``None`` for index 0.
        gain: the global brightness gain applied to this frame's picture.
        light: HxW float32 lighting field the picture was multiplied by (on top of
            ``gain``), or None where the scene has no lighting changes.
        layers: HxW int16 index of the layer seen at each pixel at the frame's instant
            (0: the background; higher: nearer), by which ``flow`` and ``motion`` are exact
            piecewise: each layer moves by one similarity map.
    """

    index: int
    image: np.ndarray
    mask: np.ndarray
    flow: np.ndarray | None
    motion: np.ndarray | None
    gain: float
    light: np.ndarray | None = None
    layers: np.ndarray | None = None


# ----------------------------------------------------------------------------- scene state


@dataclass(eq=False)
class _Layer:
    """A textured region with its local -> screen map now (``pose``) and one frame ago."""

    texture: np.ndarray
    shape: render.Region | None  # None: the whole plane (the background)
    radius: float  # local units of the shape's largest radius
    offset: np.ndarray  # texture coordinates of the local origin
    pose: np.ndarray = field(default_factory=lambda: np.eye(2, 3))
    previous: np.ndarray = field(default_factory=lambda: np.eye(2, 3))
    anchor: np.ndarray | None = None  # local -> world map of a background-attached layer
    plane: float = 1.0  # parallax: the layer's world moves this many times the background's
    softness: float = 1.0  # width of the anti-aliasing ramp at the edge, in pixels
    outline: float = 0.0  # width of a dark outline inside the edge, in pixels
    salient: bool = False
    seen: bool = False
    age: int = 0

    def box(
        self, width: int, height: int, pose: np.ndarray | None = None
    ) -> tuple[int, int, int, int] | None:
        """The pixels (x0, x1, y0, y1) this layer may touch, or None when out of view."""
        if self.shape is None:
            return 0, width, 0, height
        pose = self.pose if pose is None else pose
        reach = self.radius * render.scale_of(pose) + (1.0 + 0.5 * self.softness)
        cx, cy = pose[:, 2]
        x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach) + 1)
        y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach) + 1)
        return (x0, x1, y0, y1) if x0 < x1 and y0 < y1 else None


@dataclass(eq=False)
class _Limb:
    """A limb of an articulated object: a layer turning about a joint of the body."""

    layer: _Layer
    joint: np.ndarray  # in the body's local units
    rest: float  # the limb's direction at rest, radians in the body's frame
    swing: float  # amplitude of the swing, radians
    period: float  # frames per swing while the object moves
    phase: float
    front: bool  # drawn over the body (else under it)


@dataclass(eq=False)
class _Mover:
    """A salient object's own motion, in screen coordinates relative to the background."""

    layer: _Layer
    centre: np.ndarray
    velocity: np.ndarray
    speed: float
    angle: float
    spin: float
    pulse: float
    pulse_period: float
    pulse_phase: float
    magnification: float  # the camera's magnification when it appeared
    steer: bool  # keep it in view (False once a transit object is inside)
    transit: bool
    limbs: list[_Limb] = field(default_factory=list)
    stops: bool = False  # stops and starts again
    paused: bool = False
    countdown: int = 0  # frames until it stops or starts again
    clock: float = 0.0  # frames it has moved (drives the limbs' swing)

    def scale(self, time: int, magnification: float) -> float:
        wave = math.sin(2 * math.pi * time / self.pulse_period + self.pulse_phase)
        return magnification / self.magnification * (1 + self.pulse * wave)

    def layers(self) -> list[_Layer]:
        """The object's layers back to front."""
        return [
            *(limb.layer for limb in self.limbs if not limb.front),
            self.layer,
            *(limb.layer for limb in self.limbs if limb.front),
        ]


def _count(rng: np.random.Generator, count: Count) -> int:
    """A count: the number itself, or one drawn from a ``(low, high)`` range."""
    if isinstance(count, tuple):
        return int(rng.integers(count[0], count[1] + 1))
    return count


class _Scene:
    """The mutable state of one synthetic video; ``advance`` moves it on by one frame.

    Three random streams: ``rng`` (the scene: layers, shapes, textures, motion), and
    ``style_rng`` and the effects' (what happens to the picture), so that a style or an
    effect never changes the scene.
    """

    def __init__(self, seed: int, size: tuple[int, int], config: SceneConfig) -> None:
        self.rng = np.random.default_rng(seed)
        self.config = config
        self.width, self.height = size
        self.short = min(size)
        self.screen_centre = np.array([(self.width - 1) / 2, (self.height - 1) / 2])
        self.time = 0
        self.photo_names = photos.check_photos(config.photo_set) if config.uses_photos else ()
        self.style_rng = np.random.default_rng([seed, 2])  # outlines: a style, not the scene
        self.background_photo: str | None = None
        rng = self.rng
        low, high = np.log(config.zoom_range)
        self.zoom_half = rng.uniform(0.3, 1.0) * (high - low) / 2
        self.zoom_mid = rng.uniform(low + self.zoom_half, high - self.zoom_half)
        self.zoom_period = rng.uniform(*config.zoom_period)
        self.zoom_phase = rng.uniform(0, 2 * math.pi)
        self.gain_amplitude = rng.uniform(0.3, 1.0) * config.brightness_amplitude
        self.gain_period = rng.uniform(20, 80)
        self.gain_phase = rng.uniform(0, 2 * math.pi)
        self.pan_speed = rng.uniform(*config.camera_speed) * self.short
        self.heading = rng.uniform(0, 2 * math.pi)
        tile = 64 * math.ceil(2.5 * max(size) / 64)
        self.camera = rng.uniform(0, tile, 2)  # world point at the screen centre
        self.hue = rng.uniform()
        # Random draws for the newer parameters happen only where they are on, so the
        # first generator's scenes keep their random streams.
        self._camera_motion(config)
        texture, self.background_photo = self._texture(tile, tile, self.hue)
        self.background = _Layer(texture, None, 1.0, np.zeros(2))
        self.background.pose = self.background.previous = self.camera_map()
        self.distractors = [
            self._new_prop(self._random_point(), self._distractor())
            for _ in range(_count(rng, config.distractors))
        ]
        # Drawn only when tracking is possible, so other scenes keep their random streams.
        self.tracking = config.tracking_probability > 0 and (
            rng.random() < config.tracking_probability
        )
        objects = _count(rng, config.objects)
        self.movers = [self._first_mover(lead=i == 0) for i in range(objects)]
        self.occluders: list[_Layer] = []
        if rng.random() < config.occluder_probability:
            self.occluders.append(self._new_prop(self._occlusion_point(), self._occluder()))
        self.near = [
            self._near_prop(self._random_point()) for _ in range(_count(rng, config.near_props))
        ]
        self.effects = _Effects(np.random.default_rng([seed, 1]), config, size)

    def _camera_motion(self, config: SceneConfig) -> None:
        """Roll (a drift and a sway) and shake (a jittery offset of the whole picture)."""
        rng = self.rng
        self.roll_rate = self.roll_sway = self.roll_period = self.roll_phase = 0.0
        if config.camera_roll > 0:
            self.roll_rate = rng.uniform(-0.5, 0.5) * config.camera_roll
            self.roll_period = rng.uniform(12, 60)
            self.roll_sway = rng.uniform(0, 0.5) * config.camera_roll * self.roll_period / math.tau
            self.roll_phase = rng.uniform(0, math.tau)
        self.shake_size = 0.0
        if config.camera_shake > 0:
            self.shake_size = rng.uniform(0.2, 1.0) * config.camera_shake * self.short
        self.shake = np.zeros(2)

    # -- camera and brightness

    def magnification(self, time: int | None = None) -> float:
        time = self.time if time is None else time
        wave = math.sin(2 * math.pi * time / self.zoom_period + self.zoom_phase)
        return math.exp(self.zoom_mid + self.zoom_half * wave)

    def roll(self) -> float:
        """The camera's rotation now, radians."""
        if not self.roll_period:
            return 0.0
        wave = math.sin(math.tau * self.time / self.roll_period + self.roll_phase)
        return self.roll_rate * self.time + self.roll_sway * wave

    def camera_map(self, plane: float = 1.0) -> np.ndarray:
        """World -> screen now; ``plane``: a parallax layer's world moves that much faster."""
        zoom = self.magnification()
        if not (self.roll_period or self.shake_size or plane != 1.0):
            return np.array(
                [
                    [zoom, 0.0, self.screen_centre[0] - zoom * self.camera[0]],
                    [0.0, zoom, self.screen_centre[1] - zoom * self.camera[1]],
                ]
            )
        linear = render.similarity(np.zeros(2), zoom, self.roll())[:, :2]
        shift = self.screen_centre + self.shake - linear @ (plane * self.camera)
        return np.concatenate([linear, shift[:, None]], 1)

    def gain(self) -> float:
        wave = math.sin(2 * math.pi * self.time / self.gain_period + self.gain_phase)
        return 1 + self.gain_amplitude * wave

    # -- creating layers

    def _texture(
        self, height: int, width: int, hue: float, photo: str | None = None
    ) -> tuple[np.ndarray, str | None]:
        """A periodic texture around ``hue``, or from a photograph; and the photograph's name.

        ``photo``: the photograph to take it from if the texture is a photograph.
        """
        rng, config = self.rng, self.config
        if config.photo_probability > 0 and rng.random() < config.photo_probability:
            name = photo or str(rng.choice(self.photo_names))
            return render.photo_texture(rng, photos.load_photo(name), height, width), name
        colours = render.palette(rng, hue)
        if config.pattern_probability > 0 and rng.random() < config.pattern_probability:
            maker = render.flat_texture if rng.random() < 0.5 else render.pattern_texture
            return maker(rng, height, width, colours), None
        return render.texture(rng, height, width, colours), None

    def _shape(self) -> render.Region:
        rng, config = self.rng, self.config
        if config.complex_shape_probability > 0 and rng.random() < config.complex_shape_probability:
            return render.complex_shape(rng)
        return render.random_shape(rng)

    def _textured(
        self, radius: float | None = None, tile: float | None = None, scenery: bool = False
    ) -> _Layer:
        """A layer with an object-like shape and texture; ``radius`` in screen pixels.

        The texture repeats every ``tile`` pixels (default: a little more than the shape).
        ``scenery``: textured like the background (its hue, or its photograph).
        """
        rng = self.rng
        if radius is None:
            radius = rng.uniform(*self.config.object_size) * self.short
        camouflaged = scenery or rng.random() < self.config.camouflage_probability
        if camouflaged:
            hue = self.hue + rng.normal(0, 0.03)
        else:
            hue = self.hue + rng.choice((-1, 1)) * rng.uniform(0.1, 0.5)
        side = 16 * math.ceil(max(64.0, 2.4 * (tile or radius)) / 16)
        tex, _ = self._texture(side, side, hue, self.background_photo if camouflaged else None)
        layer = _Layer(tex, self._shape(), radius, rng.uniform(0, side, 2))
        style = self.style_rng
        if self.config.outline_probability > 0 and style.random() < self.config.outline_probability:
            layer.outline = style.uniform(1.0, 3.0)
        return layer

    def _distractor(self) -> _Layer:
        probability = self.config.scenery_probability
        return self._textured(scenery=probability > 0 and self.rng.random() < probability)

    def _near_prop(self, screen_point: np.ndarray) -> _Layer:
        """A prop on a nearer plane: a large blob, or a pole across the view; maybe defocused."""
        rng, config = self.rng, self.config
        radius = rng.uniform(0.25, 0.6) * self.short
        if rng.random() < 0.4:
            half_width = rng.uniform(0.04, 0.12) * self.short
            half_length = 1.2 * math.hypot(self.width, self.height)
            layer = self._textured(half_length, tile=radius, scenery=rng.random() < 0.5)
            layer.shape = render.Bar(half_width / half_length)
            layer.radius = math.hypot(half_length, half_width)
            angle = math.pi / 2 + rng.normal(0, 0.2)  # mostly upright
        else:
            layer = self._textured(radius, scenery=rng.random() < 0.5)
            angle = rng.uniform(0, 2 * math.pi)
        sigma = rng.uniform(*config.near_defocus) * self.short
        if sigma > 0.3:
            layer.texture = render.blur_texture(layer.texture, sigma)
            layer.softness = 1 + 2 * sigma
        layer.outline = 0.0
        return self._new_prop(screen_point, layer, rng.uniform(*config.near_parallax), angle)

    def _random_point(self, margin: float = 0.0) -> np.ndarray:
        return np.array(
            [
                self.rng.uniform(margin, self.width - 1 - margin),
                self.rng.uniform(margin, self.height - 1 - margin),
            ]
        )

    def _new_prop(
        self,
        screen_point: np.ndarray,
        layer: _Layer,
        plane: float = 1.0,
        angle: float | None = None,
    ) -> _Layer:
        """Fix ``layer`` to the (``plane``) background at ``screen_point`` (its local unit = a
        pixel now), turned by ``angle`` (random by default)."""
        to_world = render.invert(self.camera_map(plane))
        world = np.array(render.apply(to_world, screen_point[0], screen_point[1]))
        turn = self.rng.uniform(0, 2 * math.pi) if angle is None else angle - self.roll()
        layer.plane = plane
        layer.anchor = render.similarity(world, 1 / self.magnification(), turn)
        layer.pose = layer.previous = render.compose(self.camera_map(plane), layer.anchor)
        return layer

    def _occluder(self) -> _Layer:
        """A bar across the view or a blob, smaller than an object so occlusion is partial."""
        rng = self.rng
        object_radius = self.config.object_size[0] * self.short
        if rng.random() < 0.6:
            half_width = rng.uniform(0.15, 0.35) * object_radius
            half_length = 1.2 * math.hypot(self.width, self.height)
            layer = self._textured(half_length, tile=object_radius)
            layer.shape = render.Bar(half_width / half_length)
            layer.radius = math.hypot(half_length, half_width)
            return layer
        return self._textured(rng.uniform(0.35, 0.6) * object_radius)

    def _mover(self, centre: np.ndarray, direction: float, transit: bool, steer: bool) -> _Mover:
        rng, config = self.rng, self.config
        layer = self._textured()
        layer.salient = True
        speed = rng.uniform(*config.object_speed) * self.short
        mover = _Mover(
            layer=layer,
            centre=centre,
            velocity=speed * np.array([math.cos(direction), math.sin(direction)]),
            speed=speed,
            angle=rng.uniform(0, 2 * math.pi),
            spin=rng.uniform(-1, 1) * config.object_spin,
            pulse=rng.uniform(0, 1) * config.object_pulse,
            pulse_period=rng.uniform(20, 60),
            pulse_phase=rng.uniform(0, 2 * math.pi),
            magnification=self.magnification(),
            steer=steer,
            transit=transit,
        )
        if config.articulated_probability > 0 and rng.random() < config.articulated_probability:
            self._add_limbs(mover)
        if config.stop_probability > 0 and rng.random() < config.stop_probability:
            mover.stops = True
            mover.countdown = int(rng.integers(1, 10))
        self._place(mover)
        for part in mover.layers():
            part.previous = part.pose
        return mover

    def _add_limbs(self, mover: _Mover) -> None:
        """Two to five limbs (thin capsules) at joints inside the body, swinging as it moves."""
        rng = self.rng
        body = mover.layer
        body.shape = render.random_shape(rng)
        body.radius *= rng.uniform(0.55, 0.8)  # the limbs reach beyond the body
        for _ in range(int(rng.integers(2, 6))):
            direction = rng.uniform(0, 2 * math.pi)
            joint = 0.5 * body.radius * np.array([math.cos(direction), math.sin(direction)])
            length = rng.uniform(0.6, 1.3) * body.radius
            half_width = rng.uniform(0.06, 0.16) * body.radius
            shape = render.limb(length, half_width)
            layer = _Layer(body.texture, shape, length + half_width, rng.uniform(0, 64, 2))
            layer.salient, layer.outline = True, body.outline
            mover.limbs.append(
                _Limb(
                    layer=layer,
                    joint=joint,
                    rest=direction + rng.normal(0, 0.3),
                    swing=rng.uniform(0.25, 0.9),
                    period=rng.uniform(6, 20),
                    phase=rng.uniform(0, 2 * math.pi),
                    front=bool(rng.random() < 0.5),
                )
            )

    def _place(self, mover: _Mover) -> None:
        scale = mover.scale(self.time, self.magnification())
        mover.layer.pose = render.similarity(mover.centre, scale, mover.angle)
        for limb in mover.limbs:
            wave = math.sin(2 * math.pi * mover.clock / limb.period + limb.phase)
            joint = render.similarity(limb.joint, 1.0, limb.rest + limb.swing * wave)
            limb.layer.pose = render.compose(mover.layer.pose, joint)

    def _first_mover(self, lead: bool) -> _Mover:
        """An object at frame 0: inside the view, or entering or leaving across an edge.

        The object a tracking camera follows (``lead``) starts inside and stays there.
        """
        rng = self.rng
        radius = self.config.object_size[1] * self.short
        if (lead and self.tracking) or rng.random() >= self.config.enter_leave_probability:
            return self._mover(
                self._random_point(0.6 * radius), rng.uniform(0, 2 * math.pi), False, True
            )
        edge, point = self._edge_point(rng.uniform(-0.3, 0.3) * radius)
        inward = self._inward(edge) + rng.uniform(-0.5, 0.5)
        if rng.random() < 0.5:
            return self._mover(point, inward, transit=True, steer=True)
        inside = point - 0.8 * radius * np.array(
            [math.cos(inward + math.pi), math.sin(inward + math.pi)]
        )
        return self._mover(inside, inward + math.pi, transit=True, steer=False)

    def _entering_mover(self) -> _Mover:
        """A replacement object just outside an edge, heading in."""
        rng = self.rng
        transit = rng.random() < self.config.enter_leave_probability
        mover = self._mover(np.zeros(2), 0.0, transit, steer=True)
        layer = mover.layer
        reach = _reach(mover) * render.scale_of(layer.pose) * (1 + mover.pulse) + 2
        edge, mover.centre = self._edge_point(-reach)
        direction = self._inward(edge) + rng.uniform(-0.5, 0.5)
        mover.velocity = mover.speed * np.array([math.cos(direction), math.sin(direction)])
        self._place(mover)
        for part in mover.layers():
            part.previous = part.pose
        return mover

    def _edge_point(self, outside: float) -> tuple[int, np.ndarray]:
        """A random edge (0 left, 1 right, 2 top, 3 bottom) and a point ``outside`` px beyond it."""
        edge = int(self.rng.integers(4))
        along = self.rng.uniform(0.2, 0.8)
        if edge < 2:
            x = -outside if edge == 0 else self.width - 1 + outside
            return edge, np.array([x, along * (self.height - 1)])
        y = -outside if edge == 2 else self.height - 1 + outside
        return edge, np.array([along * (self.width - 1), y])

    @staticmethod
    def _inward(edge: int) -> float:
        return (0.0, math.pi, math.pi / 2, -math.pi / 2)[edge]

    def _occlusion_point(self) -> np.ndarray:
        """A point on the first object's way, so the occluder crosses it early in the clip."""
        mover = self.movers[0]
        return mover.centre + mover.velocity * self.rng.uniform(0, 10)

    def _ahead_point(self, reach: float) -> np.ndarray:
        """A screen point just out of view where the panning camera will find it."""
        direction = np.array([math.cos(self.heading), math.sin(self.heading)])
        start = self._random_point()
        limits = np.array([self.width - 1, self.height - 1])
        steps = [
            ((limits[k] + reach - start[k]) if direction[k] > 0 else (start[k] + reach))
            / abs(direction[k])
            for k in range(2)
            if abs(direction[k]) > 1e-6
        ]
        return start + direction * (min(steps) + 2)

    # -- one frame

    def stack(self) -> list[_Layer]:
        return [
            self.background,
            *self.distractors,
            *(layer for mover in self.movers for layer in mover.layers()),
            *self.occluders,
            *self.near,
        ]

    def render(self) -> tuple[np.ndarray, np.ndarray, list[_Layer], list[int], np.ndarray | None]:
        """The picture (HxWx3 uint8), the visible layer map (HxW int16), the stack, the
        indices of its salient layers and the lighting field (None without one)."""
        stack = self.stack()
        visible = np.zeros((self.height, self.width), np.int16)
        picture = self._draw_stack(stack, [layer.pose for layer in stack], visible)
        exposure = self.effects.exposure
        if exposure > 0 and self.time > 0:
            pictures = [picture]
            for offset in (-0.5, -0.25, 0.25, 0.5):
                poses = [
                    layer.pose + offset * exposure * (layer.pose - layer.previous)
                    for layer in stack
                ]
                pictures.append(self._draw_stack(stack, poses, None))
            picture = np.mean(pictures, axis=0, dtype=np.float32)
        salient = [index for index, layer in enumerate(stack) if layer.salient]
        image, light = self.effects.apply(picture, self.gain(), self.time)
        return image, visible, stack, salient, light

    def _draw_stack(
        self, stack: list[_Layer], poses: list[np.ndarray], visible: np.ndarray | None
    ) -> np.ndarray:
        """The stack drawn at ``poses`` (float32 HxWx3); marks ``visible`` when given."""
        picture = np.empty((self.height, self.width, 3), np.float32)
        for index, (layer, pose) in enumerate(zip(stack, poses, strict=True)):
            box = layer.box(self.width, self.height, pose)
            if box is not None:
                if visible is not None:
                    layer.seen = True
                _draw(layer, pose, index, picture[box[2] : box[3], box[0] : box[1]], visible, box)
        return picture

    def replace_departed(self) -> None:
        """Swap objects and props that have left the view for new ones coming in.

        A distractor or occluder that has left is replaced with chance
        ``occluder_probability`` (the first generator's rule, kept so that its scenes stay
        the same); near props always are.
        """
        for i, mover in enumerate(self.movers):
            if all(self._departed(layer) for layer in mover.layers()):
                self.movers[i] = self._entering_mover()
        for props, make in (
            (self.distractors, self._distractor),
            (self.occluders, self._occluder),
        ):
            for i, layer in enumerate(props):
                if self._departed(layer) and self._keep_occluding():
                    fresh = make()
                    props[i] = self._new_prop(self._ahead_point(fresh.radius + 2), fresh)
        for i, layer in enumerate(self.near):
            if self._departed(layer):
                self.near[i] = self._near_prop(np.zeros(2))
                reach = self.near[i].radius * render.scale_of(self.near[i].pose) + 2
                self.near[i] = self._move_prop(self.near[i], self._ahead_point(reach))

    def _move_prop(self, layer: _Layer, screen_point: np.ndarray) -> _Layer:
        """Re-anchor an anchored layer so that its origin is at ``screen_point`` now."""
        to_world = render.invert(self.camera_map(layer.plane))
        world = np.array(render.apply(to_world, screen_point[0], screen_point[1]))
        layer.anchor = np.concatenate([layer.anchor[:, :2], world[:, None]], 1)
        layer.pose = layer.previous = render.compose(self.camera_map(layer.plane), layer.anchor)
        return layer

    def _keep_occluding(self) -> bool:
        return self.rng.random() < self.config.occluder_probability

    def _departed(self, layer: _Layer) -> bool:
        outside = layer.box(self.width, self.height) is None
        return outside and (layer.seen or layer.age > 100)

    def advance(self) -> None:
        """Move every layer on to the next frame (``previous`` keeps the current map)."""
        rng = self.rng
        screen_before = self.camera_map()
        if self.tracking:
            lead = self.movers[0]
            own_motion = np.zeros(2) if lead.paused else lead.velocity
            if not lead.paused:
                self.heading = math.atan2(own_motion[1], own_motion[0])
            self.camera = self.camera + self._to_world(own_motion) / self.magnification()
        else:
            self.heading += rng.normal(0, 0.02)
            step = self.pan_speed / self.magnification()
            self.camera = self.camera + step * np.array(
                [math.cos(self.heading), math.sin(self.heading)]
            )
        self.time += 1
        if self.shake_size:
            self.shake = 0.5 * self.shake + rng.normal(0, self.shake_size, 2)
        camera = self.camera_map()
        background_step = render.compose(camera, render.invert(screen_before))
        for layer in self.stack():
            layer.previous = layer.pose
            layer.age += 1
            if layer.anchor is not None:
                layer.pose = render.compose(self.camera_map(layer.plane), layer.anchor)
        self.background.pose = camera
        for mover in self.movers:
            self._move(mover, background_step)

    def _to_world(self, screen_vector: np.ndarray) -> np.ndarray:
        """A screen direction turned into the world's (undoing the camera's roll)."""
        if not self.roll_period:
            return screen_vector
        cos, sin = math.cos(self.roll()), math.sin(self.roll())
        return np.array(
            [
                cos * screen_vector[0] + sin * screen_vector[1],
                -sin * screen_vector[0] + cos * screen_vector[1],
            ]
        )

    def _move(self, mover: _Mover, background_step: np.ndarray) -> None:
        """Carry the object with the background, add its own velocity, keep it in view if asked."""
        rng = self.rng
        if mover.stops:
            mover.countdown -= 1
            if mover.countdown <= 0:
                mover.paused = not mover.paused
                mover.countdown = int(rng.integers(3, 10) if mover.paused else rng.integers(3, 14))
        turn = rng.normal(0, 0.06)
        cos, sin = math.cos(turn), math.sin(turn)
        velocity = np.array(
            [
                cos * mover.velocity[0] - sin * mover.velocity[1],
                sin * mover.velocity[0] + cos * mover.velocity[1],
            ]
        )
        velocity *= 1 + 0.1 * (mover.speed / max(float(np.hypot(*velocity)), 1e-9) - 1)
        drift = (
            np.array(render.apply(background_step, mover.centre[0], mover.centre[1])) - mover.centre
        )
        margin = 0.6 * mover.layer.radius * render.scale_of(mover.layer.pose)
        limits = (self.width - 1, self.height - 1)
        inside = True
        for k in range(2):
            low, high = margin, limits[k] - margin
            inside &= low <= mover.centre[k] <= high
            if not mover.steer:
                continue
            if mover.centre[k] < low and drift[k] + velocity[k] < 0:
                velocity[k] = max(abs(velocity[k]), 0.3 * mover.speed - drift[k])
            elif mover.centre[k] > high and drift[k] + velocity[k] > 0:
                velocity[k] = min(-abs(velocity[k]), -0.3 * mover.speed - drift[k])
        if mover.transit and inside:
            mover.steer = False
        mover.velocity = velocity
        turned = math.atan2(background_step[1, 0], background_step[0, 0]) if self.roll_period else 0
        if mover.paused:
            mover.centre = mover.centre + drift
            mover.angle += turned
        else:
            mover.centre = mover.centre + drift + velocity
            mover.angle += mover.spin + turned
            mover.clock += 1
        self._place(mover)


def _reach(mover: _Mover) -> float:
    """How far the object reaches from its centre, in its body's local units."""
    reach = mover.layer.radius
    for limb in mover.limbs:
        reach = max(reach, float(np.hypot(*limb.joint)) + limb.layer.radius)
    return reach


def _draw(
    layer: _Layer,
    pose: np.ndarray,
    index: int,
    region: np.ndarray,
    visible: np.ndarray | None,
    box: tuple[int, int, int, int],
) -> None:
    """Composite ``layer`` at ``pose`` over ``region`` (the box's pixels); mark where it is
    seen in ``visible`` when given."""
    x0, x1, y0, y1 = box
    x = np.arange(x0, x1, dtype=np.float64)[None, :]
    y = np.arange(y0, y1, dtype=np.float64)[:, None]
    u, v = render.apply(render.invert(pose), x, y)
    if layer.shape is None:
        region[...] = render.sample(layer.texture, u + layer.offset[0], v + layer.offset[1])
        return
    pixels = layer.radius * render.scale_of(pose)  # screen px per shape unit
    distance = layer.shape.signed_distance(u / layer.radius, v / layer.radius) * pixels
    touched = distance < 0.5 * layer.softness  # anti-aliased coverage 0.5 - distance > 0
    u = np.broadcast_to(u, distance.shape)[touched]
    v = np.broadcast_to(v, distance.shape)[touched]
    colour = render.sample(layer.texture, u + layer.offset[0], v + layer.offset[1])
    inside = distance[touched]
    if layer.outline:
        ink = np.clip(inside + layer.outline + 0.5, 0, 1).astype(np.float32)[:, None]
        colour = colour * (1 - np.float32(0.85) * ink)
    alpha = np.minimum(0.5 - inside / layer.softness, 1).astype(np.float32)[:, None]
    below = region[touched]
    region[touched] = below + (colour - below) * alpha
    if visible is not None:
        visible[y0:y1, x0:x1][distance <= 0] = index


class _Effects:
    """What the camera and the codec do to the drawn picture: lighting, motion blur, defocus,
    style, sensor noise and JPEG; all drawn from their own random stream ``rng``."""

    def __init__(
        self, rng: np.random.Generator, config: SceneConfig, size: tuple[int, int]
    ) -> None:
        self.rng = rng
        width, height = size
        short = min(size)
        self.exposure = (
            rng.uniform(0.4, 1.2) if rng.random() < config.motion_blur_probability else 0.0
        )
        self.lighting = config.lighting_amplitude > 0
        if self.lighting:
            amplitude = config.lighting_amplitude
            x = (np.arange(width, dtype=np.float32)[None, :] - width / 2) / short
            y = (np.arange(height, dtype=np.float32)[:, None] - height / 2) / short
            self.grid = (x, y)
            self.slope = rng.uniform(0, amplitude)
            self.slope_angle, self.slope_turn = rng.uniform(0, math.tau), rng.normal(0, 0.05)
            self.spot = rng.uniform(-1.5, 1.5) * amplitude
            self.spot_size = rng.uniform(0.2, 0.7)
            self.spot_start = rng.uniform(-0.6, 0.6, 2)
            self.spot_velocity = rng.normal(0, 0.03, 2)
            switched = rng.random() < 0.3
            self.switch_time = int(rng.integers(1, 24)) if switched else -1
            self.switch_gain = rng.uniform(1 - amplitude, 1 + amplitude)
        self.focus = rng.uniform(0.4, 2.0) if rng.random() < config.defocus_probability else 0.0
        self.focus_drift = rng.uniform(0, 0.6), rng.uniform(10, 40), rng.uniform(0, math.tau)
        self.monochrome = rng.random() < config.monochrome_probability
        self.sepia = rng.uniform(0, 0.25, 3).astype(np.float32) * np.float32([1, 0.5, -0.5])
        self.levels = int(rng.integers(3, 7)) if rng.random() < config.posterize_probability else 0
        noisy = rng.random() < config.noise_probability
        self.noise = (rng.uniform(1.0, 8.0), rng.uniform(0.0, 0.8)) if noisy else (0.0, 0.0)
        self.quality = int(rng.integers(12, 61)) if rng.random() < config.jpeg_probability else 0

    def light(self, time: int) -> np.ndarray | None:
        """The lighting field at ``time`` (HxW float32), or None without lighting changes."""
        if not self.lighting:
            return None
        x, y = self.grid
        angle = self.slope_angle + self.slope_turn * time
        field = 1 + np.float32(self.slope) * (
            np.float32(math.cos(angle)) * x + np.float32(math.sin(angle)) * y
        )
        centre = self.spot_start + self.spot_velocity * time
        distance2 = (x - np.float32(centre[0])) ** 2 + (y - np.float32(centre[1])) ** 2
        field = field + np.float32(self.spot) * np.exp(
            -distance2 / np.float32(2 * self.spot_size**2)
        )
        if 0 <= self.switch_time <= time:
            field = field * np.float32(self.switch_gain)
        return np.clip(field, 0.35, 1.8).astype(np.float32)

    def apply(
        self, picture: np.ndarray, gain: float, time: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The final HxWx3 uint8 image of a drawn float32 ``picture``, and the lighting field."""
        light = self.light(time)
        plain = not (light is not None or self.focus or self.monochrome or self.levels)
        if plain and not (self.noise[0] or self.quality):
            return np.clip(np.rint(picture * gain), 0, 255).astype(np.uint8), None
        picture = picture * np.float32(gain)
        if light is not None:
            picture = picture * light[..., None]
        if self.focus:
            amount, period, phase = self.focus_drift
            sigma = self.focus * (1 + amount * math.sin(math.tau * time / period + phase))
            picture = render.gaussian_blur(picture, max(sigma, 0.3))
        if self.monochrome:
            grey = picture @ np.float32([0.299, 0.587, 0.114])
            picture = grey[..., None] * (1 + self.sepia)
        if self.levels:
            step = np.float32(255 / (self.levels - 1))
            picture = np.rint(np.clip(picture, 0, 255) / step) * step
        if self.noise[0]:
            read, shot = self.noise
            sigma = np.sqrt(np.float32(read**2) + np.float32(shot**2) * np.maximum(picture, 0))
            picture = picture + sigma * self.rng.standard_normal(picture.shape, dtype=np.float32)
        image = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
        if self.quality:
            from PIL import Image

            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=self.quality)
            with Image.open(buffer) as compressed:
                image = np.asarray(compressed.convert("RGB")).copy()
        return image, light


# ----------------------------------------------------------------------------- public API


class SyntheticVideo:
    """A deterministic synthetic video: iterate to get ``SyntheticFrame`` objects in order.

    Args:
        seed: the same seed gives byte-identical frames, masks and flow.
        size: (width, height) in pixels, each at least 32.
        frames: number of frames, or None for an endless video (objects that leave are
            replaced by new ones entering).
        config: the scene parameters.

    Each iteration starts the video again from its first frame.
    """

    def __init__(
        self,
        seed: int,
        size: tuple[int, int] = (320, 192),
        frames: int | None = None,
        config: SceneConfig = SceneConfig(),
    ) -> None:
        width, height = size
        if width < 32 or height < 32:
            raise ValueError(f"SyntheticVideo: size must be at least 32x32, got {width}x{height}")
        if seed < 0:
            raise ValueError(f"SyntheticVideo: seed must be >= 0, got {seed}")
        if frames is not None and frames < 1:
            raise ValueError(f"SyntheticVideo: frames must be at least 1, got {frames}")
        if config.uses_photos:
            photos.check_photos(config.photo_set)
        self.seed = seed
        self.size = (int(width), int(height))
        self.frames = frames
        self.config = config

    def __iter__(self) -> Iterator[SyntheticFrame]:
        scene = _Scene(self.seed, self.size, self.config)
        before: tuple[np.ndarray, list[_Layer]] | None = None
        index = 0
        while self.frames is None or index < self.frames:
            if index:
                scene.advance()
            image, visible, stack, salient, light = scene.render()
            mask = np.where(np.isin(visible, salient), 255, 0).astype(np.uint8)
            flow = motion = None
            if before is not None:
                forward = np.stack(
                    [
                        render.compose(layer.pose, render.invert(layer.previous))
                        for layer in before[1]
                    ]
                )
                flow = render.displacement(before[0], forward)
                backward = np.stack(
                    [render.compose(layer.previous, render.invert(layer.pose)) for layer in stack]
                )
                motion = -render.displacement(visible, backward)
            yield SyntheticFrame(index, image, mask, flow, motion, scene.gain(), light, visible)
            before = (visible, stack)
            scene.replace_departed()
            index += 1


def generate_clip(
    seed: int,
    size: tuple[int, int] = (320, 192),
    frames: int = 24,
    config: SceneConfig = SceneConfig(),
) -> list[SyntheticFrame]:
    """All frames of one finite synthetic video (see ``SyntheticVideo``)."""
    return list(SyntheticVideo(seed, size, frames, config))


def clip_seed(seed: int, clip: int) -> int:
    """The seed of clip number ``clip`` of a dataset generated with ``seed``."""
    return int(np.random.SeedSequence([seed, clip]).generate_state(1, np.uint64)[0])


_FLOW_BATCH = 8  # flow images coloured per call


def _write_clip(
    dataset: Path,
    clip_name: str,
    video: SyntheticVideo,
    pictures: list[np.ndarray] | None,
    progress: Callable[[], None] | None,
    estimator: FlowEstimator | None,
    flow_size: int | None,
) -> list[str]:
    """Write one clip's files under ``dataset/clip_name``; returns its list rows.

    Appends each picture to ``pictures`` when given (for the video writer). The flow images
    colour-code the exact ``motion``, or what ``estimator`` finds between the pictures at
    the working size (short side ``flow_size``), resized back to the frame's size.
    """
    import torch
    from PIL import Image

    from ianet.flow.colour import flow_to_image
    from ianet.transforms import resize_uint8, working_size

    height, width = video.size[1], video.size[0]
    working = working_size(height, width, flow_size)

    def estimate(images: list[np.ndarray]) -> torch.Tensor:
        assert estimator is not None
        return estimator(resize_uint8(torch.from_numpy(np.stack(images)), working)).flow

    folders = {
        kind: dataset / clip_name / kind for kind in ("Imgs", "ground-truth", "flow", "flow-exact")
    }
    for folder in folders.values():
        folder.mkdir(parents=True)
    rows, pending = [], []

    def colour_pending() -> None:
        if estimator is None:
            motions = torch.from_numpy(np.stack([frame.motion for frame in pending]))
        else:
            motions = estimate([frame.image for frame in pending])
        colours = resize_uint8(flow_to_image(motions), (height, width))
        for frame, colour in zip(pending, colours.numpy(), strict=True):
            Image.fromarray(colour).save(folders["flow"] / f"{frame.index:05d}.png")
        pending.clear()

    for frame in video:
        stem = f"{frame.index:05d}"
        Image.fromarray(frame.image).save(folders["Imgs"] / f"{stem}.jpg", quality=95)
        Image.fromarray(frame.mask).save(folders["ground-truth"] / f"{stem}.png")
        row = [f"{clip_name}/Imgs/{stem}.jpg", f"{clip_name}/ground-truth/{stem}.png"]
        if frame.flow is not None:
            np.save(folders["flow-exact"] / f"{stem}.npy", frame.flow)
            row.append(f"{clip_name}/flow/{stem}.png")
            pending.append(frame)
            if len(pending) == _FLOW_BATCH:
                colour_pending()
        elif estimator is not None:
            estimator.reset()
            estimate([frame.image])
        rows.append(" ".join(row))
        if pictures is not None:
            pictures.append(frame.image)
        if progress is not None:
            progress()
    if pending:
        colour_pending()
    return rows


def write_dataset(
    out: Path,
    name: str = "SYNTH",
    *,
    clips: int = 4,
    frames: int = 24,
    size: tuple[int, int] = (320, 192),
    seed: int = 0,
    config: SceneConfig = SceneConfig(),
    test_clips: int | None = None,
    video_writer: VideoWriter | None = None,
    fps: float = 25.0,
    overwrite: bool = False,
    progress: Callable[[], None] | None = None,
    flow_method: str = "exact",
    flow_options: dict[str, object] | None = None,
    flow_size: int | None = 256,
) -> Path:
    """Write a synthetic dataset in the DAVIS-like layout with triplet lists; returns its folder.

    Layout under ``out/name`` (``NNNNN`` = frame index, from 00000)::

        clipCCC/Imgs/NNNNN.jpg           picture, JPEG quality 95
        clipCCC/ground-truth/NNNNN.png   mask, 0/255
        clipCCC/flow/NNNNN.png           colour-coded ``motion`` (frames >= 1)
        clipCCC/flow-exact/NNNNN.npy     float32 2xHxW exact ``flow`` (frames >= 1)
        videos/clipCCC.mp4               written by ``video_writer`` when given
        train.txt, test.txt              ``img gt flow`` rows relative to ``out/name``;
                                         frame 0 rows have no flow column

    The last ``test_clips`` clips (default: a fifth, at least one when there are two or
    more) go to test.txt. Clip ``c`` uses ``clip_seed(seed, c)``. The folder is written under
    a temporary name and renamed when complete; ``overwrite`` replaces only a dataset this
    function wrote. ``progress`` is called once per frame.

    ``flow_method`` ``exact`` colour-codes the generator's exact motion; an estimator's name
    (``tvl1``, ``raft_small``, ...) colour-codes what ``ianet.flow.FlowEstimator`` finds with
    ``flow_options``, frame after frame as the streaming flow stage does, so that a model
    trained on the dataset sees the flow it will see in a pipeline: at the working size
    ``flow_size`` (the short side scaled down to it when larger, None: the frame's size, as
    the flow stage's ``size`` option), colour-coded there and resized to the frame's size.
    Scenes that use photographs raise ``photos.MissingPhotosError`` (one line naming what
    to install) before anything is written when they are missing.
    """
    if clips < 1 or frames < 1:
        raise InputError(
            f"write_dataset: clips and frames must be at least 1, got {clips}, {frames}"
        )
    if test_clips is None:
        test_clips = max(1, round(0.2 * clips)) if clips >= 2 else 0
    if not 0 <= test_clips <= clips:
        raise InputError(f"write_dataset: test_clips must be within [0, {clips}], got {test_clips}")
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"{name!r}: not a usable dataset name")
    out = Path(out)
    final = out / name
    if final.exists() and not overwrite:
        raise InputError(f"{final}: already exists (choose another name, or overwrite it)")
    try:
        check_replaceable(final, WRITER)
    except FileExistsError as error:
        raise InputError(str(error)) from None
    if config.uses_photos:
        photos.check_photos(config.photo_set)
    if flow_size is not None and flow_size < 16:
        raise InputError(f"write_dataset: flow_size must be at least 16, got {flow_size}")
    estimator = None
    if flow_method != "exact":
        from ianet.flow import FlowEstimator

        estimator = FlowEstimator(flow_method, **(flow_options or {}))
    with atomic_output(final, writer=WRITER, durable=False) as partial:
        partial.mkdir()
        rows: list[list[str]] = []
        for clip in range(clips):
            video = SyntheticVideo(clip_seed(seed, clip), size, frames, config)
            pictures = [] if video_writer is not None else None
            clip_name = f"clip{clip:03d}"
            rows.append(
                _write_clip(partial, clip_name, video, pictures, progress, estimator, flow_size)
            )
            if video_writer is not None:
                (partial / "videos").mkdir(exist_ok=True)
                video_writer(partial / "videos" / f"clip{clip:03d}.mp4", pictures, fps)
        split = clips - test_clips
        for list_name, chosen in (("train.txt", rows[:split]), ("test.txt", rows[split:])):
            lines = [line for clip_rows in chosen for line in clip_rows]
            (partial / list_name).write_text("".join(f"{line}\n" for line in lines))
    return final
