"""Input URIs: what kind of input a string names, a stream name for it, and redaction.

Kinds: ``-`` (stdin/stdout), ``lavfi:GRAPH`` (an FFmpeg filter graph, e.g. ``testsrc2``),
``synthetic:`` (the built-in generator), ``webcam:N`` (or a camera device, ``/dev/video0``),
network URLs (``rtsp://``, ``http://``, ...), a folder, or a file.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

VIDEO_EXTENSIONS = frozenset(
    {"mp4", "mkv", "webm", "mov", "avi", "m4v", "ts", "mts", "m2ts", "mpg", "mpeg", "flv", "wmv"}
    | {"gif", "3gp", "ogv", "y4m"}
)
NETWORK_SCHEMES = frozenset(
    {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp"}
    | {"ftp", "ftps", "sftp", "mms", "mmsh", "rtmpt", "rtmpte", "rtmpe", "rtmpts"}
)
_SECRET_QUERY_KEYS = re.compile(r"pass|pwd|token|key|secret|auth|sig|cred", re.IGNORECASE)

Kind = Literal["stdio", "lavfi", "synthetic", "webcam", "network", "folder", "file"]


@dataclass(frozen=True)
class Uri:
    """A parsed input: its ``kind`` and ``target`` (path, graph, generator options, camera
    index or URL, after the ``scheme:`` prefix where there is one)."""

    raw: str
    kind: Kind
    target: str

    @property
    def name(self) -> str:
        """A short name for outputs and messages: a file's stem, ``webcam0``, a host name."""
        if self.kind in ("file", "folder"):
            return Path(self.target).stem or Path(self.target).resolve().name
        if self.kind == "stdio":
            return "stdin"
        if self.kind == "webcam":
            if self.target.isdigit():
                return f"webcam{self.target}"
            return re.sub(r"[^\w.-]+", "-", Path(self.target.removeprefix("video=")).name)
        if self.kind == "network":
            return urlsplit(self.target).hostname or "stream"
        return self.kind


def parse_uri(raw: str) -> Uri:
    """Classify an input string (folders and files by what is on disk)."""
    if raw == "-":
        return Uri(raw, "stdio", "-")
    prefix, colon, rest = raw.partition(":")
    if colon and prefix in ("lavfi", "synthetic", "webcam"):
        return Uri(raw, prefix, rest)
    if raw.startswith("/dev/video"):
        return Uri(raw, "webcam", raw)
    if colon and prefix.lower() in NETWORK_SCHEMES and rest.startswith("//"):
        return Uri(raw, "network", raw)
    return Uri(raw, "folder" if Path(raw).is_dir() else "file", raw)


def redact(uri: str) -> str:
    """``uri`` with its credentials replaced by ``***`` (for messages): a password
    (``user:***@host``), a user name given alone (often a token: ``***@host``) and the
    values of secret-looking query keys (``?token=***``, ``password``, ``key``...)."""
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if has_password else f"***@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = any(_SECRET_QUERY_KEYS.search(key) for key, _ in pairs)
    if netloc == parts.netloc and not secret:
        return uri
    if secret:
        hidden = [(key, "***" if _SECRET_QUERY_KEYS.search(key) else value) for key, value in pairs]
        query = urlencode(hidden, safe="*")
    else:
        query = parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*[^\s'\":,;.)\]]")


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (``redact``), for logs and error messages."""
    return _URL_IN_TEXT.sub(lambda match: redact(match.group()), text)


def is_video_file(path: Path) -> bool:
    """Whether ``path`` is a file whose extension is a video container's."""
    return path.is_file() and path.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS


def list_videos(folder: Path) -> list[Path]:
    """The video files directly in ``folder`` (by extension), sorted by name."""
    return sorted(path for path in folder.iterdir() if is_video_file(path))


class StreamNames:
    """Unique stream names for a run: ``clip``, then ``clip-2``, ``clip-3``..."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, wanted: str) -> str:
        """``wanted``, or ``wanted-N`` with the smallest N >= 2 not yet taken; now taken."""
        with self._lock:
            name, number = wanted, 1
            while name in self._taken:
                number += 1
                name = f"{wanted}-{number}"
            self._taken.add(name)
            return name
