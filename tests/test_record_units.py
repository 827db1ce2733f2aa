"""prf.record's parts without a broker: the bounded queue, episode segmentation, payload decoding,
the spool's torn-tail rule, and the fps grid the episodes are resampled onto."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from prf.errors import RecordError
from prf.ingest.to_lerobot import _episode_grids
from prf.record import Recorder
from prf.record._episode import Segmenter, parse_control
from prf.record._payload import PayloadError, decode_image, decode_json, protobuf_decoder
from prf.record._queue import BoundedQueue
from prf.record._session import parse_url
from prf.record._spool import END, MESSAGE, START, SpoolWriter, read_spool
from test_record import foxglove_image, test_images


def test_queue_refuses_exactly_when_full_and_blocks_for_block_s():
    q = BoundedQueue(3, 0.0)
    assert [q.put(i) for i in range(5)] == [True, True, True, False, False]
    assert q.get_batch(10, 0) == [0, 1, 2] and q.high_water == 3
    q = BoundedQueue(1, 0.3)
    assert q.put("a")
    t = time.monotonic()
    assert not q.put("b")
    assert time.monotonic() - t >= 0.29
    # backpressure: a consumer making room in time lets the blocked put through
    threading.Timer(0.05, lambda: q.get_batch(1, 0)).start()
    assert q.put("c")
    assert q.get_batch(5, 1) == ["c"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=200), st.integers(1, 8))
def test_queue_accounting(ops, size):
    """Every put is either queued (and got back in order) or refused: nothing lost, nothing duplicated."""
    q = BoundedQueue(size, 0.0)
    queued, refused, got, i = [], 0, [], 0
    for op in ops:
        if op == 0:
            got += q.get_batch(2, 0)
        else:
            if q.put(i):
                queued.append(i)
            else:
                refused += 1
            i += 1
    got += q.get_batch(10**6, 0)
    assert got == queued and len(queued) + refused == i


def test_control_messages():
    assert parse_control(b'{"command": "start", "task": "pick it"}') == ("start", "pick it")
    assert parse_control(b'{"event": "STOP"}') == ("stop", "")
    assert parse_control(b"start: put the cube") == ("start", "put the cube")
    assert parse_control(b"start push") == ("start", "push")
    assert parse_control(b" stop ") == ("stop", "")
    for bad in (b"go", b"{}", b"[1]", b"{bad"):
        with pytest.raises(PayloadError):
            parse_control(bad)


def test_segmenter_control_and_idle_gap():
    s = Segmenter(control=True, idle_gap_s=1.0, task="default")
    assert s.on_data(0.0) == [] and not s.active  # before start: outside an episode
    assert s.on_control(b"start: a") == [("start", "a")]
    assert s.on_data(1.0) == [] and s.tick(1.5) == []
    assert s.tick(2.1) == [("stop", "idle")] and not s.active
    assert s.on_data(2.2) == []  # control mode: data does not start an episode
    assert s.on_control(b"start") == [("start", "default")]
    assert s.on_control(b"start: b") == [("stop", "restarted"), ("start", "b")]
    assert s.on_control(b"stop") == [("stop", "control")] and s.on_control(b"stop") == []
    s = Segmenter(control=False, idle_gap_s=0.5, task="t")
    assert s.on_data(10.0) == [("start", "t")]
    assert s.on_data(10.4) == []
    assert s.on_data(11.0) == [("stop", "idle"), ("start", "t")]


def test_payloads():
    row, t, seq = decode_json(b'{"t": 5, "seq": 3, "q": [1, 2], "p": {"x": 1.5}}', "t", "seq")
    assert (row["q"], row["p"], t, seq) == ([1, 2], {"x": 1.5}, 5, 3)
    assert decode_json(b'{"t": 1.25}', "t", None)[1] == 1_250_000_000  # float seconds
    for bad, err in ((b"[1]", "object"), (b"{", "JSON"), (b'{"x": 1}', "no time field"), (b'{"t": "a"}', "not a number")):
        with pytest.raises(PayloadError, match=err):
            decode_json(bad, "t", None)
    with pytest.raises(PayloadError, match="not an integer"):
        decode_json(b'{"seq": 1.5}', None, "seq")
    jpegs, _ = test_images(2)
    assert decode_image(jpegs[0], "t", "seq") == ({"data": jpegs[0], "format": "jpeg"}, None, None)
    ts = 1_700_000_000_123_456_789
    row, t, seq = decode_image(foxglove_image(ts, jpegs[1], "front"), "t", "seq")
    assert row == {"data": jpegs[1], "format": "jpeg", "frame_id": "front"} and t == seq == ts
    assert decode_image(foxglove_image(ts, jpegs[1]), None, None)[1:] == (None, None)
    with pytest.raises(PayloadError):
        decode_image(b"\x12\x03abc", None, None)  # a CompressedImage whose data is no image
    with pytest.raises(PayloadError):
        decode_image(b"\xff\xff", None, None)


def test_protobuf_decoder():
    from google.protobuf import timestamp_pb2

    m = timestamp_pb2.Timestamp(seconds=3, nanos=7)
    assert protobuf_decoder(timestamp_pb2.Timestamp)(m.SerializeToString()) == 3_000_000_007


def test_spool_round_trip_and_torn_tail(tmp_path):
    p = tmp_path / "episode-000004.spool"
    w = SpoolWriter(p, "task one")
    w.record(MESSAGE, "/a", 11, b'{"x": 1}')
    w.record(MESSAGE, "/cam", 12, b"\xff\xd8\xff" + bytes(100))
    w.flush()
    good = p.stat().st_size
    w.record(MESSAGE, "/a", 13, b'{"x": 2}')
    w.abandon()
    with open(p, "r+b") as f:  # a kill in the middle of the last record
        f.truncate(p.stat().st_size - 3)
    recs, valid = read_spool(p)
    assert [(k, t, r) for k, t, r, _ in recs] == [(START, "", 0), (MESSAGE, "/a", 11), (MESSAGE, "/cam", 12)]
    assert recs[0][3] == b"task one" and valid == good
    w = SpoolWriter(p, valid_size=valid)  # resumed: the torn record is cut off
    w.record(MESSAGE, "/a", 14, b"{}")
    w.close("control")
    recs, _ = read_spool(p)
    assert [r[2] for r in recs] == [0, 11, 12, 14, 0] and recs[-1][0] == END and recs[-1][3] == b"control"
    (tmp_path / "bad.spool").write_bytes(b"nope")
    with pytest.raises(RecordError, match="not a prf MQTT spool"):
        read_spool(tmp_path / "bad.spool")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 5 * 10**10), st.sampled_from([1, 7, 10, 15, 24, 29, 30, 60, 1000]))
def test_fps_grid_has_every_frame_up_to_the_end(a, span, fps):
    """The episode grid a + floor(k * 1e9 / fps) holds exactly the frames <= the last time (the old
    formula lost the last frame when k * 1e9 / fps is not whole: 600 frames at 30 fps gave 599)."""
    (g,) = _episode_grids(a, a + span, fps, None)
    k = np.arange(len(g) + 1, dtype=np.int64)
    times = a + (k * 10**9) // fps
    assert (g == times[:-1]).all() and g[-1] <= a + span < times[-1]


def test_bad_options(tmp_path):
    a = parse_url("mqtt://h:1234")
    assert (a.host, a.port, a.transport, a.tls) == ("h", 1234, "tcp", False)
    assert (parse_url("h").host, parse_url("h").port) == ("h", 1883)
    assert (parse_url("mqtts://h").port, parse_url("mqtts://h").tls) == (8883, True)
    w = parse_url("wss://robot%40lab:s3cr%3At@broker.local/ws")
    assert (w.transport, w.tls, w.port, w.path, w.username, w.password) == ("websockets", True, 443, "/ws", "robot@lab", "s3cr:t")
    assert "s3cr" not in w.redacted and "s3cr" not in repr(w) and w.redacted == "wss://robot%40lab@broker.local:443/ws"
    assert parse_url("ws://h:9001").path == "/mqtt"
    for url, err in (("http://h", r"one of \['mqtt', 'mqtts', 'ssl', 'tcp', 'ws', 'wss'\]"), ("mqtt://", "no broker host"),
                     ("mqtt://h:x", "bad port"), ("http://u:topsecret@h", r"u:\*\*\*@h")):
        with pytest.raises(RecordError, match=err) as e:
            parse_url(url)
        assert "topsecret" not in str(e.value)
    for kw, err in (({"topics": []}, "at least one state topic"), ({"topics": ["/a/#"]}, "wildcards"),
                    ({"topics": ["/a"], "fps": 0}, "fps"), ({"topics": ["/a"], "actions": ["/b"], "cameras": {"c": "/b"}}, "twice"),
                    ({"topics": ["/a"], "control_topic": "/a"}, "control topic")):
        with pytest.raises(RecordError, match=err):
            Recorder("mqtt://127.0.0.1:1", tmp_path / "ds", **kw)
    with pytest.raises(RecordError, match="cannot connect"):
        Recorder("mqtt://127.0.0.1:1", tmp_path / "ds", topics=["/a"]).start()
    assert not (tmp_path / "ds").exists()
