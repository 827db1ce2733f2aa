"""Read MCAP files with the ``mcap`` library: indexed (summary section with chunk indexes and
statistics) or not (streamed record by record, which also salvages the readable part of a truncated
file). Chunk compression (zstd, lz4) is handled by ``mcap``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Hashable, Iterator

from ..errors import LogReadError, NotALogError
from ._source import RawLog, Stream

MAGIC = b"\x89MCAP0\r\n"


class McapLog(RawLog):
    """One MCAP file.

    Raises (from the constructor):
        NotALogError: the file does not start with the MCAP magic.
        LogReadError: the file cannot be opened.
    """

    format = "mcap"

    def __init__(self, path: str | Path, *, encoding_override: dict[str, str] | None = None):
        super().__init__(Path(path))
        from mcap.reader import SeekingReader

        self.library = _version("mcap")
        self.files = [self.path]
        self._override = encoding_override or {}
        try:
            self._f = open(self.path, "rb")
        except OSError as e:
            raise LogReadError(f"{self.path}: cannot be opened ({e})") from None
        head = self._f.read(len(MAGIC))
        if head != MAGIC:
            self._f.close()
            raise NotALogError(f"{self.path}: not an MCAP file (starts with {head[:8]!r})")
        self._summary = None
        try:
            self._f.seek(0)
            self._reader = SeekingReader(self._f)
            self._summary = self._reader.get_summary()
        except Exception as e:  # noqa: BLE001 - mcap raises several types for a bad footer/summary
            self.warnings.append(f"{self.path}: no readable summary section ({type(e).__name__}: {e}); "
                                 f"reading the file from the start (a truncated file keeps what is readable)")
        s = self._summary
        stats = s.statistics if s is not None else None
        self.indexed = bool(s is not None and s.chunk_indexes and stats is not None)
        if s is not None and stats is not None and not s.chunk_indexes and stats.message_count == 0:
            self.indexed = True  # an indexed file without messages
        self.storage = "mcap (indexed)" if self.indexed else "mcap (no index: streamed)"
        self.counts_known = self.indexed
        if self.indexed:
            counts = stats.channel_message_counts
            for cid, ch in s.channels.items():
                self.streams[cid] = self._stream(ch, s.schemas.get(ch.schema_id), counts.get(cid, 0))

    def _stream(self, ch: Any, schema: Any, count: int | None) -> Stream:
        enc = self._override.get(ch.topic, ch.message_encoding)
        return Stream(
            topic=ch.topic,
            type_name=schema.name if schema is not None else "",
            encoding=enc,
            schema_encoding=schema.encoding if schema is not None else None,
            schema=schema.data if schema is not None else None,
            count=count,
            extra={"channel_metadata": dict(ch.metadata or {})},
        )

    def messages(self, ids: set | None, start: int | None, end: int | None) -> Iterator[tuple[Hashable, int, int, bytes]]:
        if self.indexed:
            yield from self._indexed(ids, start, end)
        else:
            yield from self._streamed()

    def _indexed(self, ids: set | None, start: int | None, end: int | None) -> Iterator[tuple[Hashable, int, int, bytes]]:
        """Chunk by chunk in file order (one chunk's records in memory at a time). A chunk that cannot
        be read or decompressed is skipped and recorded; its messages count as unreadable."""
        from mcap.data_stream import ReadDataStream
        from mcap.records import Chunk, Message
        from mcap.stream_reader import breakup_chunk

        assert self._summary is not None
        for ci in sorted(self._summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
            if ids is not None and ci.message_index_offsets and not (set(ci.message_index_offsets) & ids):
                continue
            if (start is not None and ci.message_end_time < start) or (end is not None and ci.message_start_time >= end):
                continue
            try:
                self._f.seek(ci.chunk_start_offset + 1 + 8)  # opcode, record length
                records = list(breakup_chunk(Chunk.read(ReadDataStream(self._f))))
            except Exception as e:  # noqa: BLE001 - a damaged chunk; the others are still read
                msg = (f"{self.path}: the chunk at byte {ci.chunk_start_offset} cannot be read "
                       f"({type(e).__name__}: {e}); its messages are lost")
                self.warnings.append(msg)
                self.read_error = self.read_error or msg
                continue
            for rec in records:
                if not isinstance(rec, Message):
                    continue
                if ids is not None and rec.channel_id not in ids:
                    continue
                if (start is not None and rec.log_time < start) or (end is not None and rec.log_time >= end):
                    continue
                yield rec.channel_id, rec.log_time, rec.publish_time, rec.data

    def _streamed(self) -> Iterator[tuple[Hashable, int, int, bytes]]:
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader

        self._f.seek(0)
        schemas: dict[int, Any] = {}
        channels: dict[int, Any] = {}
        try:
            for rec in StreamReader(self._f, skip_magic=False).records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec
                elif isinstance(rec, Channel):
                    channels[rec.id] = rec
                    if rec.id not in self.streams:
                        self.streams[rec.id] = self._stream(rec, schemas.get(rec.schema_id), None)
                elif isinstance(rec, Message):
                    if rec.channel_id not in channels:
                        self.warnings.append(f"{self.path}: a message names channel {rec.channel_id}, "
                                             f"which has no channel record; skipped")
                        continue
                    yield rec.channel_id, rec.log_time, rec.publish_time, rec.data
        except Exception as e:  # noqa: BLE001 - truncation/corruption ends the stream; keep what was read
            self.read_error = f"{self.path}: reading stopped ({type(e).__name__}: {e})"

    def close(self) -> None:
        try:
            self._f.close()
        except Exception:  # noqa: BLE001
            pass


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return f"{dist} {version(dist)}"
    except Exception:  # noqa: BLE001
        return dist
