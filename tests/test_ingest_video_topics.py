"""Compressed-video image topics (``foxglove.CompressedVideo``: one H.264/VP9 frame per message) in
``prf.log_to_lerobot``: decoded in order, each frame lands on the dataset frames whose time follows
its message, and a stream that cannot be decoded frame for frame is a clear error.

The log is made here: an MCAP with a protobuf ``foxglove.CompressedVideo`` topic (the schema built at
run time with the fields Foxglove defines) whose frames are encoded by PyAV with no B-frames, and a
``/joint`` topic for the state.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import prf
from prf.errors import DataFrameError

pytest.importorskip("mcap_protobuf", reason="needs the ingest extra")

T0 = 1_700_000_000_000_000_000
FPS = 10
W, H, N = 96, 64, 40


def _frames() -> np.ndarray:
    """``uint8 [N, H, W, 3]``: smooth images that change a lot from frame to frame (a moving bar)."""
    y, x = np.mgrid[0:H, 0:W]
    out = np.empty((N, H, W, 3), np.uint8)
    for k in range(N):
        bar = ((x - 8 * k) % W < 24).astype(np.float32)
        out[k, ..., 0] = (40 + 180 * bar).astype(np.uint8)
        out[k, ..., 1] = (x * 2 + k * 29) % 256
        out[k, ..., 2] = (y * 3 + 60).astype(np.uint8)
    return out


def _encode(frames: np.ndarray, codec: str) -> list[bytes]:
    """One packet per frame, no B-frames, keyframe every 10 frames (as a camera driver streams)."""
    import av

    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = W, H, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.gop_size = 10
    ctx.max_b_frames = 0
    if codec == "libx264":
        ctx.options = {"tune": "zerolatency", "bframes": "0", "crf": "12"}
    elif codec == "libvpx-vp9":
        ctx.options = {"lag-in-frames": "0", "deadline": "realtime", "crf": "10", "b": "0"}
    packets: list[bytes] = []
    for k, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
        vf.pts = k
        packets += [bytes(p) for p in ctx.encode(vf)]
    packets += [bytes(p) for p in ctx.encode(None)]
    assert len(packets) == len(frames)
    return packets


def _video_message_class():
    """``foxglove.CompressedVideo {Timestamp timestamp = 1; string frame_id = 2; bytes data = 3;
    string format = 4}`` and its FileDescriptorSet (Timestamp as google.protobuf.Timestamp)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
    from google.protobuf.message_factory import GetMessageClass

    F = descriptor_pb2.FieldDescriptorProto
    ts_file = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts_file)
    fdp = descriptor_pb2.FileDescriptorProto(name="foxglove/CompressedVideo.proto", package="foxglove",
                                             syntax="proto3", dependency=[ts_file.name])
    m = fdp.message_type.add(name="CompressedVideo")
    m.field.add(name="timestamp", number=1, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                label=F.LABEL_OPTIONAL)
    m.field.add(name="frame_id", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="data", number=3, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    m.field.add(name="format", number=4, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(ts_file)
    pool.Add(fdp)
    cls = GetMessageClass(pool.FindMessageTypeByName("foxglove.CompressedVideo"))
    return cls, descriptor_pb2.FileDescriptorSet(file=[ts_file, fdp]).SerializeToString()


def write_video_log(path: Path, packets: list[bytes], fmt: str) -> None:
    import json

    from mcap.writer import Writer

    cls, fds = _video_message_class()
    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="", library="prf-tests")
        vid = w.register_channel("/camera/video", "protobuf", w.register_schema("foxglove.CompressedVideo",
                                                                                "protobuf", fds))
        jid = w.register_channel("/joint", "json", w.register_schema("Joint", "jsonschema", json.dumps(
            {"type": "object", "properties": {"position": {"type": "number"}}}).encode()))
        period = 1_000_000_000 // FPS
        for k, data in enumerate(packets):
            t = T0 + k * period
            msg = cls(frame_id="cam", data=data, format=fmt)
            msg.timestamp.seconds, msg.timestamp.nanos = divmod(t, 1_000_000_000)
            w.add_message(vid, log_time=t, publish_time=t, data=msg.SerializeToString(), sequence=k)
            w.add_message(jid, log_time=t, publish_time=t, data=json.dumps({"position": 0.1 * k}).encode(),
                          sequence=k)
        w.finish()


@pytest.mark.parametrize("codec,fmt", [("libx264", "h264"), ("libvpx-vp9", "vp9")])
def test_compressed_video_topic_becomes_a_camera(tmp_path, codec, fmt):
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    frames = _frames()
    packets = _encode(frames, codec)
    log = tmp_path / "video.mcap"
    write_video_log(log, packets, fmt)
    root = prf.log_to_lerobot(log, tmp_path / "ds", fps=FPS, state=["/joint/position"],
                              cameras={"observation.images.front": "/camera/video"}, progress=False)
    ds = prf.open_dataset(root)
    assert len(ds) == N
    got = ds.get_batch(np.arange(N))
    np.testing.assert_allclose(got["observation.state"].reshape(N), 0.1 * np.arange(N), rtol=1e-6)
    cam = got["observation.images.front"].astype(np.int16)
    err = np.abs(cam - frames.astype(np.int16)).reshape(N, -1).mean(1)
    # two lossy encodes (the log's, then the dataset's): close to frame k, far from its neighbours
    assert err.max() < 12, err
    shifted = np.abs(cam[1:] - frames[:-1].astype(np.int16)).reshape(N - 1, -1).mean(1)
    assert (shifted > err[1:] + 5).all(), "a frame landed on another frame's time"


def test_video_stream_that_does_not_start_at_a_keyframe_is_an_error(tmp_path):
    packets = _encode(_frames(), "libx264")
    log = tmp_path / "cut.mcap"
    write_video_log(log, packets[3:], "h264")  # the recording began mid-GOP
    with pytest.raises(DataFrameError, match="/camera/video"):
        prf.log_to_lerobot(log, tmp_path / "ds", fps=FPS, state=["/joint/position"],
                           cameras={"observation.images.front": "/camera/video"}, progress=False)
    assert not (tmp_path / "ds").exists()
