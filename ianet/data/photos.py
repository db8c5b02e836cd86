"""Real photographs for the synthetic generator, read from files inside installed wheels.

scikit-image and scikit-learn ship a few sample photographs *inside their wheels*
(``skimage/data/*.png``, ``sklearn/datasets/images/*.jpg``). The generator uses them as
backgrounds and as textures of objects and distractors. They are read with PIL from the
installed distribution's files, located through ``importlib.metadata`` without importing
either package: nothing is fetched, and ``ianet`` does not depend on them (they come with the
``photos`` extra). Only files listed in the wheels' RECORD are named here; scikit-image's
other ``skimage.data`` images are downloaded by pooch on demand and are never used.

``TRAINING`` photographs may appear in training data; ``HELDOUT`` ones are kept for
evaluation only (the stereo twin of a held-out photograph, ``motorcycle_right.png``, is in
neither list).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ianet.errors import InputError
from ianet.wheels import wheel_file

# name -> (distribution, path inside it)
_FILES = {
    "astronaut": ("scikit-image", "skimage/data/astronaut.png"),
    "brick": ("scikit-image", "skimage/data/brick.png"),
    "camera": ("scikit-image", "skimage/data/camera.png"),
    "cell": ("scikit-image", "skimage/data/cell.png"),
    "chelsea": ("scikit-image", "skimage/data/chelsea.png"),
    "clock_motion": ("scikit-image", "skimage/data/clock_motion.png"),
    "coffee": ("scikit-image", "skimage/data/coffee.png"),
    "coins": ("scikit-image", "skimage/data/coins.png"),
    "grass": ("scikit-image", "skimage/data/grass.png"),
    "gravel": ("scikit-image", "skimage/data/gravel.png"),
    "hubble_deep_field": ("scikit-image", "skimage/data/hubble_deep_field.jpg"),
    "ihc": ("scikit-image", "skimage/data/ihc.png"),
    "moon": ("scikit-image", "skimage/data/moon.png"),
    "page": ("scikit-image", "skimage/data/page.png"),
    "retina": ("scikit-image", "skimage/data/retina.jpg"),
    "text": ("scikit-image", "skimage/data/text.png"),
    "rocket": ("scikit-image", "skimage/data/rocket.jpg"),
    "motorcycle_left": ("scikit-image", "skimage/data/motorcycle_left.png"),
    "china": ("scikit-learn", "sklearn/datasets/images/china.jpg"),
    "flower": ("scikit-learn", "sklearn/datasets/images/flower.jpg"),
}
HELDOUT = ("rocket", "motorcycle_left", "china", "flower")
TRAINING = tuple(name for name in _FILES if name not in HELDOUT)
SETS = {"train": TRAINING, "heldout": HELDOUT}
INSTALL_HINT = "pip install 'ianet-stream[photos]' (scikit-image and scikit-learn)"
_LONG_SIDE = 640  # photographs are shrunk to this long side when read


class MissingPhotosError(InputError):
    """A scene asks for photographs whose package is not installed."""


def photo_path(name: str) -> Path:
    """The file of photograph ``name`` in its installed wheel.

    Raises:
        MissingPhotosError: its package is not installed (one line with what to install).
        KeyError: ``name`` is not a known photograph.
    """
    distribution, relative = _FILES[name]
    path = wheel_file(distribution, relative)
    if path is None:
        raise MissingPhotosError(
            f"photo textures need the photographs bundled in the {distribution} wheel "
            f"({relative} not found): {INSTALL_HINT}"
        )
    return path


def check_photos(photo_set: str) -> tuple[str, ...]:
    """The names of ``photo_set`` (``train`` or ``heldout``), each checked to be installed."""
    if photo_set not in SETS:
        raise ValueError(f"photo_set: expected one of {', '.join(SETS)}, got {photo_set!r}")
    for name in SETS[photo_set]:
        photo_path(name)
    return SETS[photo_set]


@functools.lru_cache(maxsize=len(_FILES))
def load_photo(name: str) -> np.ndarray:
    """Photograph ``name`` as HxWx3 uint8 RGB, its long side at most 640 (read-only array).

    Grey photographs become three equal channels; transparency is dropped.
    """
    from PIL import Image

    with Image.open(photo_path(name)) as image:
        picture = image.convert("RGB")
    scale = _LONG_SIDE / max(picture.size)
    if scale < 1:
        size = (round(picture.width * scale), round(picture.height * scale))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    array = np.asarray(picture).copy()
    array.flags.writeable = False
    return array
