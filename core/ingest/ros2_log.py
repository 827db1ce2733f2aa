"""Read ROS 2 bags: a rosbag2 folder (``metadata.yaml`` plus one or more storage files, sqlite3 ``.db3``
or ``.mcap``, split bags included, file or message zstd compression), or a bare storage file.

Each storage file is opened on its own: ``.mcap`` files with the ``mcap`` library (which keeps their
publish times and schemas), ``.db3`` files with ``rosbags``' sqlite3 storage reader (SQLite's immutable
read-only mode: nothing is written beside the file). A ``.db3`` with a non-empty ``-wal`` file beside it
is first copied to a temporary folder with its WAL, which is checkpointed there, so messages still in
the WAL are read and the source is never touched.

Topics are matched across files by name and type only: rosbag2's ``metadata.yaml`` may list QoS
profiles that differ from the storage file's (rosbag2's own test bags do), and a reader that also
matches QoS finds no messages there. The message counts are the storage files' (the library's); where
``metadata.yaml`` states different counts, the report says so.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path, PurePath
from typing import Any, Hashable, Iterator

from ..errors import LogReadError, NotALogError
from ._source import RawLog, Stream, rosbags_messages
from .mcap_log import McapLog, _version

SQLITE_MAGIC = b"SQLite format 3\x00"
_FMT = {"MSG": "ros2msg", "IDL": "ros2idl"}
#: rosbags built-in type store used when a bag stores no message definitions.
DEFAULT_STORE = "LATEST"


class SqliteLog(RawLog):
    """One rosbag2 sqlite3 storage file (``.db3``), read with ``rosbags``."""

    format = "ros2bag"

    def __init__(self, path: str | Path, *, encoding_override: dict[str, str] | None = None):
        super().__init__(Path(path))
        from rosbags.rosbag2 import Reader

        self.files = [self.path]
        self.library = _version("rosbags")
        self.storage = "sqlite3"
        self._tmp: tempfile.TemporaryDirectory | None = None
        source = self.path
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            self._tmp = tempfile.TemporaryDirectory(prefix="prf-db3-")
            source = Path(self._tmp.name) / self.path.name
            shutil.copyfile(self.path, source)
            shutil.copyfile(wal, source.with_name(source.name + "-wal"))
            con = sqlite3.connect(source)
            try:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                con.close()
            self.warnings.append(f"{self.path}: has a write-ahead log; read from a checkpointed copy")
        try:
            self._reader = Reader(source)
            self._reader.open()
        except Exception as e:  # noqa: BLE001 - rosbags raises several types for a bad database
            self._cleanup()
            raise LogReadError(f"{self.path}: cannot be read as a rosbag2 sqlite3 file ({type(e).__name__}: {e})") \
                from None
        override = encoding_override or {}
        for c in self._reader.connections:
            fmt = _FMT.get(c.msgdef.format.name)
            self.streams[c.id] = Stream(
                topic=c.topic, type_name=c.msgtype,
                encoding=override.get(c.topic, getattr(c.ext, "serialization_format", "cdr")),
                schema_encoding=fmt, schema=c.msgdef.data if fmt else None, count=c.msgcount,
            )

    def messages(self, ids: set | None, start: int | None, end: int | None) -> Iterator[tuple[Hashable, int, int, bytes]]:
        yield from rosbags_messages(self, self._reader, ids, start, end)

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def close(self) -> None:
        try:
            self._reader.close()
        except Exception:  # noqa: BLE001
            pass
        self._cleanup()


class Ros2BagLog(RawLog):
    """A rosbag2 folder: ``metadata.yaml`` and its storage files, read one after the other.

    Raises (from the constructor):
        NotALogError: no ``metadata.yaml`` and no storage files.
        LogReadError: ``metadata.yaml`` is malformed, or a storage file it lists is missing.
    """

    format = "ros2bag"

    def __init__(self, path: str | Path):
        super().__init__(Path(path))
        self.library = _version("rosbags") + ", " + _version("mcap")
        meta_path = self.path / "metadata.yaml"
        self.metadata: dict[str, Any] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        declared: dict[str, int] = {}
        formats: dict[str, str] = {}
        compression_mode = ""
        if meta_path.is_file():
            self.metadata = _read_metadata(meta_path)
            info = self.metadata
            try:
                files = [self.path / PurePath(p).name for p in info["relative_file_paths"]]
                for t in info.get("topics_with_message_count") or []:
                    tm = t["topic_metadata"]
                    declared[tm["name"]] = declared.get(tm["name"], 0) + int(t.get("message_count", 0))
                    formats[tm["name"]] = str(tm.get("serialization_format") or "cdr")
            except (KeyError, TypeError, ValueError) as e:
                raise LogReadError(f"{meta_path}: malformed rosbag2 metadata ({type(e).__name__}: {e})") from None
            missing = [str(p) for p in files if not p.is_file()]
            if missing:
                raise LogReadError(f"{self.path}: storage files listed in metadata.yaml are missing: {missing}")
            compression_mode = str(info.get("compression_mode") or "").lower()
            if compression_mode in ("none",):
                compression_mode = ""
            if compression_mode and str(info.get("compression_format") or "") != "zstd":
                raise LogReadError(f"{meta_path}: compression {info.get('compression_format')!r} is not supported "
                                   f"(rosbag2 writes zstd)")
        else:
            files = sorted(p for p in self.path.iterdir() if p.suffix in (".db3", ".mcap"))
            if not files:
                raise NotALogError(f"{self.path}: a folder without metadata.yaml or .db3/.mcap storage files; "
                                   f"not a ROS 2 bag")
            self.warnings.append(f"{self.path}: no metadata.yaml; reading {len(files)} storage file(s) in name order")
        self.files = files
        self._message_zstd = compression_mode == "message"
        override = {t: f for t, f in formats.items() if f != "cdr"}
        self.parts: list[RawLog] = []
        try:
            for p in files:
                if compression_mode == "file":
                    p = self._decompress(p)
                self.parts.append(_open_storage(p, override))
        except BaseException:
            self.close()
            raise
        self.storage = "rosbag2 " + "+".join(sorted({part.storage.split(" ")[0] for part in self.parts}))
        if compression_mode:
            self.storage += f" ({compression_mode} zstd)"
        self.counts_known = all(p.counts_known for p in self.parts)
        for i, part in enumerate(self.parts):
            self.warnings += part.warnings
            for sid, s in part.streams.items():
                self.streams[(i, sid)] = s
        got: dict[str, int] = {}
        for s in self.streams.values():
            got[s.topic] = got.get(s.topic, 0) + (s.count or 0)
        for s in self.streams.values():
            s.declared = declared.get(s.topic)
        if self.counts_known:
            for topic, n in declared.items():
                if got.get(topic, 0) != n:
                    self.warnings.append(f"{meta_path}: declares {n} message(s) on {topic}, the storage files hold "
                                         f"{got.get(topic, 0)}; the storage files' count is used")
        if self.metadata.get("ros_distro"):
            self.ros_distro = str(self.metadata["ros_distro"])

    def _decompress(self, p: Path) -> Path:
        import zstandard

        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="prf-rosbag2-")
        out = Path(self._tmp.name) / (p.name[:-5] if p.name.endswith(".zstd") else p.name)
        with open(p, "rb") as src, open(out, "wb") as dst:
            zstandard.ZstdDecompressor().copy_stream(src, dst)
        return out

    def messages(self, ids: set | None, start: int | None, end: int | None) -> Iterator[tuple[Hashable, int, int, bytes]]:
        dctx = None
        if self._message_zstd:
            import zstandard

            dctx = zstandard.ZstdDecompressor()
        for i, part in enumerate(self.parts):
            sub = None if ids is None else {sid for (j, sid) in ids if j == i}
            if sub is not None and not sub:
                continue
            for sid, t, pt, data in part.messages(sub, start, end):
                if (i, sid) not in self.streams:  # a storage file without an index names its streams late
                    self.streams[(i, sid)] = part.streams[sid]
                if dctx is not None:
                    data = dctx.decompress(data)
                yield (i, sid), t, pt, data
            if part.read_error:
                self.read_error = part.read_error
                return

    def close(self) -> None:
        for p in getattr(self, "parts", []):
            p.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _read_metadata(path: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML

    try:
        doc = YAML(typ="safe").load(path.read_text())
        info = doc["rosbag2_bagfile_information"]
        if not isinstance(info, dict):
            raise TypeError("rosbag2_bagfile_information is not a mapping")
        return info
    except Exception as e:  # noqa: BLE001 - YAML and structure errors alike
        raise LogReadError(f"{path}: not a valid rosbag2 metadata.yaml ({type(e).__name__}: {e})") from None


def _open_storage(p: Path, override: dict[str, str]) -> RawLog:
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(b"\x89MCAP"):
        log = McapLog(p, encoding_override=override)
        log.format = "ros2bag"
        return log
    if head == SQLITE_MAGIC:
        return SqliteLog(p, encoding_override=override)
    raise NotALogError(f"{p}: neither an MCAP nor an SQLite file (rosbag2 storage)")
