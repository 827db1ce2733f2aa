"""Issue 11 items 11-14: ROS 1 bags with roslib/Header, ROS 1 bags cut short, JSON MCAP camera topics with
base64 image bytes, and the exit code when only an empty topic has a schema problem."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import prf
from prf.cli import main
from conftest import SHARED_DATA

TURTLE = SHARED_DATA / "ros1bag/turtlesim_rosbagjs/fixtures/example.bag"


# ---- item 14 ----------------------------------------------------------------------------------------
def test_convert_exit_0_when_only_an_empty_topic_has_a_schema_problem(tmp_path, capsys):
    from mcap.writer import Writer

    path = tmp_path / "log.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        s_json = w.register_schema("J", "jsonschema", b"{}")
        s_bad = w.register_schema("pkg/msg/Bad", "ros2msg", b"this is not ! a definition [[[")
        good = w.register_channel("/good", "json", s_json)
        w.register_channel("/empty_bad", "cdr", s_bad)  # no message is ever published on it
        for i in range(10):
            w.add_message(good, log_time=1000 + i, publish_time=1000 + i, data=json.dumps({"v": i}).encode())
        w.finish()
    rc = main(["convert", str(path), str(tmp_path / "o"), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0, rep
    assert rep["complete"] and rep["failed_topics"] == [] and rep["messages_written"] == 10
    assert rep["topics"]["/empty_bad"]["total"] == 0 and "pkg/msg/Bad" in rep["topics"]["/empty_bad"]["error"]
    assert any("/empty_bad" in w_ and "no messages" in w_ for w_ in rep["warnings"])
    # a topic that has messages and a schema problem still makes the conversion partial (exit 4)
    with open(tmp_path / "b.mcap", "wb") as f:
        w = Writer(f)
        w.start()
        s_bad = w.register_schema("pkg/msg/Bad", "ros2msg", b"this is not ! a definition [[[")
        c = w.register_channel("/bad", "cdr", s_bad)
        w.add_message(c, log_time=1, publish_time=1, data=b"\0\1\0\0")
        w.finish()
    assert main(["convert", str(tmp_path / "b.mcap"), str(tmp_path / "o2"), "--quiet"]) == 4


# ---- item 11 ----------------------------------------------------------------------------------------
#: sensor_msgs/JointState as bags recorded before ROS Electric embed it: Header still lived in roslib
OLD_JOINT_STATE_DEF = """Header header
string[] name
float64[] position
float64[] velocity
float64[] effort

================================================================================
MSG: roslib/Header
# Standard metadata for higher-level flow data types
uint32 seq
time stamp
string frame_id
"""


def _roslib_header_bag(path, n=120):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    JointState, Header = store.types["sensor_msgs/msg/JointState"], store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    with Writer(path) as w:
        c = w.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=store,
                             msgdef=OLD_JOINT_STATE_DEF, md5sum="3066dcd76a6cfaef579bd0f34173e9fd")
        for k in range(n):
            t = 1_300_000_000_000_000_000 + k * 10_000_000
            m = JointState(header=Header(seq=k, stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id="base"),
                           name=["shoulder", "elbow"], position=np.array([0.1 * k, -0.2 * k]),
                           velocity=np.array([1.0, float(k)]), effort=np.zeros(2))
            w.write(c, t, store.serialize_ros1(m, "sensor_msgs/msg/JointState"))


def _rosbags_messages(path):
    """What rosbags itself reads from the bag (its reader; values deserialized with ROS 1 Noetic's
    built-in JointState, whose layout roslib/Header shares)."""
    from rosbags.rosbag1 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    with Reader(path) as r:
        assert "MSG: roslib/Header" in r.connections[0].msgdef.data
        return [(t, store.deserialize_ros1(d, "sensor_msgs/msg/JointState")) for _c, t, d in r.messages()]


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "salvaged"])
def test_ros1_bag_with_roslib_header_converts(tmp_path, indexed):
    import _logs

    _roslib_header_bag(tmp_path / "a.bag")
    want = _rosbags_messages(tmp_path / "a.bag")
    assert len(want) == 120
    src = tmp_path / "a.bag"
    if not indexed:
        _logs.unindexed_copy(src, tmp_path / "u.bag")
        src = tmp_path / "u.bag"
    report = prf.convert_log(src, tmp_path / "o", progress=False)
    rep = report.topics["/joint_states"]
    assert (rep.written, rep.skipped) == (120, {}) and report.complete, rep
    t = pq.read_table(tmp_path / "o" / rep.file)
    assert t.column("log_time").to_pylist() == [tm for tm, _m in want]
    assert t.column("header.seq").to_pylist() == [m.header.seq for _t, m in want]
    assert t.column("header.frame_id").to_pylist() == ["base"] * 120
    assert t.column("position").to_pylist() == [m.position.tolist() for _t, m in want]
    assert t.column("velocity").to_pylist() == [m.velocity.tolist() for _t, m in want]


# ---- item 12 ----------------------------------------------------------------------------------------
def _turtle_records():
    """Every message of the turtlesim bag with where its record lies in the file, from rosbags' own
    index (not prf's parser): (topic, time, record start, end of its header, record end, raw data)."""
    import struct

    from rosbags.rosbag1 import Reader

    data = TURTLE.read_bytes()
    out = []
    with Reader(TURTLE) as r:
        topic_of = {c.id: c.topic for c in r.connections}
        starts = {}
        for cid, entries in r.indexes.items():
            for e in entries:
                (chlen,) = struct.unpack_from("<I", data, e.chunk_pos)
                chunk_data = e.chunk_pos + 4 + chlen + 4
                starts[(cid, e.time, e.offset)] = chunk_data + e.offset
        raw = {}
        for c, t, d in r.messages():
            raw.setdefault((c.id, t), []).append(d)
    for (cid, t, _off), pos in sorted(starts.items(), key=lambda kv: kv[1]):
        (hlen,) = struct.unpack_from("<I", data, pos)
        (dlen,) = struct.unpack_from("<I", data, pos + 4 + hlen)
        head_end = pos + 4 + hlen + 4
        out.append((topic_of[cid], t, pos, head_end, head_end + dlen, raw[(cid, t)].pop(0)))
    return out


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7, "mid-message"])
def test_ros1_bag_cut_short_keeps_every_complete_record(tmp_path, fraction):
    import struct
    from collections import Counter

    records = _turtle_records()
    assert len(records) == 8647
    data = TURTLE.read_bytes()
    if fraction == "mid-message":  # inside the data of a message whose header is complete
        rec = next(r for r in records if r[0] == "/turtle1/pose" and r[2] > len(data) * 0.4)
        cut = (rec[3] + rec[4]) // 2
    else:
        cut = int(len(data) * fraction)
    (tmp_path / "cut.bag").write_bytes(data[:cut])
    complete = [r for r in records if r[4] <= cut]
    cut_short = Counter(r[0] for r in records if r[3] <= cut < r[4])
    report = prf.convert_log(tmp_path / "cut.bag", tmp_path / "o", progress=False)
    assert not report.complete and "ends inside a record (the chunk" in report.read_error
    want = Counter(r[0] for r in complete)
    assert sum(want.values()) > 0.2 * 8647 * min(0.3 if fraction == "mid-message" else fraction, 1)
    got = {name: t.written for name, t in report.topics.items() if t.written}
    assert got == dict(want)
    for name, t in report.topics.items():
        assert t.written + sum(t.skipped.values()) == t.total
        assert t.skipped == ({"unreadable": cut_short[name]} if cut_short[name] else {}), (name, t.skipped)
    if fraction == "mid-message":
        assert sum(cut_short.values()) == 1 and report.topics["/turtle1/pose"].skipped == {"unreadable": 1}
    # the values are those of the same records as rosbags reads them (turtlesim/Pose: 5 float32)
    poses = [r for r in complete if r[0] == "/turtle1/pose"]
    t = pq.read_table(tmp_path / "o" / report.topics["/turtle1/pose"].file)
    assert t.column("log_time").to_pylist() == [r[1] for r in poses]
    assert t.column("x").to_pylist() == [struct.unpack_from("<f", r[5])[0] for r in poses]
    rc = main(["convert", str(tmp_path / "cut.bag"), str(tmp_path / "o2"), "--quiet"])
    assert rc == 4  # converted in part: the file was cut short


# ---- item 13 ----------------------------------------------------------------------------------------
#: Foxglove's JSON schema for foxglove.CompressedImage (bytes travel as base64 text)
FOXGLOVE_COMPRESSED_IMAGE = {
    "title": "foxglove.CompressedImage", "type": "object",
    "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer", "minimum": 0},
                                                       "nsec": {"type": "integer", "minimum": 0}}},
        "frame_id": {"type": "string"},
        "data": {"type": "string", "contentEncoding": "base64"},
        "format": {"type": "string"},
    },
}


def _json_camera_log(path, n=30):
    import base64

    from mcap.writer import Writer

    import _logs

    frames = [_logs.image(k) for k in range(n)]
    jpegs = [_logs.jpeg(f) for f in frames]
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        s_img = w.register_schema("foxglove.CompressedImage", "jsonschema",
                                  json.dumps(FOXGLOVE_COMPRESSED_IMAGE).encode())
        s_js = w.register_schema("Joints", "jsonschema", json.dumps(
            {"type": "object", "properties": {"position": {"type": "array", "items": {"type": "number"}}}}).encode())
        c_img = w.register_channel("/camera/compressed", "json", s_img)
        c_js = w.register_channel("/joints", "json", s_js)
        for k in range(n):
            t = _logs.T0 + k * 100_000_000
            w.add_message(c_js, log_time=t, publish_time=t, data=json.dumps({"position": [0.1 * k, 1.0]}).encode())
            msg = {"timestamp": {"sec": t // 10**9, "nsec": t % 10**9}, "frame_id": "cam",
                   "data": base64.b64encode(jpegs[k]).decode(), "format": "jpeg"}
            w.add_message(c_img, log_time=t, publish_time=t, data=json.dumps(msg).encode())
        w.finish()
    return frames, jpegs


def test_json_mcap_camera_with_base64_images_to_lerobot(tmp_path):
    from prf.ingest._images import decode_compressed

    frames, jpegs = _json_camera_log(tmp_path / "log.mcap")
    report = prf.convert_log(tmp_path / "log.mcap", tmp_path / "conv", progress=False)
    assert report.complete
    t = pq.read_table(tmp_path / "conv" / report.topics["/camera/compressed"].file)
    assert t.column("data").to_pylist() == jpegs  # the bytes, not their base64 text
    root = prf.log_to_lerobot(tmp_path / "log.mcap", tmp_path / "ds", fps=10, state=["/joints/position"],
                              cameras={"observation.images.cam": "/camera/compressed"}, progress=False)
    ds = prf.open_dataset(root)
    assert len(ds) == 30 and ds.meta.video_keys == ["observation.images.cam"]
    got = ds.get_batch(np.arange(30))["observation.images.cam"]
    want = np.stack([decode_compressed(j, "jpeg", {}) for j in jpegs])
    assert got.shape == want.shape == (30, 32, 48, 3)
    err = np.abs(got.astype(int) - want.astype(int)).mean(axis=(1, 2, 3))
    assert err.max() < 8, err  # lossy video encode of the right frames
    # each frame is closest to its own source image, not a neighbour's
    d_next = np.abs(got[:-1].astype(int) - want[1:].astype(int)).mean(axis=(1, 2, 3))
    assert np.all(err[:-1] < d_next)


def test_base64_text_image_column_is_decoded_without_a_schema_hint():
    """A converted JSON topic whose schema did not declare base64 keeps the text; the image reader
    decodes it (and a text that is not base64 is a typed error naming topic and row)."""
    import base64

    import pyarrow as pa

    import _logs
    from prf.errors import DataFrameError
    from prf.ingest._images import image_reader

    img = _logs.image(3)
    table = pa.table({"data": [base64.b64encode(_logs.jpeg(img)).decode(), "not base64!"], "format": ["jpeg"] * 2})
    read = image_reader(table, "/cam")
    assert np.abs(read(0).astype(int) - img.astype(int)).mean() < 4
    with pytest.raises(DataFrameError, match="'/cam' row 1"):
        read(1)
