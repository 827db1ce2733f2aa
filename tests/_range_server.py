"""A real HTTP server on 127.0.0.1 for streaming tests and benches: Python's http.server serving a
folder with byte ranges (206, Content-Range, ETag, Content-Length, If-Match -> 412), directory listings
(what fsspec's HTTP filesystem lists ``meta/`` with), server-side counters of requests and bytes, and
injected faults: latency per request, dropped connections and 503s on a fraction of requests, and
files replaced by other bytes (a new ETag and size)."""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class Log:
    """One answered request: method, path (relative to the served folder), range ``(start, end)``
    (``None``: no Range header), status, payload bytes sent."""

    method: str
    path: str
    range: tuple[int, int] | None
    status: int
    sent: int


@dataclass
class Faults:
    latency_s: float = 0.0
    drop: float = 0.0  # fraction of ranged GETs whose connection is closed without (full) answer
    error503: float = 0.0  # fraction of ranged GETs answered 503
    seed: int = 0
    replaced: dict = field(default_factory=dict)  # relative path -> bytes served instead


class RangeServer:
    """``with RangeServer(folder) as srv: srv.url`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, folder: str | Path, faults: Faults | None = None):
        self.folder = Path(folder).resolve()
        self.faults = faults or Faults()
        self.log: list[Log] = []
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        srv = self

        class Handler(SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(srv.folder), **kw)

            def log_message(self, *a):  # quiet
                pass

            def _rel(self) -> str:
                return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")

            def _body(self, rel: str) -> bytes | None:
                if rel in srv.faults.replaced:
                    return srv.faults.replaced[rel]
                p = srv.folder / rel
                return p.read_bytes() if p.is_file() else None

            def _etag(self, rel: str, body: bytes) -> str:
                return '"' + hashlib.sha1(body[:65536] + str(len(body)).encode() + rel.encode()
                                          + (b"r" if rel in srv.faults.replaced else b"")).hexdigest()[:16] + '"'

            def _record(self, method, rel, rng, status, sent):
                with srv._lock:
                    srv.log.append(Log(method, rel, rng, status, sent))

            def _redirected(self) -> bool:
                """``/redirect/<path>`` answers 302 to ``/<path>`` (as the Hub's resolve URLs do)."""
                if not self.path.startswith("/redirect/"):
                    return False
                self.send_response(302)
                self.send_header("Location", self.path[len("/redirect"):])
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._record(self.command, self._rel(), None, 302, 0)
                return True

            def _begin(self) -> tuple[str, bytes | None] | None:
                """The injected latency, then ``(path, body)``, or None when a redirect was answered."""
                if srv.faults.latency_s:
                    time.sleep(srv.faults.latency_s)
                if self._redirected():
                    return None
                rel = self._rel()
                return rel, self._body(rel)

            def do_HEAD(self):
                if (got := self._begin()) is None:
                    return
                rel, body = got
                if body is None:
                    return super().do_HEAD()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", self._etag(rel, body))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                self._record("HEAD", rel, None, 200, 0)

            def do_GET(self):
                if (got := self._begin()) is None:
                    return
                rel, body = got
                header = self.headers.get("Range")
                if body is None or header is None:
                    if body is not None:  # a whole-file GET (meta/ files)
                        self._record("GET", rel, None, 200, len(body))
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.send_header("ETag", self._etag(rel, body))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    return super().do_GET()  # directory listings, 404
                m = _RANGE.match(header.strip())
                if not m:
                    self.send_error(416)
                    return
                start = int(m.group(1))
                end = min(int(m.group(2)) + 1 if m.group(2) else len(body), len(body))
                with srv._lock:
                    r = srv._rng.random()
                if r < srv.faults.error503:
                    self._record("GET", rel, (start, end), 503, 0)
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = self._etag(rel, body)
                want = self.headers.get("If-Match")
                if want and want != etag:
                    self._record("GET", rel, (start, end), 412, 0)
                    self.send_response(412)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                drop = r < srv.faults.error503 + srv.faults.drop
                self.send_response(206)
                self.send_header("Content-Length", str(end - start))
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
                self.send_header("ETag", etag)
                self.end_headers()
                if drop:  # half the body, then the connection goes away
                    half = (end - start) // 2
                    self.wfile.write(body[start:start + half])
                    self.wfile.flush()
                    self._record("GET", rel, (start, end), -1, half)
                    self.close_connection = True
                    return
                self.wfile.write(body[start:end])
                self._record("GET", rel, (start, end), 206, end - start)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "RangeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self.log.clear()

    def bytes_sent(self, prefix: str = "") -> int:
        with self._lock:
            return sum(e.sent for e in self.log if e.path.startswith(prefix))

    def requests(self, prefix: str = "") -> list[Log]:
        with self._lock:
            return [e for e in self.log if e.path.startswith(prefix)]
