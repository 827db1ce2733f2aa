"""Byte-range requests to one remote file, with retries: HTTP(S) directly (``http.client``, one kept-alive
connection per thread and host), any other fsspec URL through its filesystem's ``cat_file``.

Every response is checked against the file's version captured at its first access (:class:`Version`:
size, and the ETag where the server sends one): HTTP sends ``If-Match`` with the ETag and compares the
``Content-Range`` total and ``ETag`` of each 206 response, so bytes of a file replaced on the server are
never returned (:class:`~prf.errors.StreamError` instead).

Retries: connection resets, timeouts, truncated bodies and 5xx (and 429) are retried
:data:`RETRIES` times with exponential backoff (:data:`BACKOFF_S` x 2^k, capped at 2 s); then
:class:`~prf.errors.StreamError` names the URL, the byte range and the last failure. Other 4xx fail at
once. Counters of requests and bytes for tests and benches: :func:`transport_stats`.
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass

from ..errors import StreamError

#: attempts after the first one, for a failing request (``PRF_STREAM_RETRIES``)
RETRIES = int(os.environ.get("PRF_STREAM_RETRIES", 6))
#: first backoff between attempts, seconds (doubled each retry, jittered, capped at 2 s)
BACKOFF_S = 0.05
#: socket timeout of one HTTP request, seconds (``PRF_STREAM_TIMEOUT_S``)
TIMEOUT_S = float(os.environ.get("PRF_STREAM_TIMEOUT_S", 30))

_RETRY_STATUS = {429, 500, 502, 503, 504}
_STATS_LOCK = threading.Lock()
_STATS = {"requests": 0, "bytes": 0, "retries": 0}


def transport_stats(reset: bool = False) -> dict[str, int]:
    """Counters of this process: ``requests`` (range requests that returned data), ``bytes`` (their
    payload bytes), ``retries`` (failed attempts retried). ``reset=True`` zeroes them after reading."""
    with _STATS_LOCK:
        out = dict(_STATS)
        if reset:
            for k in _STATS:
                _STATS[k] = 0
    return out


def _count(**kw: int) -> None:
    with _STATS_LOCK:
        for k, v in kw.items():
            _STATS[k] += v


@dataclass(frozen=True)
class Version:
    """What identifies one version of a remote file: its ``size`` in bytes and ``etag`` (``None`` when
    the server sends none; then only the size is compared)."""

    size: int
    etag: str | None


class _Retry(Exception):
    """One attempt failed in a way worth retrying (the message says how)."""


class Transport:
    """Range requests to one remote file (``url``). Thread-safe."""

    def __init__(self, url: str):
        self.url = url

    def version(self) -> Version:
        """The file's current size and ETag (one HEAD request, retried like a read).

        Raises:
            StreamError: the file is missing or the server keeps failing."""
        return self._retrying(self._version_once, None, None)

    def read(self, start: int, end: int, expect: Version) -> bytes:
        """Bytes ``[start, end)`` of the file, which must still be version ``expect``.

        Raises:
            StreamError: the server keeps failing, refuses the range, or the file changed."""
        data = self._retrying(lambda: self._read_once(start, end, expect), start, end)
        _count(requests=1, bytes=len(data))
        return data

    def _retrying(self, once, start, end):
        rng = "" if start is None else f" bytes {start}-{end - 1}"
        last = ""
        for attempt in range(RETRIES + 1):
            try:
                return once()
            except _Retry as e:
                last = str(e)
            except (OSError, http.client.HTTPException) as e:  # resets, timeouts, truncated bodies
                last = f"{type(e).__name__}: {e}"
            self._drop_connection()
            if attempt < RETRIES:
                _count(retries=1)
                time.sleep(min(2.0, BACKOFF_S * 2**attempt) * (0.5 + random.random()))
        raise StreamError(f"{self.url}{rng}: failed after {RETRIES + 1} attempts ({last})", self.url, start, end)

    def _drop_connection(self) -> None:
        pass

    def _version_once(self) -> Version:
        raise NotImplementedError

    def _read_once(self, start: int, end: int, expect: Version) -> bytes:
        raise NotImplementedError


class HTTPTransport(Transport):
    """``http://`` and ``https://``: GET with a ``Range`` header (a 206 answer is required; a server that
    ignores ranges would send the whole file, which is refused)."""

    def __init__(self, url: str):
        super().__init__(url)
        self._local = threading.local()

    def _conn(self, u: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        key = (u.scheme, u.hostname, u.port)
        c = conns.get(key)
        if c is None:
            cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
            c = conns[key] = cls(u.hostname or "", u.port, timeout=TIMEOUT_S)
        return c

    def _drop_connection(self) -> None:
        conns = getattr(self._local, "conns", None) or {}
        self._local.conns = {}
        for c in conns.values():
            try:
                c.close()
            except Exception:  # noqa: BLE001 - a broken socket may fail to close; it is dropped anyway
                pass

    def _request(self, method: str, headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        """One request, following up to 5 redirects (a Hub ``resolve`` URL answers 302 to its CDN)."""
        url = self.url
        for _ in range(6):
            u = urllib.parse.urlsplit(url)
            c = self._conn(u)
            c.request(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), headers=headers)
            r = c.getresponse()
            body = r.read()  # raises IncompleteRead on a truncated body
            if r.will_close:
                self._drop_connection()
            loc = r.getheader("Location")
            if r.status in (301, 302, 303, 307, 308) and loc:
                url = urllib.parse.urljoin(url, loc)
                continue
            return r, body
        raise StreamError(f"{self.url}: more than 5 redirects", self.url)

    def _status(self, r: http.client.HTTPResponse, start, end) -> None:
        if r.status in _RETRY_STATUS:
            raise _Retry(f"HTTP {r.status} {r.reason}")
        if r.status == 412:
            raise StreamError(f"{self.url}: the file changed on the server since it was first read (HTTP 412 "
                              f"on If-Match); restart from a consistent dataset", self.url, start, end)
        if r.status >= 400:
            rng = "" if start is None else f" bytes {start}-{end - 1}"
            e = StreamError(f"{self.url}{rng}: HTTP {r.status} {r.reason}", self.url, start, end)
            e.missing = r.status in (404, 410)
            raise e

    def _version_once(self) -> Version:
        r, _ = self._request("HEAD", {})
        self._status(r, None, None)
        size = r.getheader("Content-Length")
        if size is None:
            raise StreamError(f"{self.url}: the server sends no Content-Length; cannot stream it", self.url)
        return Version(int(size), r.getheader("ETag"))

    def _read_once(self, start: int, end: int, expect: Version) -> bytes:
        headers = {"Range": f"bytes={start}-{end - 1}"}
        if expect.etag and not expect.etag.startswith("W/"):  # If-Match compares strong ETags only
            headers["If-Match"] = expect.etag
        r, body = self._request("GET", headers)
        self._status(r, start, end)
        if r.status != 206:
            raise StreamError(f"{self.url} bytes {start}-{end - 1}: the server answered HTTP {r.status} to a "
                              f"range request (206 expected); it does not support byte ranges", self.url, start, end)
        etag = r.getheader("ETag")
        total = (r.getheader("Content-Range") or "").rpartition("/")[2]
        if (expect.etag and etag and etag != expect.etag) or (total.isdigit() and int(total) != expect.size):
            raise StreamError(f"{self.url} bytes {start}-{end - 1}: the file changed on the server since it was "
                              f"first read (ETag {expect.etag} -> {etag}, size {expect.size} -> {total})",
                              self.url, start, end)
        if len(body) != end - start:
            raise _Retry(f"short body: {len(body)} of {end - start} bytes")
        return body


class FsspecTransport(Transport):
    """Any other fsspec URL (``s3://``, ``gs://``, ``hf://``, ``memory://``...): ``fs.cat_file`` ranges;
    the version (size, and the ETag or checksum the filesystem reports) is captured at first access and
    the size compared with every range's length (the filesystem's own per-request check, where it has
    one, is not exposed; a replaced object of the same size is caught only by its first-access ETag)."""

    def __init__(self, url: str):
        super().__init__(url)
        import fsspec

        self.fs, self.path = fsspec.core.url_to_fs(url)

    def _version_once(self) -> Version:
        try:
            info = self.fs.info(self.path)
        except FileNotFoundError:
            e = StreamError(f"{self.url}: no such file", self.url)
            e.missing = True
            raise e from None
        etag = info.get("ETag") or info.get("etag") or info.get("checksum")
        return Version(int(info["size"]), None if etag is None else str(etag))

    def _read_once(self, start: int, end: int, expect: Version) -> bytes:
        try:
            data = self.fs.cat_file(self.path, start=start, end=end)
        except FileNotFoundError:
            raise StreamError(f"{self.url} bytes {start}-{end - 1}: the file is gone from the server",
                              self.url, start, end) from None
        if len(data) != end - start:
            raise _Retry(f"short read: {len(data)} of {end - start} bytes")
        return bytes(data)


def transport_for(url: str) -> Transport:
    """The transport of ``url``: :class:`HTTPTransport` for http(s), else :class:`FsspecTransport`."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    return HTTPTransport(url) if scheme in ("http", "https") else FsspecTransport(url)

