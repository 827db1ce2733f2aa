"""Conversion of logs generated here: every MCAP encoding (json, protobuf, ros2msg/cdr, ros1msg) with
zstd / lz4 / no chunk compression and with or without a summary section; truncated MCAP; ROS 1 bags
(none / bz2 / lz4 chunks) read through their index and salvaged without it; ROS 2 sqlite3 with a
write-ahead log; topics that cannot be decoded next to topics that can; filters; clear errors; atomic
output."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pyarrow.parquet as pq
import pytest

import _logs
import prf
from prf.errors import LogError, NotALogError


def _table(out, report, topic):
    return pq.read_table(out / report.topics[topic].file)


@pytest.mark.parametrize("summary", [True, False], ids=["summary", "no-summary"])
@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
@pytest.mark.parametrize("encoding", ["json", "protobuf", "ros2msg", "ros1msg"])
def test_mcap_encodings(tmp_path, encoding, compression, summary):
    path = tmp_path / "log.mcap"
    msgs = _logs.write_mcap(path, encoding, compression=compression, summary=summary)
    report = prf.convert_log(path, tmp_path / "o", progress=False)
    assert ("indexed" in report.storage) == summary
    rep = report.topics["/pose"]
    assert (rep.total, rep.written, rep.skipped) == (len(msgs), len(msgs), {})
    t = _table(tmp_path / "o", report, "/pose")
    assert t.column("log_time").to_pylist() == [m["t"] for m in msgs]
    assert t.column("publish_time").to_pylist() == [m["t"] - 1000 for m in msgs]
    x, y = ("pose.x", "pose.y") if encoding == "json" else ("pos.x", "pos.y")
    assert t.column(x).to_pylist() == [m["x"] for m in msgs]
    assert t.column(y).to_pylist() == [m["y"] for m in msgs]
    assert t.column("label").to_pylist() == [m["label"] for m in msgs]
    assert t.column("vals").to_pylist() == [m["vals"] for m in msgs]
    if encoding != "json":
        assert str(t.schema.field(x).type) == "double"
    meta = json.loads((tmp_path / "o" / "metadata.json").read_text())
    assert meta["topics"]["/pose"]["encoding"] == {"ros2msg": "cdr", "ros1msg": "ros1"}.get(encoding, encoding)
    assert meta["time_range"] == [msgs[0]["t"], msgs[-1]["t"]]


def test_truncated_mcap_keeps_the_readable_part(tmp_path):
    path = tmp_path / "log.mcap"
    msgs = _logs.write_mcap(path, "json", summary=False, chunked=False, n=200)
    data = path.read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[: len(data) * 2 // 3])
    report = prf.convert_log(tmp_path / "cut.mcap", tmp_path / "o", progress=False)
    n = report.topics["/pose"].written
    assert 0 < n < len(msgs)
    assert report.topics["/pose"].total == n  # no index: the messages found are the messages in the log
    assert "reading stopped" in report.read_error and not report.complete
    t = _table(tmp_path / "o", report, "/pose")
    assert t.column("label").to_pylist() == [m["label"] for m in msgs[:n]]


def test_mcap_out_of_order_messages_are_sorted(tmp_path):
    from mcap.writer import Writer

    path = tmp_path / "log.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        sid = w.register_schema("S", "jsonschema", b"{}")
        cid = w.register_channel("/a", "json", sid)
        times = [50, 10, 40, 20, 30, 20]
        for i, t in enumerate(times):
            w.add_message(cid, log_time=t, publish_time=t, data=json.dumps({"i": i}).encode())
        w.finish()
    report = prf.convert_log(path, tmp_path / "o", progress=False)
    t = _table(tmp_path / "o", report, "/a")
    assert t.column("log_time").to_pylist() == sorted(times)
    assert t.column("i").to_pylist() == [1, 3, 5, 4, 2, 0]  # stable for equal times


def _mcap_with_bad_topics(path):
    """Topics: /good (json), /cbor (unknown encoding), /badschema (unparsable ros2msg), /broken (cdr, one
    truncated message among good ones)."""
    from mcap.writer import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        s_json = w.register_schema("J", "jsonschema", b"{}")
        s_bad = w.register_schema("pkg/msg/Bad", "ros2msg", b"this is not ! a definition [[[")
        s_str = w.register_schema("std_msgs/msg/String", "ros2msg", b"string data\n")
        c_good = w.register_channel("/good", "json", s_json)
        c_cbor = w.register_channel("/cbor", "cbor", s_json)
        c_bad = w.register_channel("/badschema", "cdr", s_bad)
        c_broken = w.register_channel("/broken", "cdr", s_str)
        String = store.types["std_msgs/msg/String"]
        for i in range(10):
            t = 1000 + i
            w.add_message(c_good, log_time=t, publish_time=t, data=json.dumps({"v": i}).encode())
            w.add_message(c_cbor, log_time=t, publish_time=t, data=b"\xa1\x61v\x01")
            w.add_message(c_bad, log_time=t, publish_time=t, data=b"\x00\x01\x00\x00")
            data = bytes(store.serialize_cdr(String(data=f"s{i}"), "std_msgs/msg/String"))
            w.add_message(c_broken, log_time=t, publish_time=t, data=data[:5] if i == 3 else data)
        w.finish()


def test_undecodable_topics_are_skipped_and_reported(tmp_path):
    path = tmp_path / "mixed.mcap"
    _mcap_with_bad_topics(path)
    report = prf.convert_log(path, tmp_path / "o", progress=False)
    t = report.topics
    assert (t["/good"].written, t["/good"].skipped) == (10, {})
    assert t["/cbor"].skipped == {"unknown_encoding": 10} and "cbor" in t["/cbor"].error and t["/cbor"].file is None
    assert t["/badschema"].skipped == {"schema_error": 10} and "pkg/msg/Bad" in t["/badschema"].error
    assert t["/broken"].written == 9 and t["/broken"].skipped == {"decode_error": 1} and t["/broken"].error
    assert _table(tmp_path / "o", report, "/broken").column("data").to_pylist() == [f"s{i}" for i in range(10) if i != 3]
    assert report.messages_written + report.messages_skipped == report.messages_in_log == 40
    assert sorted(report.failed_topics) == ["/badschema", "/broken", "/cbor"] and not report.complete
    meta = json.loads((tmp_path / "o" / "metadata.json").read_text())
    assert meta["topics"]["/cbor"]["skipped"] == {"unknown_encoding": 10}


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "no-summary"])
def test_topic_and_time_filters(tmp_path, indexed):
    path = tmp_path / "log.mcap"
    msgs = _logs.write_mcap(path, "ros2msg", summary=indexed, n=40)
    start, end = msgs[10]["t"], msgs[30]["t"]
    report = prf.convert_log(path, tmp_path / "o", start=start, end=end, progress=False)
    rep = report.topics["/pose"]
    assert (rep.total, rep.written, rep.skipped) == (40, 20, {"outside_time_range": 20})
    t = _table(tmp_path / "o", report, "/pose")
    assert t.column("log_time").to_pylist() == [m["t"] for m in msgs[10:30]]
    other = tmp_path / "two.mcap"
    _mcap_with_bad_topics(other)
    report = prf.convert_log(other, tmp_path / "o2", topics=["/good"], progress=False)
    assert report.topics["/good"].written == 10
    assert report.topics["/broken"].skipped == {"not_selected": 10} and report.complete
    with pytest.raises(LogError, match="not in the log"):
        prf.convert_log(other, tmp_path / "o3", topics=["/nope"], progress=False)
    assert not (tmp_path / "o3").exists()


@pytest.mark.parametrize("compression", [None, "bz2", "lz4"])
def test_ros1_bag_indexed_and_salvaged(tmp_path, compression):
    msgs = _logs.write_ros1_bag(tmp_path / "a.bag", compression)
    indexed = prf.convert_log(tmp_path / "a.bag", tmp_path / "i", progress=False)
    assert indexed.messages_written == len(msgs) and "indexed" in indexed.storage
    _logs.unindexed_copy(tmp_path / "a.bag", tmp_path / "u.bag")
    salvaged = prf.convert_log(tmp_path / "u.bag", tmp_path / "s", progress=False)
    assert "salvaged" in salvaged.storage and any("never indexed" in w for w in salvaged.warnings)
    assert salvaged.messages_written == len(msgs)
    for topic in indexed.topics:
        a = pq.read_table(tmp_path / "i" / indexed.topics[topic].file)
        b = pq.read_table(tmp_path / "s" / salvaged.topics[topic].file)
        assert a.equals(b), topic


def test_ros1_bag_cut_midway_is_salvaged(tmp_path):
    from rosbags.rosbag1 import Writer

    msgs = _logs.write_ros1_bag(tmp_path / "a.bag", "lz4", chunk_bytes=8192, n_joint=3000, n_image=0)
    size = (tmp_path / "a.bag").stat().st_size
    _logs.unindexed_copy(tmp_path / "a.bag", tmp_path / "cut.bag", cut=size // 2)
    report = prf.convert_log(tmp_path / "cut.bag", tmp_path / "o", progress=False)
    n = report.topics["/joint_states"].written
    assert 0 < n < 3000 and "ends inside a record" in report.read_error and not report.complete
    t = _table(tmp_path / "o", report, "/joint_states")
    want = [m.position.tolist() for topic, _t, _tt, m in msgs if topic == "/joint_states"][:n]
    assert t.column("position").to_pylist() == want
    assert Writer  # the bag was written by rosbags' own writer


def test_ros2_sqlite_write_ahead_log_is_read(tmp_path):
    """Messages still in a .db3's -wal file are read (from a checkpointed copy; the source is untouched)."""
    _logs.write_ros2_bag(tmp_path / "bag", "sqlite3", n_image=0)
    db = next((tmp_path / "bag").glob("*.db3"))
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    tid = con.execute("SELECT id FROM topics WHERE name='/joint_states'").fetchone()[0]
    row = con.execute("SELECT data FROM messages WHERE topic_id=? ORDER BY timestamp DESC LIMIT 1", (tid,)).fetchone()
    con.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)", (tid, _logs.T0 + 10**10, row[0]))
    con.commit()
    snap = tmp_path / "snap"
    snap.mkdir()
    for p in (tmp_path / "bag").iterdir():  # copy while the WAL is not checkpointed
        shutil.copy(p, snap / p.name)
    con.close()
    assert (snap / (db.name + "-wal")).stat().st_size > 0
    before = sorted((p.name, p.stat().st_size) for p in snap.iterdir())
    report = prf.convert_log(snap / db.name, tmp_path / "o", progress=False)
    assert report.topics["/joint_states"].written == 61
    assert any("write-ahead log" in w for w in report.warnings)
    assert sorted((p.name, p.stat().st_size) for p in snap.iterdir()) == before


def test_not_a_log_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello, I am not a robot log\n")
    with pytest.raises(NotALogError, match="not a log"):
        prf.convert_log(tmp_path / "notes.txt", tmp_path / "o", progress=False)
    (tmp_path / "empty.mcap").write_bytes(b"")
    with pytest.raises(NotALogError, match="empty"):
        prf.convert_log(tmp_path / "empty.mcap", tmp_path / "o", progress=False)
    (tmp_path / "folder").mkdir()
    with pytest.raises(NotALogError, match="not a ROS 2 bag"):
        prf.convert_log(tmp_path / "folder", tmp_path / "o", progress=False)
    (tmp_path / "old.bag").write_bytes(b"#ROSBAG V1.2\n" + b"\0" * 20)
    with pytest.raises(NotALogError, match="1.2"):
        prf.convert_log(tmp_path / "old.bag", tmp_path / "o", progress=False)
    with pytest.raises(FileNotFoundError):
        prf.convert_log(tmp_path / "missing.mcap", tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_output_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "log.mcap"
    _logs.write_mcap(path, "json", n=50)
    prf.convert_log(path, tmp_path / "o", progress=False)
    with pytest.raises(LogError, match="already exists"):
        prf.convert_log(path, tmp_path / "o", progress=False)
    from prf.ingest import _sink

    calls = {"n": 0}
    real = _sink.TopicSink.add

    def boom(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(_sink.TopicSink, "add", boom)
    with pytest.raises(KeyboardInterrupt):
        prf.convert_log(path, tmp_path / "o", overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.mcap", "o"]  # no temporary folder left
    assert pq.read_table(tmp_path / "o" / "pose.parquet").num_rows == 50  # the old output is intact


def test_streaming_batches(tmp_path, monkeypatch):
    """A topic larger than one batch is written in several row groups, values intact."""
    from prf.ingest import _sink

    orig = _sink.TopicSink.__init__

    def small(self, *a, **k):
        k["flush_rows"] = 7
        orig(self, *a, **k)

    monkeypatch.setattr(_sink.TopicSink, "__init__", small)
    msgs = _logs.write_mcap(tmp_path / "l.mcap", "json", n=50)
    report = prf.convert_log(tmp_path / "l.mcap", tmp_path / "o", progress=False)
    f = tmp_path / "o" / report.topics["/pose"].file
    assert pq.read_metadata(f).num_row_groups > 1  # parts unified into one file, batch by batch
    assert pq.read_table(f).column("label").to_pylist() == [m["label"] for m in msgs]
    assert np.isfinite(json.loads((tmp_path / "o" / "stats.json").read_text())["/pose"]["pose.x"]["std"])


def test_corrupt_chunk_in_indexed_mcap_is_counted_unreadable(tmp_path):
    """A damaged chunk is skipped, the other chunks are read; its messages are reported as unreadable,
    so written + skipped still equals the summary's count."""
    from mcap.reader import make_reader
    from mcap.writer import CompressionType, Writer

    path = tmp_path / "log.mcap"
    with open(path, "wb") as f:
        w = Writer(f, chunk_size=2000, compression=CompressionType.ZSTD)
        w.start()
        sid = w.register_schema("S", "jsonschema", b"{}")
        cid = w.register_channel("/a", "json", sid)
        for i in range(300):
            w.add_message(cid, log_time=i, publish_time=i, data=json.dumps({"i": i, "pad": "x" * 20}).encode())
        w.finish()
    with open(path, "rb") as f:
        chunks = sorted(make_reader(f).get_summary().chunk_indexes, key=lambda c: c.chunk_start_offset)
    assert len(chunks) >= 4
    data = bytearray(path.read_bytes())
    mid = chunks[len(chunks) // 2]
    at = mid.chunk_start_offset + mid.chunk_length - 40  # inside the compressed records
    data[at:at + 16] = b"\xff" * 16
    (tmp_path / "bad.mcap").write_bytes(bytes(data))
    report = prf.convert_log(tmp_path / "bad.mcap", tmp_path / "o", progress=False)
    rep = report.topics["/a"]
    assert rep.total == 300 and 200 < rep.written < 300
    assert rep.skipped == {"unreadable": 300 - rep.written} and "cannot be read" in report.read_error
    assert not report.complete
    got = _table(tmp_path / "o", report, "/a").column("i").to_pylist()
    lost = sorted(set(range(300)) - set(got))
    assert got == sorted(got) and lost == list(range(lost[0], lost[-1] + 1))  # one contiguous chunk lost


@pytest.mark.parametrize("compression", ["file", "message"])
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_ros2_bag_zstd_compression(tmp_path, storage, compression):
    msgs = _logs.write_ros2_bag(tmp_path / "bag", storage, compression=compression, n_image=3)
    report = prf.convert_log(tmp_path / "bag", tmp_path / "o", progress=False)
    assert f"{compression} zstd" in report.storage and report.complete
    assert report.messages_written == len(msgs)
    t = _table(tmp_path / "o", report, "/joint_states")
    want = [m.position.tolist() for topic, _t, _tt, m in msgs if topic == "/joint_states"]
    assert t.column("position").to_pylist() == want


def test_ros2_folder_without_metadata_and_bare_files(tmp_path):
    msgs = _logs.write_ros2_bag(tmp_path / "bag", "mcap", n_image=2)
    (tmp_path / "bare").mkdir()
    for p in (tmp_path / "bag").glob("*.mcap"):
        shutil.copy(p, tmp_path / "bare" / p.name)
    report = prf.convert_log(tmp_path / "bare", tmp_path / "o", progress=False)
    assert report.messages_written == len(msgs) and any("no metadata.yaml" in w for w in report.warnings)


def test_sqlite_read_in_place_writes_nothing_beside_it(tmp_path):
    """Without a WAL the .db3 is read in place in SQLite's immutable mode: no -shm/-wal appear."""
    _logs.write_ros2_bag(tmp_path / "bag", "sqlite3", n_image=2)
    before = sorted(p.name for p in (tmp_path / "bag").iterdir())
    db = next((tmp_path / "bag").glob("*.db3"))
    prf.convert_log(db, tmp_path / "o1", progress=False)
    prf.convert_log(tmp_path / "bag", tmp_path / "o2", progress=False)
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == before


def test_json_schema_drift_is_unified(tmp_path, monkeypatch):
    """JSON types inferred per batch are unified when the topic ends: int + float -> float, a column
    that also holds strings -> text, keys that appear later -> null before; invalid JSON -> decode_error."""
    from mcap.writer import Writer

    from prf.ingest import _sink

    orig = _sink.TopicSink.__init__

    def small(self, *a, **k):
        k["flush_rows"] = 4
        orig(self, *a, **k)

    monkeypatch.setattr(_sink.TopicSink, "__init__", small)
    rows = [{"n": 1, "v": 1}, {"n": 2, "v": 2}, {"n": 3, "v": 3}, {"n": 4, "v": 4},
            {"n": 5, "v": 2.5}, {"n": 6, "v": 3.5, "extra": [1, 2]}, {"n": 7, "v": 1.0}, {"n": 8, "v": 0.5},
            {"n": 9, "v": "x"}, {"n": 10, "v": None}]
    with open(tmp_path / "j.mcap", "wb") as f:
        w = Writer(f)
        w.start()
        cid = w.register_channel("/j", "json", w.register_schema("J", "jsonschema", b""))
        for i, r in enumerate(rows):
            w.add_message(cid, log_time=i, publish_time=i, data=json.dumps(r).encode())
        w.add_message(cid, log_time=99, publish_time=99, data=b"{not json")
        w.finish()
    report = prf.convert_log(tmp_path / "j.mcap", tmp_path / "o", progress=False)
    assert report.topics["/j"].written == 10 and report.topics["/j"].skipped == {"decode_error": 1}
    t = _table(tmp_path / "o", report, "/j")
    assert t.column("n").to_pylist() == list(range(1, 11))
    assert str(t.schema.field("v").type) == "string"
    assert t.column("v").to_pylist()[:5] == ["1", "2", "3", "4", "2.5"] and t.column("v").to_pylist()[8:] == ["x", None]
    assert t.column("extra").to_pylist()[:6] == [None] * 5 + [[1, 2]]
