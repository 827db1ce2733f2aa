"""Generate small robot logs inside a test's tmp_path: ROS 2 bags (mcap / sqlite3 storage) and ROS 1
bags written with rosbags, MCAP files written with the mcap library (json, protobuf, ros2msg, ros1msg
encodings; zstd / lz4 / no chunk compression; with or without a summary section)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

JOINTS = ["shoulder", "elbow", "wrist"]
T0 = 1_700_000_000_000_000_000  # ns
H, W = 32, 48


def joint_positions(k: int) -> np.ndarray:
    """Joint positions of message k: linear in k (so linear resampling is exact)."""
    return np.array([0.01 * k, -0.02 * k + 1.0, 0.5 + 0.003 * k], dtype=np.float64)


def image(k: int) -> np.ndarray:
    """A smooth RGB test image (lossy codecs keep it close), different for every k."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.empty((H, W, 3), np.uint8)
    img[..., 0] = (100 + 80 * np.sin(xx / W * 6.28 + k * 0.2)).astype(np.uint8)
    img[..., 1] = (100 + 80 * np.cos(yy / H * 6.28 + k * 0.1)).astype(np.uint8)
    img[..., 2] = (60 + 4 * k) % 256
    return img


def jpeg(img: np.ndarray) -> bytes:
    import av

    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = img.shape[1], img.shape[0], "yuvj444p"
    ctx.time_base = __import__("fractions").Fraction(1, 30)
    ctx.options = {"qscale": "2"}
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj444p")
    out = b"".join(bytes(p) for p in ctx.encode(frame)) + b"".join(bytes(p) for p in ctx.encode(None))
    return out


def _header(store, t: int, frame: str = "base"):
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    extra = {"seq": 0} if "seq" in Header.__dataclass_fields__ else {}
    return Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id=frame, **extra)


def robot_messages(store, n_joint: int = 60, n_image: int = 20, joint_dt: int = 10_000_000,
                   image_dt: int = 33_000_000, image_offset: int = 3_000_000):
    """``[(topic, msgtype, t, msg)]`` of a small robot recording: joint states at 100 Hz, raw and JPEG
    camera images at ~30 Hz, a Twist command at 50 Hz."""
    JointState = store.types["sensor_msgs/msg/JointState"]
    Image = store.types["sensor_msgs/msg/Image"]
    CompressedImage = store.types["sensor_msgs/msg/CompressedImage"]
    Twist = store.types["geometry_msgs/msg/Twist"]
    Vector3 = store.types["geometry_msgs/msg/Vector3"]
    out = []
    for k in range(n_joint):
        t = T0 + k * joint_dt
        p = joint_positions(k)
        out.append(("/joint_states", "sensor_msgs/msg/JointState", t, JointState(
            header=_header(store, t), name=list(JOINTS), position=p, velocity=p * 2, effort=np.zeros(3))))
    for k in range(n_image):
        t = T0 + image_offset + k * image_dt
        img = image(k)
        out.append(("/camera/image_raw", "sensor_msgs/msg/Image", t, Image(
            header=_header(store, t, "cam"), height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
            data=img.reshape(-1))))
        out.append(("/camera/compressed", "sensor_msgs/msg/CompressedImage", t, CompressedImage(
            header=_header(store, t, "cam"), format="jpeg", data=np.frombuffer(jpeg(img), np.uint8))))
    for k in range(n_joint // 2):
        t = T0 + k * 2 * joint_dt
        out.append(("/cmd_vel", "geometry_msgs/msg/Twist", t, Twist(
            linear=Vector3(x=0.1 * k, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=-0.05 * k))))
    out.sort(key=lambda m: m[2])
    return out


def write_ros2_bag(path: Path, storage: str = "mcap", compression: str | None = None, **kw) -> list:
    """A rosbag2 folder (``mcap`` or ``sqlite3`` storage; ``compression`` None, ``"file"`` or
    ``"message"`` zstd) with :func:`robot_messages`; returns them."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    msgs = robot_messages(store, **kw)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    w = Writer(path, version=8, storage_plugin=plugin)
    if compression:
        w.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    with w:
        conns = {}
        for topic, typ, t, m in msgs:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=store)
            w.write(conns[topic], t, store.serialize_cdr(m, typ))
    return msgs


def write_ros1_bag(path: Path, compression: str | None = None, chunk_bytes: int | None = None, **kw) -> list:
    """A ROS 1 bag (``compression`` None, ``"bz2"`` or ``"lz4"``; chunks of about ``chunk_bytes``) with
    :func:`robot_messages`."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    msgs = robot_messages(get_typestore(Stores.ROS1_NOETIC), **kw)
    w = Writer(path)
    if chunk_bytes:
        w.chunk_threshold = chunk_bytes
    if compression:
        w.set_compression(getattr(Writer.CompressionFormat, compression.upper()))
    with w:
        conns = {}
        for topic, typ, t, m in msgs:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=store)
            w.write(conns[topic], t, store.serialize_ros1(m, typ))
    return msgs


def write_mcap(path: Path, encoding: str, *, compression: str = "zstd", summary: bool = True, n: int = 50,
               chunked: bool = True) -> list[dict]:
    """An MCAP file with one topic ``/pose`` of ``n`` messages in ``encoding`` (``json``, ``protobuf``,
    ``ros2msg``, ``ros1msg``); returns the messages as dicts (``t``, ``x``, ``y``, ``label``, ``vals``)."""
    from mcap.writer import CompressionType, IndexType, Writer

    comp = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}[compression]
    f = open(path, "wb")
    w = Writer(f, compression=comp, use_chunking=chunked, use_statistics=summary, use_summary_offsets=summary,
               index_types=IndexType.ALL if summary else IndexType.NONE, repeat_channels=summary,
               repeat_schemas=summary)
    w.start(profile="", library="prf-tests")
    msgs = [{"t": T0 + k * 5_000_000, "x": 0.5 * k, "y": -1.0 * k, "label": f"m{k}", "vals": [k, k + 1, k + 2]}
            for k in range(n)]
    if encoding == "json":
        sid = w.register_schema("Pose", "jsonschema", json.dumps({"type": "object", "properties": {
            "x": {"type": "number"}, "y": {"type": "number"}, "label": {"type": "string"}}}).encode())
        cid = w.register_channel("/pose", "json", sid)
        enc = [json.dumps({"pose": {"x": m["x"], "y": m["y"]}, "label": m["label"], "vals": m["vals"]}).encode()
               for m in msgs]
    elif encoding == "protobuf":
        cls, fds = _protobuf_pose()
        sid = w.register_schema("prftest.Pose", "protobuf", fds)
        cid = w.register_channel("/pose", "protobuf", sid)
        enc = []
        for m in msgs:
            p = cls(label=m["label"], vals=m["vals"])
            p.pos.x, p.pos.y = m["x"], m["y"]
            enc.append(p.SerializeToString())
    elif encoding in ("ros2msg", "ros1msg"):
        from rosbags.typesys import Stores, get_typestore

        text = "geometry_msgs/Point pos\nstring label\nint32[] vals\n" + "=" * 80 + \
            "\nMSG: geometry_msgs/Point\nfloat64 x\nfloat64 y\nfloat64 z\n"
        from rosbags.typesys import get_types_from_msg

        store = get_typestore(Stores.EMPTY)
        store.register(get_types_from_msg(text, "prftest/msg/Pose"))
        Pose = store.types["prftest/msg/Pose"]
        Point = store.types["geometry_msgs/msg/Point"]
        ros1 = encoding == "ros1msg"
        sid = w.register_schema("prftest/Pose" if ros1 else "prftest/msg/Pose", encoding, text.encode())
        cid = w.register_channel("/pose", "ros1" if ros1 else "cdr", sid)
        ser = store.serialize_ros1 if ros1 else store.serialize_cdr
        enc = [bytes(ser(Pose(pos=Point(x=m["x"], y=m["y"], z=0.0), label=m["label"],
                                  vals=np.array(m["vals"], np.int32)), "prftest/msg/Pose")) for m in msgs]
    else:
        raise ValueError(encoding)
    for k, (m, data) in enumerate(zip(msgs, enc)):
        w.add_message(cid, log_time=m["t"], data=data, publish_time=m["t"] - 1000, sequence=k)
    w.finish()
    f.close()
    return msgs


def _protobuf_pose():
    """A protobuf message class ``prftest.Pose {Point pos; string label; repeated int32 vals}`` built at
    run time, and its FileDescriptorSet bytes."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    fdp = descriptor_pb2.FileDescriptorProto(name="prftest_pose.proto", package="prftest", syntax="proto3")
    point = fdp.message_type.add(name="Point")
    for i, n in enumerate(["x", "y"], 1):
        point.field.add(name=n, number=i, type=descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
                        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pose = fdp.message_type.add(name="Pose")
    pose.field.add(name="pos", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                   type_name=".prftest.Point", label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pose.field.add(name="label", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pose.field.add(name="vals", number=3, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    cls = GetMessageClass(pool.FindMessageTypeByName("prftest.Pose"))
    fds = descriptor_pb2.FileDescriptorSet(file=[fdp]).SerializeToString()
    return cls, fds


def unindexed_copy(src: Path, dst: Path, cut: int | None = None) -> None:
    """A copy of a ROS 1 bag with index_pos zeroed (as a recording that was never closed), optionally
    cut to ``cut`` bytes."""
    data = bytearray(Path(src).read_bytes())
    key = b"index_pos="
    i = data.index(key) + len(key)
    data[i:i + 8] = b"\0" * 8
    if cut is not None:
        data = data[:cut]
    Path(dst).write_bytes(bytes(data))


_ = io
