"""The common shape of a log reader: streams (one per channel / connection) and raw messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterator


@dataclass
class Stream:
    """One channel (MCAP) / connection (ROS bag) / topic row (rosbag2 sqlite) of a log.

    ``count`` is the number of messages the reading library reports for it (``None`` when the log
    has no index and the count is only known after reading). ``declared`` is a count stated elsewhere
    (rosbag2's ``metadata.yaml``), kept for the report.
    """

    topic: str
    type_name: str
    encoding: str
    schema_encoding: str | None
    schema: bytes | str | None
    count: int | None = None
    declared: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        """Streams with the same key share one output topic."""
        data = self.schema.encode() if isinstance(self.schema, str) else (self.schema or b"")
        return (self.topic, self.type_name, self.encoding, self.schema_encoding or "", hash(data))


class RawLog:
    """Base class of the format readers.

    Attributes:
        path: the log (file or rosbag2 folder).
        format: ``"mcap"``, ``"ros1bag"``, ``"ros2bag"``.
        storage: more detail (``"sqlite3"``, ``"mcap"``, ``"salvaged"``...).
        files: the files read.
        streams: ``{stream id: Stream}``; readers without an index add streams while reading.
        counts_known: every stream's ``count`` is known before reading (so topic and time filters may
            be pushed down to the library).
        warnings: what the reader noticed (truncation, index disagreements...).
        read_error: the error that stopped reading early, if any.
        unreadable: ``{stream id: n}`` messages known to exist but cut short (a file that ends inside
            them), for logs without an index (their counts are not known beforehand).
    """

    format = "?"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.storage = ""
        self.files: list[Path] = []
        self.streams: dict[Hashable, Stream] = {}
        self.counts_known = True
        self.warnings: list[str] = []
        self.read_error: str | None = None
        self.unreadable: dict[Hashable, int] = {}
        self.library = ""

    def messages(self, ids: set | None, start: int | None, end: int | None) -> Iterator[tuple[Hashable, int, int, bytes]]:
        """``(stream id, log_time ns, publish_time ns, raw message bytes)`` for the selected streams
        (``None``: all) with ``start <= log_time < end``. A read error mid-way is recorded in
        :attr:`read_error` and ends the iteration (what was read so far is kept)."""
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        pass

    def __enter__(self) -> "RawLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def rosbags_messages(log: RawLog, reader: Any, ids: set | None, start: int | None,
                     end: int | None) -> Iterator[tuple[Hashable, int, int, bytes]]:
    """``(connection id, log_time, publish_time, data)`` from a ``rosbags`` reader (ROS bags store one
    time: publish_time = log_time). A read error ends the stream and is kept in ``log.read_error``
    (the counts then report what is missing)."""
    conns = [c for c in reader.connections if ids is None or c.id in ids]
    if ids is not None and not conns:
        return
    try:
        for c, t, data in reader.messages(connections=conns, start=start, stop=end):
            yield c.id, t, t, data
    except Exception as e:  # noqa: BLE001 - a damaged chunk ends the read
        log.read_error = f"{log.path}: reading stopped ({type(e).__name__}: {e})"
