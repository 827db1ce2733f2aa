"""Read ROS 1 bags (format 2.0) with ``rosbags``: indexed bags through its reader (uncompressed, bz2 and
lz4 chunks); bags it cannot open because the index is missing or damaged (a recording that was cut
off, ``rosbag reindex`` territory) are salvaged by reading their records in file order, keeping every
complete message of every readable chunk."""

from __future__ import annotations

import bz2
import struct
from pathlib import Path
from typing import Any, BinaryIO, Generator, Hashable, Iterator

from ..errors import LogReadError, NotALogError
from ._source import RawLog, Stream, rosbags_messages
from .mcap_log import _version

MAGIC = b"#ROSBAG V2.0\n"
_OP_MSG, _OP_BAG_HEADER, _OP_INDEX, _OP_CHUNK, _OP_CHUNK_INFO, _OP_CONNECTION = 0x02, 0x03, 0x04, 0x05, 0x06, 0x07


class Ros1Log(RawLog):
    """One ROS 1 ``.bag`` file.

    Raises (from the constructor):
        NotALogError: empty file, or not a ROS bag 2.0 file.
        LogReadError: the file cannot be opened.
    """

    format = "ros1bag"

    def __init__(self, path: str | Path):
        super().__init__(Path(path))
        self.files = [self.path]
        self.library = _version("rosbags")
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(MAGIC))
        except OSError as e:
            raise LogReadError(f"{self.path}: cannot be opened ({e})") from None
        if not head:
            raise NotALogError(f"{self.path}: the file is empty (0 bytes), not a ROS bag")
        if head != MAGIC:
            if head.startswith(b"#ROSBAG V"):
                raise NotALogError(f"{self.path}: ROS bag version {head[9:12].decode(errors='replace')!r} is not "
                                   f"supported (prf reads bag format 2.0)")
            raise NotALogError(f"{self.path}: not a ROS 1 bag (starts with {head[:8]!r})")
        from rosbags.rosbag1 import Reader, ReaderError

        self._reader = None
        try:
            r = Reader(self.path)
            r.open()
            self._reader = r
        except ReaderError as e:
            self.warnings.append(f"{self.path}: rosbags cannot use the bag's index ({e}); salvaging by reading "
                                 f"the records in file order")
        if self._reader is not None:
            self.storage = "rosbag1 (indexed)"
            for c in self._reader.connections:
                self.streams[c.id] = _stream(c.topic, c.msgtype, c.msgdef.data, c.msgcount)
        else:
            self.storage = "rosbag1 (salvaged: no usable index)"
            self.counts_known = False

    def messages(self, ids: set | None, start: int | None, end: int | None) -> Iterator[tuple[Hashable, int, int, bytes]]:
        if self._reader is None:
            yield from self._salvage()
            return
        yield from rosbags_messages(self, self._reader, ids, start, end)

    # ---- salvage ---------------------------------------------------------------------------------
    def _salvage(self) -> Iterator[tuple[Hashable, int, int, bytes]]:
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            f.seek(len(MAGIC))
            try:
                while True:
                    rec = _read_record(f)
                    if rec is None:
                        break
                    header, data = rec
                    op = _u8(header, "op")
                    if op == _OP_BAG_HEADER:
                        index_pos = struct.unpack("<Q", header.get("index_pos", b"\0" * 8))[0]
                        chunks = struct.unpack("<I", header.get("chunk_count", b"\0" * 4))[0]
                        if index_pos == 0:
                            self.warnings.append(f"{self.path}: the bag was never indexed (a recording that was "
                                                 f"not closed); its records are read in file order")
                        elif index_pos >= size:
                            self.read_error = (f"{self.path}: truncated: the bag header puts the index at byte "
                                               f"{index_pos} ({chunks} chunk(s)), the file has {size} bytes")
                    elif op == _OP_CHUNK:
                        yield from self._chunk(header, data)
                    else:
                        yield from self._record(op, header, data)
            except _CutChunk as cut:
                kept = yield from self._chunk(cut.header, cut.data, cut=True)
                self.read_error = (
                    f"{self.path}: the bag ends inside a record (the chunk at byte {cut.pos}: {len(cut.data)} of "
                    f"its {cut.declared} bytes present); kept the {kept} complete message(s) before the cut; the "
                    f"rest of the file is unreadable (the index that would count it is at the end)")
            except _Truncated as e:
                self.read_error = f"{self.path}: the bag ends inside a record ({e}); kept everything before it"
            except Exception as e:  # noqa: BLE001
                self.read_error = f"{self.path}: reading stopped ({type(e).__name__}: {e})"

    def _chunk(self, header: dict[str, bytes], data: bytes, cut: bool = False
               ) -> Generator[tuple[Hashable, int, int, bytes], None, int]:
        """The messages of one chunk record; returns how many were yielded. ``cut``: ``data`` is the part
        of the chunk before the end of the file: every complete record in it is read (a partly
        compressed stream is decompressed as far as it goes), a message cut short is counted in
        :attr:`unreadable` for its connection."""
        comp = header.get("compression", b"none").decode()
        if comp == "none":
            raw = data
        elif comp == "bz2":
            raw = bz2.BZ2Decompressor().decompress(data) if cut else bz2.decompress(data)
        elif comp == "lz4":
            from lz4.frame import LZ4FrameDecompressor, decompress

            raw = LZ4FrameDecompressor().decompress(data) if cut else decompress(data)
        else:
            raise LogReadError(f"{self.path}: chunk compression {comp!r} is not supported")
        import io

        buf = io.BytesIO(raw)
        n = 0
        while True:
            try:
                rec = _read_record(buf, cut_message=cut)
            except _Truncated:
                if not cut:
                    raise
                break
            if rec is None:
                break
            h, d = rec
            op = _u8(h, "op")
            if d is None:  # a message whose header is complete and whose data the cut took
                if op == _OP_MSG and "conn" in h:
                    cid = struct.unpack("<I", h["conn"])[0]
                    self.unreadable[cid] = self.unreadable.get(cid, 0) + 1
                break
            for m in self._record(op, h, d):
                n += 1
                yield m
        return n

    def _record(self, op: int, header: dict[str, bytes], data: bytes) -> Iterator[tuple[Hashable, int, int, bytes]]:
        """A connection record registers its topic; a message record yields the message (if decodable)."""
        if op == _OP_CONNECTION:
            self._connection(header, data)
        elif op == _OP_MSG:
            m = self._message(header, data)
            if m is not None:
                yield m

    def _connection(self, header: dict[str, bytes], data: bytes) -> None:
        from rosbags.typesys.msg import normalize_msgtype

        cid = struct.unpack("<I", header["conn"])[0]
        if cid in self.streams:
            return
        topic = header["topic"].decode()
        fields = _parse_header(data)
        msgtype = normalize_msgtype(fields["type"].decode())
        self.streams[cid] = _stream(topic, msgtype, fields.get("message_definition", b"").decode(), None)

    def _message(self, header: dict[str, bytes], data: bytes) -> tuple[Hashable, int, int, bytes] | None:
        cid = struct.unpack("<I", header["conn"])[0]
        sec, nsec = struct.unpack("<II", header["time"])
        t = sec * 10**9 + nsec
        if cid not in self.streams:
            self.warnings.append(f"{self.path}: a message at {t} ns names connection {cid}, which has no "
                                 f"connection record; skipped")
            return None
        return cid, t, t, data

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001
                pass
            self._reader = None


def _stream(topic: str, msgtype: str, msgdef: str, count: int | None) -> Stream:
    return Stream(topic=topic, type_name=msgtype, encoding="ros1", schema_encoding="ros1msg", schema=msgdef,
                  count=count)


class _Truncated(Exception):
    pass


class _CutChunk(Exception):
    """A chunk record whose data the end of the file cuts: ``data`` is what is present."""

    def __init__(self, header: dict[str, bytes], data: bytes, declared: int, pos: int):
        super().__init__(f"chunk at byte {pos} cut after {len(data)} of {declared} bytes")
        self.header, self.data, self.declared, self.pos = header, data, declared, pos


def _read_exact(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise _Truncated(f"wanted {n} bytes, {len(b)} left")
    return b


def _read_record(f: BinaryIO, cut_message: bool = False) -> tuple[dict[str, bytes], bytes | None] | None:
    """One record (header fields, data), or None at a clean end of input.

    Raises ``_CutChunk`` for a chunk record the end of the input cuts (with the part present), and
    ``_Truncated`` for any other cut record; with ``cut_message``, a record whose header is complete
    but whose data is cut is returned with data ``None``."""
    pos = f.tell()
    first = f.read(4)
    if not first:
        return None
    if len(first) != 4:
        raise _Truncated("record header length cut off")
    (hlen,) = struct.unpack("<I", first)
    header = _parse_header(_read_exact(f, hlen))
    (dlen,) = struct.unpack("<I", _read_exact(f, 4))
    data = f.read(dlen)
    if len(data) != dlen:
        if header.get("op", b"")[:1] == bytes([_OP_CHUNK]):
            raise _CutChunk(header, data, dlen, pos)
        if cut_message:
            return header, None
        raise _Truncated(f"wanted {dlen} bytes, {len(data)} left")
    return header, data


def _parse_header(b: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos + 4 <= len(b):
        (n,) = struct.unpack_from("<I", b, pos)
        pos += 4
        if pos + n > len(b):
            raise _Truncated("header field longer than its header")
        name, sep, value = b[pos:pos + n].partition(b"=")
        if not sep:
            raise LogReadError("malformed record header field")
        out[name.decode(errors="replace")] = value
        pos += n
    return out


def _u8(header: dict[str, Any], name: str) -> int:
    v = header.get(name)
    if not v:
        raise LogReadError(f"record header without {name!r}")
    return v[0]
