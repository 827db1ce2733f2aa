"""``prf.convert_log``: a robot log (MCAP, ROS 1 bag, ROS 2 bag) -> one Parquet file per topic.

Output folder::

    OUT/
      metadata.json      source, topics (file, message type, encoding, schema, counts), time range, report
      stats.json         per topic, per numeric column: count, null_count, min, max, mean, std
      <topic>.parquet    log_time, publish_time (int64 ns), then the message's fields, flattened

Every message of the log is accounted for: per topic, ``written + sum(skipped.values()) == total``,
where ``total`` is the count the reading library reports (the MCAP summary's statistics, the ROS bag
index, the rosbag2 storage's rows; for a log without an index, the messages found by reading it).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterable

from tqdm.auto import tqdm

from ..errors import LogError, NotALogError, PrfError
from ._decode import (
    DECODE_ERROR, NOT_SELECTED, OUTSIDE_TIME_RANGE, UNREADABLE, DecoderCache, SkipTopic, TopicDecoder,
)
from ._sink import TopicSink
from ._source import RawLog, Stream
from .._atomic import replace_dir, temp_dir_for

METADATA_FILE = "metadata.json"
STATS_FILE = "stats.json"
FORMAT_NAME = "prf-converted-log"
FORMAT_VERSION = 1


@dataclass
class TopicReport:
    """What happened to one topic. ``written + sum(skipped.values()) == total``.

    ``skipped`` maps a reason code to a message count: ``not_selected`` (``topics=``),
    ``outside_time_range`` (``start``/``end``), ``unknown_encoding``, ``schema_error``,
    ``no_definition`` (the topic cannot be decoded; ``error`` says why), ``decode_error`` (single
    messages that failed; ``error`` holds the first failure), ``unreadable`` (the file ended or broke
    before them).
    """

    topic: str
    message_type: str
    encoding: str
    schema_encoding: str | None
    total: int
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    file: str | None = None
    declared: int | None = None

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


@dataclass
class ConversionReport:
    """The result of :func:`convert_log`: per-topic counts and the reasons for every skipped message.

    ``read_error`` says why the log could not be read to its end (a truncated or corrupt file), else
    ``None``; ``complete`` is true when every message was written or deliberately filtered out.
    """

    source: str
    out_dir: str
    format: str
    storage: str
    library: str
    topics: dict[str, TopicReport]
    warnings: list[str]
    messages_read: int
    elapsed_s: float
    time_range: tuple[int, int] | None
    read_error: str | None = None

    @property
    def messages_in_log(self) -> int:
        return sum(t.total for t in self.topics.values())

    @property
    def messages_written(self) -> int:
        return sum(t.written for t in self.topics.values())

    @property
    def messages_skipped(self) -> int:
        return sum(t.n_skipped for t in self.topics.values())

    @property
    def failed_topics(self) -> list[str]:
        """Topics with messages skipped for an error (not for ``topics=``/``start``/``end``). A topic
        without messages whose schema cannot be used loses nothing: it is not listed here (its
        ``error`` says what is wrong, and :attr:`warnings` names it)."""
        return [name for name, t in self.topics.items()
                if any(k not in (NOT_SELECTED, OUTSIDE_TIME_RANGE) and n for k, n in t.skipped.items())]

    @property
    def complete(self) -> bool:
        """True when nothing was skipped for an error and the whole file was readable."""
        return not self.failed_topics and self.read_error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "out_dir": self.out_dir, "format": self.format, "storage": self.storage,
            "library": self.library,
            "messages_in_log": self.messages_in_log, "messages_read": self.messages_read,
            "messages_written": self.messages_written, "messages_skipped": self.messages_skipped,
            "complete": self.complete, "failed_topics": self.failed_topics, "read_error": self.read_error,
            "time_range": list(self.time_range) if self.time_range else None,
            "elapsed_s": round(self.elapsed_s, 3), "warnings": list(self.warnings),
            "topics": {k: asdict(v) for k, v in self.topics.items()},
        }

    def format_text(self) -> str:
        lines = [f"{self.source} ({self.format}, {self.storage}) -> {self.out_dir}",
                 f"messages: {self.messages_in_log} in log, {self.messages_read} read, "
                 f"{self.messages_written} written, {self.messages_skipped} skipped ({self.elapsed_s:.2f} s)"]
        width = max([len(t) for t in self.topics] + [5])
        for name, t in self.topics.items():
            skipped = ", ".join(f"{k} {n}" for k, n in t.skipped.items() if n)
            line = f"  {name:<{width}}  {t.message_type:<30} {t.written:>8}/{t.total:<8}"
            if skipped:
                line += f" skipped: {skipped}"
            if t.error:
                line += f"  [{t.error}]"
            lines.append(line)
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ---- opening logs --------------------------------------------------------------------------------------
def open_log(path: str | Path) -> RawLog:
    """Open ``path`` with the reader for its format (detected from its content, not its name).

    Raises:
        NotALogError: not a file/folder prf reads, or an empty file.
        LogReadError: a log that cannot be opened at all.
        FileNotFoundError: ``path`` does not exist.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        from .ros2_log import Ros2BagLog

        return Ros2BagLog(p)
    if p.name == "metadata.yaml":
        from .ros2_log import Ros2BagLog

        return Ros2BagLog(p.parent)
    with open(p, "rb") as f:
        head = f.read(16)
    if not head:
        raise NotALogError(f"{p}: the file is empty (0 bytes), not a log")
    if head.startswith(b"\x89MCAP"):
        from .mcap_log import McapLog

        return McapLog(p)
    if head.startswith(b"#ROSBAG"):
        from .ros1_log import Ros1Log

        return Ros1Log(p)
    if head.startswith(b"SQLite format 3\x00"):
        from .ros2_log import SqliteLog

        return SqliteLog(p)
    raise NotALogError(f"{p}: not a log prf reads (MCAP, ROS 1 .bag, ROS 2 bag folder / .db3 / .mcap); "
                       f"it starts with {head[:12]!r}")


def _fallback_store(log: RawLog) -> str | None:
    if log.format != "ros2bag":
        return None
    distro = getattr(log, "ros_distro", None)
    if distro:
        name = "ROS2_" + distro.upper()
        from rosbags.typesys import Stores

        if name in Stores.__members__:
            return name
    from .ros2_log import DEFAULT_STORE

    return DEFAULT_STORE


# ---- conversion ----------------------------------------------------------------------------------------
class _Output:
    def __init__(self, name: str, stream: Stream):
        self.name = name
        self.stream = stream
        self.ids: list[Hashable] = []
        self.decoder: TopicDecoder | None = None
        self.skip: SkipTopic | None = None
        self.sink: TopicSink | None = None
        self.seen = 0
        self.decode_errors = 0
        self.first_error: str | None = None
        self.file: str | None = None
        self.tried_builtin = False


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def topic_file_name(topic: str, used: set[str]) -> str:
    """A safe, unique Parquet file name for a topic (``/turtle1/pose`` -> ``turtle1.pose.parquet``)."""
    base = _UNSAFE.sub("_", topic.strip("/").replace("/", ".")).strip(".") or "_root"
    if len(base) > 150:
        import hashlib

        base = base[:130] + "-" + hashlib.sha1(topic.encode()).hexdigest()[:12]
    name, n = base, 2
    while name.lower() in used:
        name, n = f"{base}~{n}", n + 1
    used.add(name.lower())
    return name + ".parquet"


def convert_log(
    path: str | Path,
    out_dir: str | Path,
    *,
    topics: Iterable[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ConversionReport:
    """Convert a robot log to one Parquet file per topic (plus ``metadata.json`` and ``stats.json``).

    Reads MCAP (json, protobuf, ros2msg/cdr, ros1msg encodings; zstd/lz4 chunks; with or without a
    summary section, a truncated file up to where it breaks), ROS 2 bags (a rosbag2 folder with
    ``metadata.yaml``, sqlite3 and mcap storage, split bags; or a bare ``.db3``/``.mcap``) and ROS 1
    bags (uncompressed, bz2 and lz4 chunks; unindexed or truncated bags salvaged record by record).

    Each topic's file has ``log_time`` and ``publish_time`` (``int64`` ns; ROS bags store one time per
    message, used for both), then the message fields: nested fields as dotted columns
    (``pose.position.x``), fixed-size arrays as ``fixed_size_list``, variable arrays as ``list``,
    variable ``uint8`` arrays (image data) as ``binary`` beside their ``encoding``/``width``/``height``
    columns, arrays of messages as ``list<struct>``. Rows are sorted by ``log_time``.

    A topic that cannot be decoded (unknown encoding, a schema the library cannot parse, no message
    definition) is skipped and reported; the rest is converted. A damaged MCAP chunk is skipped (its
    messages reported as ``unreadable``), a file cut short is read up to the cut. The conversion
    streams: per topic, a batch of at most 8192 messages or 64 MiB is in memory at a time (and one
    MCAP chunk); a topic whose messages are stored out of ``log_time`` order is re-read and sorted once
    at the end, which holds that one topic in memory.

    Args:
        path: the log file, or a rosbag2 folder.
        out_dir: the output folder; written atomically (a temporary folder renamed at the end), must
            not exist unless ``overwrite``.
        topics: topic names to convert (default all); the others are reported as ``not_selected``.
        start, end: keep messages with ``start <= log_time < end`` (ns; ``None`` = open).
        overwrite: replace an existing ``out_dir``.
        progress: show a tqdm progress bar (messages).

    Returns:
        A :class:`ConversionReport`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NotALogError: ``path`` is not a log (or is empty).
        LogReadError: the log cannot be opened at all.
        LogError: ``out_dir`` exists (without ``overwrite``), or ``topics`` names topics the log lacks.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise LogError(f"{out}: already exists (pass overwrite=True to replace it)")
    if start is not None and end is not None and end <= start:
        raise LogError(f"empty time range: start {start} >= end {end}")
    wanted = None if topics is None else list(dict.fromkeys(topics))
    log = open_log(path)
    tmp = temp_dir_for(out)
    outputs: dict[tuple, _Output] = {}
    try:
        tmp.mkdir(parents=True)
        result = _convert(log, tmp, wanted, start, end, progress, outputs)
        report = ConversionReport(
            source=str(path), out_dir=str(out), format=log.format, storage=log.storage, library=log.library,
            topics=result["topics"], warnings=list(dict.fromkeys(log.warnings + result["warnings"])),
            messages_read=result["read"], elapsed_s=0.0, time_range=result["time_range"], read_error=log.read_error,
        )
        report.elapsed_s = time.perf_counter() - t0
        _write_metadata(tmp, log, report, result, wanted, start, end)
        replace_dir(tmp, out)
        return report
    except BaseException as e:
        for o in outputs.values():
            if o.sink is not None:
                o.sink.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, (PrfError, OSError)) or not isinstance(e, Exception):
            raise
        raise LogError(f"{path}: conversion failed, nothing was written ({type(e).__name__}: {e})") from e
    finally:
        log.close()


def _convert(log: RawLog, tmp: Path, wanted: list[str] | None, start: int | None, end: int | None,
             progress: bool, outputs: dict[tuple, _Output]) -> dict[str, Any]:
    cache = DecoderCache(_fallback_store(log))
    names_used: set[str] = set()
    topic_names: dict[str, int] = {}
    files_used: set[str] = set()
    by_id: dict[Hashable, _Output] = {}
    warnings: list[str] = []

    def output_for(sid: Hashable) -> _Output:
        o = by_id.get(sid)
        if o is not None:
            return o
        s = log.streams[sid]
        o = outputs.get(s.key)
        if o is None:
            n = topic_names.get(s.topic, 0)
            name = s.topic if n == 0 else f"{s.topic} [{s.type_name or s.encoding}]"
            while name in names_used:
                n += 1
                name = f"{s.topic} [{n}]"
            topic_names[s.topic] = n + 1
            names_used.add(name)
            o = _Output(name, s)
            outputs[s.key] = o
            if wanted is None or s.topic in wanted:
                try:
                    o.decoder = cache.get(s.encoding, s.schema_encoding, s.type_name, s.schema)
                except SkipTopic as e:
                    o.skip = e
        o.ids.append(sid)
        by_id[sid] = o
        return o

    for sid in list(log.streams):
        output_for(sid)
    if wanted is not None and log.counts_known:
        missing = [t for t in wanted if t not in {s.topic for s in log.streams.values()}]
        if missing:
            raise LogError(f"{log.path}: topic(s) {missing} are not in the log; its topics: "
                           f"{sorted({s.topic for s in log.streams.values()})}")

    def selected(o: _Output) -> bool:
        return wanted is None or o.stream.topic in wanted

    pushdown = log.counts_known
    if pushdown:
        ids = {sid for o in outputs.values() if selected(o) and o.skip is None for sid in o.ids}
        total = sum(log.streams[sid].count or 0 for sid in ids)
        it = log.messages(ids, start, end)
    else:
        total = None
        it = log.messages(None, None, None)
    read = 0
    bar = tqdm(total=total, desc=f"converting {log.path.name}", unit="msg", disable=not progress, mininterval=0.5)
    pending = 0
    try:
        for sid, log_time, publish_time, data in it:
            read += 1
            pending += 1
            if pending >= 2048:
                bar.update(pending)
                pending = 0
            o = output_for(sid)
            o.seen += 1
            if not pushdown:
                if not selected(o) or o.skip is not None:
                    continue
                if (start is not None and log_time < start) or (end is not None and log_time >= end):
                    continue
            try:
                try:
                    msg = o.decoder.decode(data)  # type: ignore[union-attr]
                except Exception as first:  # noqa: BLE001
                    msg = _retry_builtin(o, data, first, cache, warnings)
                if o.sink is None:
                    o.file = topic_file_name(o.name, files_used)
                    o.sink = TopicSink(tmp / o.file, o.decoder.flattener, tmp / ".work" / o.file)  # type: ignore[union-attr]
                o.sink.add(log_time, publish_time, msg, len(data))
            except Exception as e:  # noqa: BLE001 - any failure of one message is that message's error
                o.decode_errors += 1
                if o.first_error is None:
                    o.first_error = f"{type(e).__name__}: {e}"
    finally:
        bar.update(pending)
        bar.close()
    if log.read_error:
        warnings.append(log.read_error)

    # typed topics without messages still get their (empty) file
    for o in outputs.values():
        if o.sink is None and o.skip is None and selected(o) and o.decoder is not None \
                and o.decoder.flattener.schema is not None:
            o.file = topic_file_name(o.name, files_used)
            o.sink = TopicSink(tmp / o.file, o.decoder.flattener, tmp / ".work" / o.file)

    reports: dict[str, TopicReport] = {}
    t_lo: int | None = None
    t_hi: int | None = None
    topic_stats: dict[str, Any] = {}
    for o in outputs.values():
        s = o.stream
        counts = [log.streams[sid].count for sid in o.ids]
        declared_total = sum(c or 0 for c in counts) if all(c is not None for c in counts) else None
        rep = TopicReport(topic=o.name, message_type=s.type_name, encoding=s.encoding,
                          schema_encoding=s.schema_encoding, total=0, declared=_sum_declared(log, o))
        written = 0
        if o.sink is not None:
            schema = o.sink.close()
            written = o.sink.written
            if o.sink.dropped:
                o.decode_errors += o.sink.dropped
                o.first_error = o.first_error or o.sink.first_drop_error
            if schema is None:
                o.file = None
            else:
                rep.file = o.file
                topic_stats[o.name] = o.sink.stats.to_json()
                if o.sink.start is not None:
                    t_lo = o.sink.start if t_lo is None else min(t_lo, o.sink.start)
                    t_hi = o.sink.end if t_hi is None else max(t_hi, o.sink.end)
        rep.written = written
        skipped: dict[str, int] = {}
        if o.decode_errors:
            skipped[DECODE_ERROR] = o.decode_errors
            rep.error = o.first_error
        cut_short = 0 if pushdown else sum(log.unreadable.get(sid, 0) for sid in o.ids)
        total = (declared_total or 0) if pushdown else o.seen + cut_short
        if not selected(o):
            skipped[NOT_SELECTED] = total
        elif o.skip is not None:
            skipped[o.skip.reason] = total
            rep.error = o.skip.detail
        else:
            rest = total - written - o.decode_errors
            if not pushdown:
                if cut_short:
                    skipped[UNREADABLE] = cut_short
                    rep.error = rep.error or log.read_error
                    rest -= cut_short
                if rest:
                    skipped[OUTSIDE_TIME_RANGE] = rest
            elif rest < 0:
                warnings.append(f"{o.name}: the log's index counts {total} message(s), {o.seen} were read; "
                                f"the count read is used")
                total = written + o.decode_errors
            elif rest > 0:
                if log.read_error:
                    skipped[UNREADABLE] = rest
                    rep.error = rep.error or log.read_error
                elif start is not None or end is not None:
                    skipped[OUTSIDE_TIME_RANGE] = rest
                else:
                    skipped[UNREADABLE] = rest
                    rep.error = rep.error or (f"the log's index counts {total} message(s), only {o.seen} "
                                              f"were found in the data")
        rep.total = total
        rep.skipped = {k: v for k, v in skipped.items() if v}
        if total == 0 and o.skip is not None and selected(o):
            warnings.append(f"{o.name}: no messages; its schema cannot be used ({o.skip.detail})")
        assert rep.written + rep.n_skipped == rep.total, (o.name, rep)
        reports[o.name] = rep
    if wanted is not None and not log.counts_known:
        missing = [t for t in wanted if t not in {s.topic for s in log.streams.values()}]
        if missing:
            warnings.append(f"topic(s) {missing} were requested but are not in the log")
    return {"topics": reports, "read": read, "warnings": warnings, "stats": topic_stats,
            "schemas": {o.name: o.stream.schema for o in outputs.values()},
            "file_schemas": {o.name: o.sink.schema for o in outputs.values() if o.sink is not None},
            "time_range": (t_lo, t_hi) if t_lo is not None else None}


def _retry_builtin(o: _Output, data: bytes, first: Exception, cache: DecoderCache, warnings: list[str]) -> Any:
    """A ROS topic whose first message does not decode with the definition stored in the log: try
    rosbags' built-in definition of the type (some bags store a wrong one). Switches the topic to it
    when that works; otherwise re-raises the first error."""
    if o.sink is not None or o.tried_builtin:
        raise first
    o.tried_builtin = True
    try:
        alt = cache.builtin(o.stream.encoding, o.stream.type_name)
        msg = alt.decode(data)
    except Exception:  # noqa: BLE001
        raise first from None
    warnings.append(f"{o.name}: its messages do not decode with the definition stored in the log "
                    f"({type(first).__name__}: {first}); decoded with rosbags' built-in {o.stream.type_name}")
    o.decoder = alt
    return msg


def _sum_declared(log: RawLog, o: _Output) -> int | None:
    vals = {log.streams[sid].declared for sid in o.ids}
    vals.discard(None)
    return next(iter(vals)) if len(vals) == 1 else None


def _schema_text(schema: bytes | str | None) -> tuple[str | None, bool]:
    if schema is None:
        return None, False
    if isinstance(schema, str):
        return schema, False
    try:
        return schema.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(schema).decode("ascii"), True


def _write_metadata(tmp: Path, log: RawLog, report: ConversionReport, result: dict[str, Any],
                    wanted: list[str] | None, start: int | None, end: int | None) -> None:
    import pyarrow.parquet as pq

    from .._version import __version__

    topics: dict[str, Any] = {}
    for name, rep in report.topics.items():
        entry: dict[str, Any] = {
            "topic": name, "message_type": rep.message_type, "encoding": rep.encoding,
            "schema_encoding": rep.schema_encoding, "file": rep.file, "count": rep.written,
            "total": rep.total, "skipped": rep.skipped, "error": rep.error,
        }
        if rep.file:
            schema = result["file_schemas"].get(name) or pq.read_schema(tmp / rep.file)
            entry["columns"] = {f.name: str(f.type) for f in schema}
        text, b64 = _schema_text(result["schemas"].get(name))
        entry["schema"] = text
        if b64:
            entry["schema_base64"] = True
        topics[name] = entry
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_by": f"prf {__version__}",
        "source": {"path": str(log.path), "format": log.format, "storage": log.storage,
                   "files": [str(f) for f in log.files], "library": log.library},
        "selection": {"topics": wanted, "start": start, "end": end},
        "time_range": list(report.time_range) if report.time_range else None,
        "topics": topics,
        "report": {k: v for k, v in report.to_dict().items() if k != "topics"},
    }
    (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    (tmp / STATS_FILE).write_text(json.dumps(result["stats"], indent=2, allow_nan=False))
    shutil.rmtree(tmp / ".work", ignore_errors=True)
