"""Converted values equal the reading libraries' decoded messages, field by field: turtlesim (ROS 1,
rosbags), rosbag2 test messages (CDR, checked against mcap-ros2-support's decoder: a second, independent
decoder), JSON (json.loads of the raw messages), protobuf (mcap-protobuf-support), joint states of a
generated ROS 2 bag."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

import _logs
import prf
from conftest import SHARED_DATA

TURTLE = SHARED_DATA / "ros1bag/turtlesim_rosbagjs/fixtures"
R2 = SHARED_DATA / "ros2bag/rosbag2_test_resources"


def _plain(v):
    """A decoded message (rosbags dataclass, mcap-ros2 object, numpy array) as plain Python."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if dataclasses.is_dataclass(v):  # rosbags: constants are ClassVar (string annotations)
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)
                if not str(f.type).startswith("ClassVar")}
    if hasattr(v, "__slots__") and not isinstance(v, (int, float, str, bool)):
        return {k: _plain(getattr(v, k)) for k in v.__slots__}
    return v


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.fixture(scope="module")
def turtle(module_tmp):
    out = module_tmp("turtle") / "o"
    prf.convert_log(TURTLE / "example.bag", out, progress=False)
    return out


def _rosbags_messages(path, topic):
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as r:
        conns = [c for c in r.connections if c.topic == topic]
        return [(t, _plain(r.deserialize(d, c.msgtype))) for c, t, d in r.messages(connections=conns)]


@pytest.mark.parametrize("topic", ["/turtle1/pose", "/turtle2/cmd_vel", "/rosout", "/tf_static", "/tf"])
def test_turtlesim_equals_rosbags(turtle, topic):
    meta = json.loads((turtle / "metadata.json").read_text())
    rows = pq.read_table(turtle / meta["topics"][topic]["file"]).to_pylist()
    ref = _rosbags_messages(TURTLE / "example.bag", topic)
    assert len(rows) == len(ref) > 0
    for row, (t, msg) in zip(rows, ref):
        assert row["log_time"] == row["publish_time"] == t
        want = _flat(msg)
        got = {k: v for k, v in row.items() if k not in ("log_time", "publish_time")}
        assert got.keys() == want.keys()
        for k in want:
            w = want[k]
            if isinstance(w, float) and topic == "/turtle1/pose":
                w = float(np.float32(w))
            assert _same(got[k], w), (topic, k, got[k], w)


def test_turtlesim_pose_known_values(turtle):
    t = pq.read_table(turtle / "turtle1.pose.parquet")
    assert t.num_rows == 1344
    first = t.slice(0, 1).to_pylist()[0]
    assert first["log_time"] == 1396293888056045055
    assert first["x"] == pytest.approx(5.544444561004639) and first["theta"] == 0.0
    assert str(t.schema.field("x").type) == "float"


@pytest.mark.parametrize("variant", ["example-bz2.bag", "example-lz4.bag"])
def test_compressed_chunks_give_identical_tables(turtle, variant, tmp_path):
    prf.convert_log(TURTLE / variant, tmp_path / "o", progress=False)
    for f in ["turtle1.pose.parquet", "rosout.parquet", "tf.parquet"]:
        assert pq.read_table(tmp_path / "o" / f).equals(pq.read_table(turtle / f)), f


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_rosbag2_cdr_equals_mcap_ros2_decoder(storage, tmp_path):
    """BasicTypes and Arrays (fixed arrays of every primitive, of strings and of messages) from the
    rosbag2 test bag; the MCAP copy decoded by mcap-ros2-support is the reference for both storages."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    ref: dict[str, list] = {}
    with open(R2 / "rosbag2_tests/resources/mcap/cdr_test/cdr_test_0.mcap", "rb") as f:
        for _s, ch, m, d in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            ref.setdefault(ch.topic, []).append((m.log_time, _flat(_plain(d))))
    report = prf.convert_log(R2 / f"rosbag2_tests/resources/{storage}/cdr_test", tmp_path / "o", progress=False)
    for topic in ("/test_topic", "/array_topic"):
        rows = pq.read_table(tmp_path / "o" / report.topics[topic].file).to_pylist()
        assert len(rows) == len(ref[topic])
        for row, (t, want) in zip(rows, ref[topic]):
            assert row["log_time"] == t
            for k, w in want.items():
                g = row[k]
                if isinstance(w, bytes):  # mcap-ros2 gives uint8 arrays as bytes
                    w = list(w)
                if isinstance(g, list) and g and isinstance(g[0], dict):  # rosbags' stand-in of empty types
                    g = [{kk: vv for kk, vv in x.items() if kk != "structure_needs_at_least_one_member"} for x in g]
                if isinstance(w, float):
                    g, w = float(np.float32(g)), float(np.float32(w))
                elif isinstance(w, list) and w and isinstance(w[0], float):
                    g, w = [float(np.float32(x)) for x in g], [float(np.float32(x)) for x in w]
                elif isinstance(w, list) and w and isinstance(w[0], dict):
                    w = [{kk: (float(np.float32(vv)) if isinstance(vv, float) else vv) for kk, vv in x.items()} for x in w]
                    g = [{kk: (float(np.float32(vv)) if isinstance(vv, float) else vv) for kk, vv in x.items()} for x in g]
                if k.startswith(("byte_value", "char_value")) or "byte_values" in k or "char_values" in k:
                    continue  # byte/char signedness differs between the two decoders (int8 vs uint8)
                assert _same(g, w), (topic, k, g, w)


def test_service_events_decode(tmp_path):
    """Service-event topics recorded with the service's definition (request --- response)."""
    path = R2 / "rosbag2_tests/resources/mcap/bag_with_topics_and_service_events"
    report = prf.convert_log(path, tmp_path / "o", progress=False)
    t = pq.read_table(tmp_path / "o" / report.topics["/test_service1/_service_event"].file).to_pylist()
    assert [r["info.event_type"] for r in t] == [0, 3, 0, 3]  # REQUEST_SENT, RESPONSE_RECEIVED
    assert [r["info.sequence_number"] for r in t] == [1, 1, 2, 2]
    assert len(t[0]["request"]) == 1 and t[0]["response"] == []
    assert t[1]["request"] == [] and len(t[1]["response"]) == 1


def test_json_equals_raw_messages(tmp_path):
    from mcap.reader import make_reader

    path = SHARED_DATA / "mcap/lichtblick_json/example_logs.mcap"
    prf.convert_log(path, tmp_path / "o", progress=False)
    with open(path, "rb") as f:
        ref = [(m.log_time, json.loads(m.data)) for _s, ch, m in make_reader(f).iter_messages(topics=["/rosout"])]
    rows = pq.read_table(tmp_path / "o" / "rosout.parquet").to_pylist()
    assert len(rows) == len(ref) == 1000
    for row, (t, msg) in zip(rows, ref):
        assert row["log_time"] == t
        assert row["level"] == msg["level"] and row["message"] == msg["message"]
        assert row["timestamp.sec"] == msg["timestamp"]["sec"] and row["timestamp.nsec"] == msg["timestamp"]["nsec"]
    mouse = pq.read_table(tmp_path / "o" / "mouse.parquet")
    assert str(mouse.schema.field("clientX").type) == "double"  # the jsonschema says "number"


def test_protobuf_equals_mcap_protobuf(tmp_path):
    from mcap.reader import make_reader
    from mcap_protobuf.decoder import DecoderFactory

    path = SHARED_DATA / "mcap/keelson_ais_protobuf/test.mcap"
    report = prf.convert_log(path, tmp_path / "o", progress=False)
    ref: dict[str, list] = {}
    with open(path, "rb") as f:
        for _s, ch, m, d in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            ref.setdefault(ch.topic, []).append((m.log_time, m.publish_time, d))
    assert len(report.topics) == len(ref) == 649
    busiest = max(ref, key=lambda k: len(ref[k]))
    for topic in [busiest, *sorted(ref)[:20]]:
        rows = pq.read_table(tmp_path / "o" / report.topics[topic].file).to_pylist()
        assert len(rows) == len(ref[topic])
        for row, (lt, pt, d) in zip(rows, sorted(ref[topic], key=lambda x: x[0])):
            assert (row["log_time"], row["publish_time"]) == (lt, pt)
            assert row["timestamp.seconds"] == d.timestamp.seconds and row["timestamp.nanos"] == d.timestamp.nanos
            assert row["value"] == d.value


def test_joint_states_positions(tmp_path):
    msgs = _logs.write_ros2_bag(tmp_path / "bag", "sqlite3")
    report = prf.convert_log(tmp_path / "bag", tmp_path / "o", progress=False)
    t = pq.read_table(tmp_path / "o" / report.topics["/joint_states"].file)
    ref = [(tt, m) for topic, _typ, tt, m in msgs if topic == "/joint_states"]
    assert t.column("log_time").to_pylist() == [tt for tt, _ in ref]
    assert np.array_equal(np.array(t.column("position").to_pylist()), np.stack([m.position for _, m in ref]))
    assert t.column("name").to_pylist()[0] == _logs.JOINTS
    assert t.column("header.stamp.sec").to_pylist() == [m.header.stamp.sec for _, m in ref]
    img = pq.read_table(tmp_path / "o" / report.topics["/camera/image_raw"].file)
    assert str(img.schema.field("data").type) == "binary"
    assert img.column("encoding")[0].as_py() == "rgb8" and img.column("width")[0].as_py() == _logs.W
    assert img.column("data")[4].as_py() == _logs.image(4).tobytes()


def test_stats_json(turtle):
    stats = json.loads((turtle / "stats.json").read_text())["/turtle1/pose"]
    x = pq.read_table(turtle / "turtle1.pose.parquet").column("x").to_numpy().astype(np.float64)
    assert stats["x"]["count"] == len(x) and stats["x"]["null_count"] == 0
    assert stats["x"]["min"] == pytest.approx(x.min()) and stats["x"]["max"] == pytest.approx(x.max())
    assert stats["x"]["mean"] == pytest.approx(x.mean(), rel=1e-12) and stats["x"]["std"] == pytest.approx(x.std(), rel=1e-9)
    mag = json.loads((turtle / "stats.json").read_text())
    assert "/rosout" in mag and "level" in mag["/rosout"]
