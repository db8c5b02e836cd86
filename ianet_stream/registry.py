"""The stage registry: stages are found through the ``ianet_stream.stages`` entry points.

Built-in stages are registered there by this package's own metadata, exactly as a
third-party package registers one. Finding a stage reads metadata only; loading it imports
its module and nothing else, so a pipeline without model stages never imports torch.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import EntryPoint, entry_points

from ianet_stream.stage import Stage

GROUP = "ianet_stream.stages"


class StageLoadError(Exception):
    """A registered stage that cannot be imported or is not a stage class."""


def _entry_points() -> list[EntryPoint]:
    """Every entry point of the group, in ``sys.path`` order."""
    return list(entry_points(group=GROUP))


def registered() -> dict[str, EntryPoint]:
    """Stage name -> entry point; the first registration of a name wins."""
    found: dict[str, EntryPoint] = {}
    for entry_point in _entry_points():
        found.setdefault(entry_point.name, entry_point)
    return dict(sorted(found.items()))


def load(entry_point: EntryPoint) -> type[Stage]:
    """Import a registered stage's class and check that it is one."""
    try:
        cls = entry_point.load()
    except Exception as error:
        raise StageLoadError(
            f"cannot load {entry_point.value}: {type(error).__name__}: {error}"
        ) from error
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise StageLoadError(f"{entry_point.value} is not a subclass of ianet_stream.stage.Stage")
    if not dataclasses.is_dataclass(cls.Options):
        raise StageLoadError(f"{entry_point.value}: Options must be a dataclass")
    return cls
