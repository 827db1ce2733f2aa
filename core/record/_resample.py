"""A finished episode's messages -> per-topic Parquet (as ``prf convert`` writes it) -> a one-episode
LeRobot v3.0 dataset on the fps grid.

The Parquet folder is a converted-log folder (``metadata.json``, ``stats.json``, ``<topic>.parquet``
with ``log_time``, ``publish_time`` int64 ns and the payload's fields flattened to dotted columns), so
:meth:`prf.RoboticsDataFrame.from_converted` reads it. ``log_time`` is the message time (the payload's
time field, else the receive time), ``publish_time`` the receive time. The LeRobot episode is made by
:func:`prf.log_to_lerobot`: state/action topics resampled onto the grid ``t0 + floor(k * 1e9 / fps)``
(``t0``: the latest first message among the topics), cameras by the last image at or before each
frame, encoded to video.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._atomic import temp_dir_for
from ..ingest._columns import JsonFlattener
from ..ingest._sink import TopicSink
from ..ingest.convert import FORMAT_NAME, FORMAT_VERSION, METADATA_FILE, STATS_FILE, topic_file_name


class TopicRows:
    """One topic's accepted messages of one episode, in arrival order."""

    __slots__ = ("topic", "kind", "log", "pub", "rows", "nbytes")

    def __init__(self, topic: str, kind: str):
        self.topic, self.kind = topic, kind
        self.log: list[int] = []
        self.pub: list[int] = []
        self.rows: list[dict] = []
        self.nbytes = 0

    def add(self, log_time: int, recv_ns: int, row: dict, nbytes: int) -> None:
        self.log.append(log_time)
        self.pub.append(recv_ns)
        self.rows.append(row)
        self.nbytes += nbytes


def write_converted(folder: Path, topics: Mapping[str, TopicRows], source: Mapping[str, Any],
                    counts: Mapping[str, Mapping[str, int]]) -> Path:
    """Write the episode's topics as a converted-log folder at ``folder`` (atomic: temporary folder,
    then rename; an existing folder is replaced)."""
    from .._version import __version__

    folder = Path(folder)
    tmp = temp_dir_for(folder)
    tmp.mkdir(parents=True)
    try:
        used: set[str] = set()
        meta_topics, stats = {}, {}
        lo = hi = None
        for name, tr in topics.items():
            f = topic_file_name(name, used)
            sink = TopicSink(tmp / f, JsonFlattener(), tmp / ".work" / f)
            for lt, pt, row in zip(tr.log, tr.pub, tr.rows):
                sink.add(lt, pt, row, 0)
            schema = sink.close()
            if sink.start is not None:
                lo = sink.start if lo is None else min(lo, sink.start)
                hi = sink.end if hi is None else max(hi, sink.end)
            c = dict(counts.get(name, {}))
            meta_topics[name] = {
                "topic": name, "message_type": "image" if tr.kind == "image" else "json",
                "encoding": "mqtt/" + tr.kind, "schema_encoding": None, "schema": None,
                "file": f if schema is not None else None, "count": sink.written, "total": sink.written,
                "skipped": {}, "error": None, "recorder_counts": c,
                **({"columns": {fl.name: str(fl.type) for fl in schema}} if schema is not None else {}),
            }
            stats[name] = sink.stats.to_json()
        meta = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created_by": f"prf {__version__} (prf record)",
            "source": dict(source), "selection": {"topics": list(topics), "start": None, "end": None},
            "time_range": [lo, hi] if lo is not None else None, "topics": meta_topics,
        }
        shutil.rmtree(tmp / ".work", ignore_errors=True)
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2))
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2, allow_nan=False))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def episode_dataset(converted: Path, root: Path, *, fps: int, state: Sequence[str], action: Sequence[str],
                    cameras: Mapping[str, str], task: str, skip_columns: Sequence[str], robot_type: str | None,
                    method: str, video_codec: str) -> Path:
    """A one-episode LeRobot v3.0 dataset at ``root`` from a converted episode folder.

    ``observation.state`` (and ``action``) are the numeric columns of the ``state`` (``action``) topics,
    in topic order, minus ``skip_columns`` (the time and sequence fields).

    Raises:
        DataFrameError: a topic has no numeric column or no message, the topics do not overlap in time.
        WriteError: the dataset cannot be written.
    """
    from ..errors import DataFrameError
    from ..ingest import RoboticsDataFrame, log_to_lerobot
    from ..ingest.to_lerobot import _numeric_columns

    df = RoboticsDataFrame.from_converted(converted, memory_map=False)

    def specs(topics: Sequence[str]) -> list[tuple[str, str]]:
        out = []
        for t in topics:
            if t not in df:
                raise DataFrameError(f"topic {t!r} has no message in this episode")
            cols = [c for c in _numeric_columns(df[t]) if c not in skip_columns]
            if not cols:
                raise DataFrameError(f"topic {t!r} has no numeric field (besides {list(skip_columns)})")
            out += [(t, c) for c in cols]
        return out

    for cam, topic in cameras.items():
        if topic not in df:
            raise DataFrameError(f"camera {cam!r} ({topic}) has no image in this episode")
    return log_to_lerobot(df, root, fps=fps, state=specs(state), action=specs(action) or None,
                          cameras=dict(cameras), task=task, robot_type=robot_type, method=method,
                          video_codec=video_codec, progress=False)
