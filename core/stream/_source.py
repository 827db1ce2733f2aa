"""Which local paths stand for remote files, and one :class:`Source` per remote file.

A streamed dataset is opened from a local *mirror root* (``$PRF_CACHE/remote/<hash>/<name>``) that holds
only ``meta/`` and a marker file :data:`MARKER` naming the dataset's URL; every other path under it
(``data/...``, ``videos/...``) is read from ``<url>/<relative path>`` by byte range. The marker is found
again by a process that did not open the dataset (a spawned loader worker), so such paths travel as
plain strings.

A :class:`Source` captures the file's :class:`~prf.stream._transport.Version` (size, ETag) at its first
access and refuses every later read once a response shows the file changed (``StreamError``).
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from pathlib import Path

from ..errors import StreamError
from ._transport import Transport, Version, transport_for

#: the marker file of a mirror root: ``{"url": "<dataset URL>"}``
MARKER = ".prf-stream.json"

_LOCK = threading.Lock()
_ROOTS: dict[str, str] = {}  # mirror root (absolute, no trailing slash) -> dataset URL
_NOT_ROOT: set[str] = set()  # directories known to hold no marker
_SOURCES: dict[str, "Source"] = {}


def register_root(root: str | Path, url: str) -> None:
    """Declare ``root`` the mirror of the dataset at ``url`` (writes the marker file)."""
    root = os.path.abspath(str(root))
    url = url.rstrip("/")
    marker = Path(root) / MARKER
    text = json.dumps({"url": url})
    if not marker.is_file() or marker.read_text() != text:
        tmp = marker.with_name(f".{MARKER}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, marker)
    with _LOCK:
        _ROOTS[root] = url
        _NOT_ROOT.clear()


def _root_of(path: str) -> str | None:
    with _LOCK:
        for root in _ROOTS:
            if path.startswith(root + os.sep):
                return root
    d = os.path.dirname(path)
    seen = []
    while d and d not in _NOT_ROOT:
        marker = os.path.join(d, MARKER)
        if os.path.isfile(marker):
            try:
                url = json.loads(Path(marker).read_text())["url"]
            except (OSError, ValueError, KeyError):
                break
            with _LOCK:
                _ROOTS[d] = str(url)
            return d
        seen.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    with _LOCK:
        _NOT_ROOT.update(seen)
    return None


def remote_url(path: str | Path) -> str | None:
    """The URL a path of a streamed dataset stands for, or ``None`` for a local file (one that exists,
    or lies under no mirror root)."""
    p = os.path.abspath(str(path))
    if os.path.exists(p):
        return None
    root = _root_of(p)
    if root is None:
        return None
    rel = os.path.relpath(p, root).replace(os.sep, "/")
    return _ROOTS[root] + "/" + urllib.parse.quote(rel)


class Source:
    """One remote file: its transport, and its version captured at first access.

    ``fetch(a, b)`` reads ``[a, b)`` from the server (through the transport's retries); reads are
    refused with :class:`~prf.errors.StreamError` once the file was seen to change."""

    def __init__(self, url: str, transport: Transport | None = None):
        self.url = url
        self.transport = transport or transport_for(url)
        self._version: Version | None = None
        self._lock = threading.Lock()
        self.failed: StreamError | None = None

    @property
    def version(self) -> Version:
        if self._version is None:
            with self._lock:
                if self._version is None:
                    self._version = self.transport.version()
        return self._version

    @property
    def size(self) -> int:
        return self.version.size

    @property
    def etag(self) -> str | None:
        return self.version.etag

    def fetch(self, a: int, b: int) -> bytes:
        if self.failed is not None:
            raise StreamError(str(self.failed), self.url, a, b)
        try:
            return self.transport.read(a, b, self.version)
        except StreamError as e:
            if "changed on the server" in str(e):
                self.failed = e
            raise

    def check(self) -> None:
        """Raise the change seen earlier, if any (cached bytes of a changed file are not served)."""
        if self.failed is not None:
            raise StreamError(str(self.failed), self.url)


def source(url: str) -> Source:
    """The process's :class:`Source` of ``url`` (one per URL)."""
    with _LOCK:
        s = _SOURCES.get(url)
        if s is None:
            s = _SOURCES[url] = Source(url)
        return s


def forget_sources() -> None:
    """Forget every captured version (files are checked afresh on their next access)."""
    with _LOCK:
        _SOURCES.clear()


def _after_fork() -> None:
    global _LOCK
    _LOCK = threading.Lock()
    for s in _SOURCES.values():
        s._lock = threading.Lock()
        if hasattr(s.transport, "_local"):
            s.transport._local = threading.local()  # never share the parent's sockets


os.register_at_fork(after_in_child=_after_fork)
