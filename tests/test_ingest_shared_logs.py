"""Every log in ../shared/data/{mcap, ros1bag, ros2bag} converts (or gives its documented error), and
every message is accounted for: per topic, rows written + messages skipped == the count the reading
library reports, counted here independently (the MCAP summary's statistics through ``mcap``, the ROS
bag index and the rosbag2 storage files through ``rosbags``' own readers, for .mcap storage too)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import prf
from conftest import SHARED_DATA
from prf.errors import NotALogError

LOG_ROOTS = [SHARED_DATA / "mcap", SHARED_DATA / "ros1bag", SHARED_DATA / "ros2bag"]


def _items() -> list[Path]:
    bag_dirs = sorted({p.parent for p in (SHARED_DATA / "ros2bag").rglob("metadata.yaml")})
    files = sorted(p for root in LOG_ROOTS for p in root.rglob("*") if p.suffix in (".bag", ".mcap", ".db3"))
    return bag_dirs + files


ITEMS = _items()
R2 = "ros2bag/rosbag2_test_resources/"
#: the documented outcome of the files that do not convert
ERRORS = {"ros1bag/turtlesim_rosbagjs/fixtures/empty-file.bag": NotALogError}
#: topics skipped (whole) and why; every other topic of every log must convert completely
SKIPPED = {
    R2 + "rosbag2_py/test/resources/sqlite3/convert_a": {"a_empty": "no_definition", "b_basictypes": "no_definition"},
    R2 + "rosbag2_py/test/resources/sqlite3/convert_b": {"a_empty": "no_definition", "c_strings": "no_definition"},
    R2 + "rosbag2_tests/resources/mcap/wrong_rmw_test": {"/test_topic": "unknown_encoding",
                                                        "/array_topic": "unknown_encoding"},
    R2 + "rosbag2_tests/resources/sqlite3/wrong_rmw_test": {"/test_topic": "unknown_encoding",
                                                           "/array_topic": "unknown_encoding"},
    R2 + "rosbag2_tests/resources/sqlite3/bag_with_topics_and_service_events": {
        "/test_service1/_service_event": "no_definition", "/test_service2/_service_event": "no_definition"},
    R2 + "rosbag2_transport/test/resources/sqlite3/test_bag_for_seek": {"topic1": "no_definition"},
    R2 + "rosbag2_cpp/test/rosbag2_cpp/bags/topics_and_services.db3": {"/add_two_ints/_service_event": "no_definition"},
    R2 + "rosbag2_py/test/resources/sqlite3/convert_a/rewriter_a_0.db3": {"a_empty": "no_definition",
                                                                         "b_basictypes": "no_definition"},
    R2 + "rosbag2_py/test/resources/sqlite3/convert_b/rewriter_b_0.db3": {"a_empty": "no_definition",
                                                                         "c_strings": "no_definition"},
    R2 + "rosbag2_tests/resources/mcap/wrong_rmw_test/wrong_rmw_test_0.mcap": {"/test_topic": "unknown_encoding",
                                                                              "/array_topic": "unknown_encoding"},
    R2 + "rosbag2_tests/resources/sqlite3/bag_with_topics_and_service_events/bag_with_topics_and_service_events.db3": {
        "/test_service1/_service_event": "no_definition", "/test_service2/_service_event": "no_definition"},
    R2 + "rosbag2_tests/resources/sqlite3/wrong_rmw_test/wrong_rmw_test_0.db3": {"/test_topic": "no_definition",
                                                                                "/array_topic": "no_definition"},
    R2 + "rosbag2_transport/test/resources/sqlite3/test_bag_for_seek/test_bag_for_seek_0.db3": {
        "topic1": "no_definition"},
}


def _rel(p: Path) -> str:
    return str(p.relative_to(SHARED_DATA))


def library_counts(p: Path) -> dict[str, int] | None:
    """Messages per topic as the reading libraries report them (None: the library cannot index it)."""
    if p.is_dir():
        from ruamel.yaml import YAML

        meta = p / "metadata.yaml"
        info = YAML(typ="safe").load(meta.read_text())["rosbag2_bagfile_information"]
        files = [p / Path(f).name for f in info["relative_file_paths"]]
        out: Counter = Counter()
        for f in files:
            out.update(library_counts(f) or {})
        return dict(out)
    if p.suffix == ".mcap" and "ros2bag" not in p.parts:
        from mcap.reader import make_reader

        with open(p, "rb") as f:
            s = make_reader(f).get_summary()
        out = Counter()
        for cid, n in s.statistics.channel_message_counts.items():
            out[s.channels[cid].topic] += n
        return dict(out)
    if p.suffix == ".bag":
        from rosbags.rosbag1 import Reader, ReaderError

        try:
            with Reader(p) as r:
                out = Counter()
                for c in r.connections:
                    out[c.topic] += c.msgcount
                return dict(out)
        except ReaderError:
            return None
    from rosbags.rosbag2 import Reader  # a .db3 or a rosbag2 .mcap storage file

    with Reader(p) as r:
        out = Counter()
        for c in r.connections:
            out[c.topic] += c.msgcount
        return dict(out)


def _listing(p: Path) -> list[tuple[str, int]]:
    d = p if p.is_dir() else p.parent
    return sorted((str(x), x.stat().st_size) for x in d.iterdir())


@pytest.mark.parametrize("path", ITEMS, ids=_rel)
def test_converts_and_accounts_for_every_message(path, tmp_path):
    rel = _rel(path)
    before = _listing(path)
    out = tmp_path / "out"
    if rel in ERRORS:
        with pytest.raises(ERRORS[rel]) as ei:
            prf.convert_log(path, out, progress=False)
        assert str(path) in str(ei.value)
        assert not out.exists()
        return
    report = prf.convert_log(path, out, progress=False)
    assert _listing(path) == before, "the source folder was modified (SQLite side files?)"
    counts = library_counts(path)
    meta = json.loads((out / "metadata.json").read_text())
    stats = json.loads((out / "stats.json").read_text())
    by_topic: Counter = Counter()
    skipped_topics = {}
    for name, t in report.topics.items():
        assert t.written + sum(t.skipped.values()) == t.total, (name, t)
        by_topic[name.split(" [")[0]] += t.total
        entry = meta["topics"][name]
        assert entry["count"] == t.written and entry["total"] == t.total
        if t.file:
            assert pq.read_metadata(out / t.file).num_rows == t.written
            assert name in stats
            times = pq.read_table(out / t.file, columns=["log_time"]).column("log_time").to_numpy()
            assert np.all(np.diff(times) >= 0), f"{name}: log_time not sorted"
        if t.skipped:
            assert len(t.skipped) == 1 and t.error, (name, t)
            skipped_topics[name] = next(iter(t.skipped))
    assert skipped_topics == SKIPPED.get(rel, {})
    assert report.messages_written + report.messages_skipped == report.messages_in_log
    if counts is not None:
        assert dict(by_topic) == {k: v for k, v in counts.items()}, "totals differ from the library's counts"
    if report.messages_written:
        lo = min(stats[n]["log_time"]["min"] for n, t in report.topics.items() if t.written)
        assert meta["time_range"][0] == lo == report.time_range[0]


def test_truncated_ros1_bag_is_reported_not_fatal(tmp_path):
    """dummy.bag: a 90-byte bag header announcing 600 chunks and an index past the end of the file."""
    report = prf.convert_log(SHARED_DATA / "ros1bag/truncated_dummy/dummy.bag", tmp_path / "o", progress=False)
    assert report.messages_in_log == 0 and report.topics == {}
    assert "truncated" in report.read_error and "600 chunk" in report.read_error and not report.complete
    assert report.read_error in report.warnings


def test_rosbag2_qos_mismatch_still_reads_every_message(tmp_path):
    """talker's metadata.yaml lists other QoS profiles than its storage file; 20 messages all the same."""
    for storage in ("mcap", "sqlite3"):
        path = SHARED_DATA / f"ros2bag/rosbag2_test_resources/rosbag2_py/test/resources/{storage}/talker"
        report = prf.convert_log(path, tmp_path / storage, progress=False)
        assert report.messages_written == 20
        t = pq.read_table(tmp_path / storage / report.topics["/topic"].file)
        assert t.column("data").to_pylist() == [f"Hello, world! {i}" for i in range(10)]


def test_split_bag_reads_all_files(tmp_path):
    path = SHARED_DATA / "ros2bag/rosbag2_test_resources/rosbag2_py/test/resources/mcap/wbag"
    report = prf.convert_log(path, tmp_path / "o", progress=False)
    meta = json.loads((tmp_path / "o" / "metadata.json").read_text())
    assert len(meta["source"]["files"]) == 5
    assert report.messages_written == 6074  # metadata.yaml's message_count
