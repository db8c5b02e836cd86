"""Synthetic video salient-object data with exact masks and exact optical flow.

A scene is a stack of textured layers, each drawn through a known similarity map (local
coordinates -> screen), back to front:

1. the background, a periodic multi-scale texture several times larger than the frame,
   seen through a camera that pans and zooms, or follows the first object (a tracking
   shot: the object stays in place on screen while the background slides under it);
2. distractors: objects of the same kinds of shape and texture as the salient ones, fixed
   to the background (they move exactly as it does, so only motion tells them apart);
3. the salient objects, which move on their own relative to the background (translation,
   slight rotation and scale), bounce inside the view or enter and leave it;
4. at most one occluder (a bar or a blob) fixed to the background, in front of everything.

Because every layer's map is known at every frame, the mask (the salient objects' visible
pixels) and the flow (the map of whichever layer is visible at a pixel) are exact. A global
brightness gain varies over time; it changes the picture, not the mask or the flow.

Numpy only (no torch) except ``write_dataset``, which colour-codes the flow with
``ianet.flow.flow_to_image``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ianet.data import _render as render
from ianet.errors import InputError

if TYPE_CHECKING:
    from ianet.flow import FlowEstimator

VideoWriter = Callable[[Path, Sequence[np.ndarray], float], None]


@dataclass(frozen=True)
class SceneConfig:
    """Scene parameters. Lengths and speeds are fractions of the frame's shorter side.

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
    """

    objects: int = 1
    distractors: int = 3
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

    def __post_init__(self) -> None:
        if not 1 <= self.objects <= 3:
            raise ValueError(f"SceneConfig.objects: expected 1 to 3, got {self.objects}")
        if not 0 <= self.distractors <= 64:
            raise ValueError(f"SceneConfig.distractors: expected 0 to 64, got {self.distractors}")
        for name in _RANGES:
            value = tuple(float(bound) for bound in getattr(self, name))
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ValueError(f"SceneConfig.{name}: expected [low, high], 0 <= low <= high")
            object.__setattr__(self, name, value)  # lists (from YAML) become tuples
        if not (self.object_size[0] > 0 and self.object_size[1] <= 0.4):
            raise ValueError(
                f"SceneConfig.object_size: expected within (0, 0.4], got {self.object_size}"
            )
        if not self.zoom_range[0] > 0:
            raise ValueError(f"SceneConfig.zoom_range: expected > 0, got {self.zoom_range}")
        if not 0 <= self.brightness_amplitude < 0.5:
            raise ValueError("SceneConfig.brightness_amplitude: expected within [0, 0.5)")
        for name in (
            "occluder_probability",
            "enter_leave_probability",
            "camouflage_probability",
            "tracking_probability",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SceneConfig.{name}: expected a probability in [0, 1]")


_RANGES = ("object_size", "object_speed", "camera_speed", "zoom_range")


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
}


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
    """

    index: int
    image: np.ndarray
    mask: np.ndarray
    flow: np.ndarray | None
    motion: np.ndarray | None
    gain: float


# ----------------------------------------------------------------------------- scene state


@dataclass(eq=False)
class _Layer:
    """A textured region with its local -> screen map now (``pose``) and one frame ago."""

    texture: np.ndarray
    shape: render.Shape | render.Bar | None  # None: the whole plane (the background)
    radius: float  # local units of the shape's largest radius
    offset: np.ndarray  # texture coordinates of the local origin
    pose: np.ndarray = field(default_factory=lambda: np.eye(2, 3))
    previous: np.ndarray = field(default_factory=lambda: np.eye(2, 3))
    anchor: np.ndarray | None = None  # local -> world map of a background-attached layer
    seen: bool = False
    age: int = 0

    def box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """The pixels (x0, x1, y0, y1) this layer may touch, or None when out of view."""
        if self.shape is None:
            return 0, width, 0, height
        reach = self.radius * render.scale_of(self.pose) + 1.5
        cx, cy = self.pose[:, 2]
        x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach) + 1)
        y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach) + 1)
        return (x0, x1, y0, y1) if x0 < x1 and y0 < y1 else None


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

    def scale(self, time: int, magnification: float) -> float:
        wave = math.sin(2 * math.pi * time / self.pulse_period + self.pulse_phase)
        return magnification / self.magnification * (1 + self.pulse * wave)


class _Scene:
    """The mutable state of one synthetic video; ``advance`` moves it on by one frame."""

    def __init__(self, seed: int, size: tuple[int, int], config: SceneConfig) -> None:
        self.rng = np.random.default_rng(seed)
        self.config = config
        self.width, self.height = size
        self.short = min(size)
        self.screen_centre = np.array([(self.width - 1) / 2, (self.height - 1) / 2])
        self.time = 0
        rng = self.rng
        low, high = np.log(config.zoom_range)
        self.zoom_half = rng.uniform(0.3, 1.0) * (high - low) / 2
        self.zoom_mid = rng.uniform(low + self.zoom_half, high - self.zoom_half)
        self.zoom_period = rng.uniform(60, 200)
        self.zoom_phase = rng.uniform(0, 2 * math.pi)
        self.gain_amplitude = rng.uniform(0.3, 1.0) * config.brightness_amplitude
        self.gain_period = rng.uniform(20, 80)
        self.gain_phase = rng.uniform(0, 2 * math.pi)
        self.pan_speed = rng.uniform(*config.camera_speed) * self.short
        self.heading = rng.uniform(0, 2 * math.pi)
        tile = 64 * math.ceil(2.5 * max(size) / 64)
        self.camera = rng.uniform(0, tile, 2)  # world point at the screen centre
        self.hue = rng.uniform()
        self.background = _Layer(
            render.texture(rng, tile, tile, render.palette(rng, self.hue)),
            None,
            1.0,
            np.zeros(2),
        )
        self.background.pose = self.background.previous = self.camera_map()
        self.distractors = [
            self._new_prop(self._random_point(), self._textured())
            for _ in range(config.distractors)
        ]
        # Drawn only when tracking is possible, so other scenes keep their random streams.
        self.tracking = config.tracking_probability > 0 and (
            rng.random() < config.tracking_probability
        )
        self.movers = [self._first_mover(lead=i == 0) for i in range(config.objects)]
        self.occluders: list[_Layer] = []
        if rng.random() < config.occluder_probability:
            self.occluders.append(self._new_prop(self._occlusion_point(), self._occluder()))

    # -- camera and brightness

    def magnification(self, time: int | None = None) -> float:
        time = self.time if time is None else time
        wave = math.sin(2 * math.pi * time / self.zoom_period + self.zoom_phase)
        return math.exp(self.zoom_mid + self.zoom_half * wave)

    def camera_map(self) -> np.ndarray:
        """World -> screen now."""
        zoom = self.magnification()
        return np.array(
            [
                [zoom, 0.0, self.screen_centre[0] - zoom * self.camera[0]],
                [0.0, zoom, self.screen_centre[1] - zoom * self.camera[1]],
            ]
        )

    def gain(self) -> float:
        wave = math.sin(2 * math.pi * self.time / self.gain_period + self.gain_phase)
        return 1 + self.gain_amplitude * wave

    # -- creating layers

    def _textured(self, radius: float | None = None, tile: float | None = None) -> _Layer:
        """A layer with an object-like shape and texture; ``radius`` in screen pixels.

        The texture repeats every ``tile`` pixels (default: a little more than the shape).
        """
        rng = self.rng
        if radius is None:
            radius = rng.uniform(*self.config.object_size) * self.short
        if rng.random() < self.config.camouflage_probability:
            hue = self.hue + rng.normal(0, 0.03)
        else:
            hue = self.hue + rng.choice((-1, 1)) * rng.uniform(0.1, 0.5)
        side = 16 * math.ceil(max(64.0, 2.4 * (tile or radius)) / 16)
        tex = render.texture(rng, side, side, render.palette(rng, hue))
        return _Layer(tex, render.random_shape(rng), radius, rng.uniform(0, side, 2))

    def _random_point(self, margin: float = 0.0) -> np.ndarray:
        return np.array(
            [
                self.rng.uniform(margin, self.width - 1 - margin),
                self.rng.uniform(margin, self.height - 1 - margin),
            ]
        )

    def _new_prop(self, screen_point: np.ndarray, layer: _Layer) -> _Layer:
        """Fix ``layer`` to the background at ``screen_point`` (its local unit = a pixel now)."""
        to_world = render.invert(self.camera_map())
        world = np.array(render.apply(to_world, screen_point[0], screen_point[1]))
        layer.anchor = render.similarity(
            world, 1 / self.magnification(), self.rng.uniform(0, 2 * math.pi)
        )
        layer.pose = layer.previous = render.compose(self.camera_map(), layer.anchor)
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
        self._place(mover)
        layer.previous = layer.pose
        return mover

    def _place(self, mover: _Mover) -> None:
        scale = mover.scale(self.time, self.magnification())
        mover.layer.pose = render.similarity(mover.centre, scale, mover.angle)

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
        reach = layer.radius * render.scale_of(layer.pose) * (1 + mover.pulse) + 2
        edge, mover.centre = self._edge_point(-reach)
        direction = self._inward(edge) + rng.uniform(-0.5, 0.5)
        mover.velocity = mover.speed * np.array([math.cos(direction), math.sin(direction)])
        self._place(mover)
        layer.previous = layer.pose
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
            *(mover.layer for mover in self.movers),
            *self.occluders,
        ]

    def salient(self) -> range:
        first = 1 + len(self.distractors)
        return range(first, first + len(self.movers))

    def render(self) -> tuple[np.ndarray, np.ndarray, list[_Layer], range]:
        """The picture (HxWx3 uint8), the visible layer map (HxW int16), the stack, the salient."""
        stack = self.stack()
        picture = np.empty((self.height, self.width, 3), np.float32)
        visible = np.zeros((self.height, self.width), np.int16)
        for index, layer in enumerate(stack):
            box = layer.box(self.width, self.height)
            if box is not None:
                layer.seen = True
                _draw(layer, index, picture[box[2] : box[3], box[0] : box[1]], visible, box)
        image = np.clip(np.rint(picture * self.gain()), 0, 255).astype(np.uint8)
        return image, visible, stack, self.salient()

    def replace_departed(self) -> None:
        """Swap objects and props that have left the view for new ones coming in."""
        for i, mover in enumerate(self.movers):
            if self._departed(mover.layer):
                self.movers[i] = self._entering_mover()
        for props, make in ((self.distractors, self._textured), (self.occluders, self._occluder)):
            for i, layer in enumerate(props):
                if self._departed(layer) and (make is self._textured or self._keep_occluding()):
                    fresh = make()
                    props[i] = self._new_prop(self._ahead_point(fresh.radius + 2), fresh)

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
            own_motion = self.movers[0].velocity
            self.heading = math.atan2(own_motion[1], own_motion[0])
            self.camera = self.camera + own_motion / self.magnification()
        else:
            self.heading += rng.normal(0, 0.02)
            step = self.pan_speed / self.magnification()
            self.camera = self.camera + step * np.array(
                [math.cos(self.heading), math.sin(self.heading)]
            )
        self.time += 1
        camera = self.camera_map()
        background_step = render.compose(camera, render.invert(screen_before))
        for layer in self.stack():
            layer.previous = layer.pose
            layer.age += 1
            if layer.anchor is not None:
                layer.pose = render.compose(camera, layer.anchor)
        self.background.pose = camera
        for mover in self.movers:
            self._move(mover, background_step)

    def _move(self, mover: _Mover, background_step: np.ndarray) -> None:
        """Carry the object with the background, add its own velocity, keep it in view if asked."""
        rng = self.rng
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
        mover.centre = mover.centre + drift + velocity
        mover.angle += mover.spin
        self._place(mover)


def _draw(
    layer: _Layer,
    index: int,
    region: np.ndarray,
    visible: np.ndarray,
    box: tuple[int, int, int, int],
) -> None:
    """Composite ``layer`` over ``region`` (the box's pixels) and mark where it is seen."""
    x0, x1, y0, y1 = box
    x = np.arange(x0, x1, dtype=np.float64)[None, :]
    y = np.arange(y0, y1, dtype=np.float64)[:, None]
    u, v = render.apply(render.invert(layer.pose), x, y)
    if layer.shape is None:
        region[...] = render.sample(layer.texture, u + layer.offset[0], v + layer.offset[1])
        return
    pixels = layer.radius * render.scale_of(layer.pose)  # screen px per shape unit
    distance = layer.shape.signed_distance(u / layer.radius, v / layer.radius) * pixels
    touched = distance < 0.5  # anti-aliased coverage 0.5 - distance > 0
    u = np.broadcast_to(u, distance.shape)[touched]
    v = np.broadcast_to(v, distance.shape)[touched]
    colour = render.sample(layer.texture, u + layer.offset[0], v + layer.offset[1])
    alpha = np.minimum(0.5 - distance[touched], 1).astype(np.float32)[:, None]
    below = region[touched]
    region[touched] = below + (colour - below) * alpha
    visible[y0:y1, x0:x1][distance <= 0] = index


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
            image, visible, stack, salient = scene.render()
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
            yield SyntheticFrame(index, image, mask, flow, motion, scene.gain())
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
) -> list[str]:
    """Write one clip's files under ``dataset/clip_name``; returns its list rows.

    Appends each picture to ``pictures`` when given (for the video writer). The flow images
    colour-code the exact ``motion``, or what ``estimator`` finds between the pictures.
    """
    import torch
    from PIL import Image

    from ianet.flow.colour import flow_to_image

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
            motions = estimator(torch.from_numpy(np.stack([f.image for f in pending]))).flow
        for frame, colour in zip(pending, flow_to_image(motions).numpy(), strict=True):
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
            estimator(torch.from_numpy(frame.image[None]))
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
    a temporary name and renamed when complete. ``progress`` is called once per frame.

    ``flow_method`` ``exact`` colour-codes the generator's exact motion; an estimator's name
    (``tvl1``, ``raft_small``, ...) colour-codes what ``ianet.flow.FlowEstimator`` finds with
    ``flow_options``, frame after frame as the streaming flow stage does, so that a model
    trained on the dataset sees the flow it will see in a pipeline.
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
    estimator = None
    if flow_method != "exact":
        from ianet.flow import FlowEstimator

        estimator = FlowEstimator(flow_method, **(flow_options or {}))
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        rows: list[list[str]] = []
        for clip in range(clips):
            video = SyntheticVideo(clip_seed(seed, clip), size, frames, config)
            pictures = [] if video_writer is not None else None
            clip_name = f"clip{clip:03d}"
            rows.append(_write_clip(partial, clip_name, video, pictures, progress, estimator))
            if video_writer is not None:
                (partial / "videos").mkdir(exist_ok=True)
                video_writer(partial / "videos" / f"clip{clip:03d}.mp4", pictures, fps)
        split = clips - test_clips
        for list_name, chosen in (("train.txt", rows[:split]), ("test.txt", rows[split:])):
            lines = [line for clip_rows in chosen for line in clip_rows]
            (partial / list_name).write_text("".join(f"{line}\n" for line in lines))
        if final.exists():
            replaced = out / f".{name}.replaced-{os.getpid()}"
            final.rename(replaced)
            partial.rename(final)
            shutil.rmtree(replaced)
        else:
            partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final
