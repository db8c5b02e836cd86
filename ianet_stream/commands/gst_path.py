"""``ianet-stream gst-path``: the environment the system's GStreamer needs to run the
``ianetsaliency`` element with this environment's packages.

GStreamer's Python plugin loader (``libgstpython.so``, from gst-python) embeds the system's
libpython and imports the Python elements it finds under ``$GST_PLUGIN_PATH/python``. The
element needs torch and this project, which live in this environment (a venv): the loader
finds them through ``PYTHONPATH``, while ``gi`` comes from the system's own packages. So:

- ``GST_PLUGIN_PATH``: the folder whose ``python/`` subfolder holds ``ianetsaliency.py``;
- ``PYTHONPATH``: this interpreter's package folders (site-packages and the folders their
  ``.pth`` files add), not its standard library (the system's Python brings its own); the
  element also runs the ``.pth`` files of these folders (editable installs use them);
- ``GST_REGISTRY``: a registry cache of this environment's own. GStreamer caches the result
  of scanning a plugin; a scan that crashed blacklists the Python loader in that cache until
  the file is deleted, so a cache per environment keeps such a failure (and the rescans that
  switching environments causes) away from the user's other GStreamer programs. A scan that
  failed to import (``PYTHONPATH`` unset) is not sticky: the element tells GStreamer to scan
  again when ``PYTHONPATH`` or the folders it names change.

The loader's Python must be this interpreter's version (compiled packages such as torch
are built for one), which is checked.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import platform
import re
import shlex
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ianet_stream.errors import InputError

PLUGINS_PACKAGE = "ianet_stream_plugins"  # where the element ships, as package data

DEBIAN_PACKAGES = "python3-gst-1.0 gstreamer1.0-python3-plugin-loader gstreamer1.0-tools"
LOADER = "libgstpython.so"
_LOADER_FOLDERS = (
    "/usr/lib/*/gstreamer-1.0",
    "/usr/lib/gstreamer-1.0",
    "/usr/lib64/gstreamer-1.0",
    "/usr/local/lib/*/gstreamer-1.0",
    "/usr/local/lib/gstreamer-1.0",
)
_GI_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstBase', '1.0'); "
    "gi.require_version('GstVideo', '1.0'); from gi.repository import Gst, GstBase, GstVideo; "
    "import gi.overrides.Gst"
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "gst-path",
        help="print the exports that let GStreamer find the ianetsaliency element",
        description="Print the shell exports (GST_PLUGIN_PATH, PYTHONPATH, GST_REGISTRY) "
        "with which the system's GStreamer finds the ianetsaliency element and this "
        'environment\'s packages: eval "$(ianet-stream gst-path)", then '
        "gst-inspect-1.0 ianetsaliency. Fails with the Debian packages to install when "
        "GStreamer's Python support (gst-python) is missing.",
    )
    parser.set_defaults(run=run)
    return parser


def element_folder() -> Path:
    """The folder for ``GST_PLUGIN_PATH``: its ``python/`` subfolder holds the element, data
    shipped in the stages' package (found without importing it)."""
    spec = importlib.util.find_spec(PLUGINS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{PLUGINS_PACKAGE}: not installed (pip install ianet-stream)")
    return Path(next(iter(spec.submodule_search_locations))) / "gstreamer"


def find_loader() -> Path | None:
    """GStreamer's Python plugin loader, ``libgstpython.so``, or None."""
    system_path = os.environ.get("GST_PLUGIN_SYSTEM_PATH_1_0") or os.environ.get(
        "GST_PLUGIN_SYSTEM_PATH"
    )
    patterns = system_path.split(os.pathsep) if system_path else _LOADER_FOLDERS
    for pattern in patterns:
        for folder in sorted(glob.glob(pattern)):
            candidate = Path(folder) / LOADER
            if candidate.is_file():
                return candidate
    return None


def loader_python(loader: Path) -> tuple[int, int] | None:
    """The Python version the loader embeds (the libpython it links), or None."""
    found = re.search(rb"libpython(\d+)\.(\d+)", loader.read_bytes())
    return (int(found[1]), int(found[2])) if found else None


def system_python(version: tuple[int, int]) -> Path | None:
    """The system's interpreter of ``version``, the one whose packages (``gi``) the loader's
    embedded Python sees; Python applications that use the element run it."""
    name = f"python{version[0]}.{version[1]}"
    for folder in ("/usr/bin", "/usr/local/bin", "/bin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def has_gi(python: Path) -> bool:
    """Whether ``python``, isolated from ``PYTHONPATH``, imports GStreamer's bindings."""
    return subprocess.run([python, "-I", "-c", _GI_PROBE], capture_output=True).returncode == 0


def package_folders() -> list[str]:
    """This interpreter's package folders, in its search order: ``sys.path`` without the
    script's folder and the standard library."""
    stdlib = {sysconfig.get_path(key) for key in ("stdlib", "platstdlib")}
    skipped = stdlib | {os.path.join(folder, "lib-dynload") for folder in stdlib}
    entries = sys.path if sys.flags.safe_path else sys.path[1:]
    folders: list[str] = []
    for entry in entries:
        folder = os.path.abspath(entry) if entry else ""
        if folder and folder not in skipped and os.path.isdir(folder) and folder not in folders:
            folders.append(folder)
    return folders


def registry_file() -> Path:
    """A GStreamer registry cache for this environment (under the user's cache folder)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(sys.prefix.encode()).hexdigest()[:10]
    return cache / "gstreamer-1.0" / f"registry-ianet-stream-{digest}.{platform.machine()}.bin"


def _joined(first: list[str], variable: str) -> str:
    """``first`` then the entries already in ``variable``, without repeats."""
    entries = list(first)
    for entry in os.environ.get(variable, "").split(os.pathsep):
        if entry and entry not in entries:
            entries.append(entry)
    return os.pathsep.join(entries)


@dataclass(frozen=True)
class GstEnvironment:
    """What ``gst-path`` prints: the variables to export, and the system's interpreter that
    Python programs using the element run (the one with ``gi``)."""

    variables: dict[str, str]
    python: Path


def gst_environment() -> GstEnvironment:
    """The environment for GStreamer; an InputError (one line, naming the Debian packages)
    when GStreamer's Python support is missing or embeds another Python than this one."""
    from ianet_stream.errors import InputError

    loader = find_loader()
    if loader is None:
        raise InputError(
            f"GStreamer's Python plugin loader ({LOADER}) is not installed: "
            f"apt install {DEBIAN_PACKAGES}"
        )
    ours = sys.version_info[:2]
    version = loader_python(loader) or ours
    if version != ours:
        raise InputError(
            f"{loader} embeds Python {version[0]}.{version[1]} but this environment runs "
            f"Python {ours[0]}.{ours[1]}: its packages cannot load there; make the "
            f"environment with python{version[0]}.{version[1]}"
        )
    python = system_python(version)
    if python is None or not has_gi(python):
        name = python or f"python{version[0]}.{version[1]}"
        raise InputError(
            f"GStreamer's Python bindings (gi with Gst, GstBase and GstVideo) are missing for "
            f"{name}: apt install {DEBIAN_PACKAGES}"
        )
    variables = {
        "GST_PLUGIN_PATH": _joined([str(element_folder())], "GST_PLUGIN_PATH"),
        "PYTHONPATH": os.pathsep.join(package_folders()),
    }
    chosen = os.environ.get("GST_REGISTRY")
    if chosen is None or "ianet-stream" in chosen:  # a registry the user chose stays
        variables["GST_REGISTRY"] = str(registry_file())
    return GstEnvironment(variables, python)


def run(args: argparse.Namespace) -> int:
    environment = gst_environment()
    for name, value in environment.variables.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"# Python programs that use the element: {environment.python} (it has gi)")
    return 0
