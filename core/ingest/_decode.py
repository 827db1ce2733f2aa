"""Message decoders by encoding: ROS 2 CDR and ROS 1 (``rosbags``), protobuf (``mcap-protobuf-support``),
JSON. Each returns a :class:`TopicDecoder` (a ``decode(bytes) -> object`` function and the
:mod:`._columns` flattener for its messages) or raises :class:`SkipTopic` with the reason the topic
cannot be decoded, which the converter reports (the topic is skipped, the rest converted).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from ._columns import Flattener, JsonFlattener, ProtobufFlattener, RosFlattener, UnsupportedSchemaError

#: reason codes of skipped messages (keys of a topic report's ``skipped``).
NOT_SELECTED = "not_selected"
OUTSIDE_TIME_RANGE = "outside_time_range"
UNKNOWN_ENCODING = "unknown_encoding"
SCHEMA_ERROR = "schema_error"
NO_DEFINITION = "no_definition"
DECODE_ERROR = "decode_error"
UNREADABLE = "unreadable"

#: message encodings prf decodes, for error messages.
KNOWN_ENCODINGS = "json, protobuf, cdr (ros2msg/ros2idl), ros1 (ros1msg)"


class SkipTopic(Exception):
    """A topic cannot be decoded: ``reason`` is one of the codes above, ``detail`` says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class TopicDecoder:
    decode: Callable[[bytes], Any]
    flattener: Flattener


class DecoderCache:
    """Builds decoders, sharing one per distinct (encoding, type, schema) across channels/files."""

    def __init__(self, ros2_fallback_store: str | None = None):
        self._cache: dict[tuple, TopicDecoder | SkipTopic] = {}
        self._ros2_fallback_store = ros2_fallback_store

    def get(self, encoding: str, schema_encoding: str | None, type_name: str, schema: bytes | str | None
            ) -> TopicDecoder:
        data = schema.encode() if isinstance(schema, str) else (schema or b"")
        key = (encoding, schema_encoding or "", type_name, hashlib.sha1(data).hexdigest())
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = self._make(encoding, schema_encoding or "", type_name, data)
            except SkipTopic as e:
                hit = e
            self._cache[key] = hit
        if isinstance(hit, SkipTopic):
            raise hit
        return hit

    def builtin(self, encoding: str, type_name: str) -> TopicDecoder:
        """A decoder from rosbags' built-in definitions of ``type_name`` (ROS encodings only).

        Raises:
            SkipTopic: not a ROS encoding, or the type is not built in.
        """
        enc = encoding.lower()
        if enc == "cdr":
            return _ros_builtin_decoder(type_name, self._ros2_fallback_store or "LATEST", ros1=False)
        if enc == "ros1":
            return _ros_builtin_decoder(type_name, "ROS1_NOETIC", ros1=True)
        raise SkipTopic(UNKNOWN_ENCODING, f"no built-in definitions for encoding {encoding!r}")

    def _make(self, encoding: str, schema_encoding: str, type_name: str, data: bytes) -> TopicDecoder:
        enc = encoding.lower()
        if enc == "json":
            return TopicDecoder(json.loads, JsonFlattener(data if schema_encoding == "jsonschema" else None))
        if enc == "protobuf":
            return _protobuf_decoder(schema_encoding, type_name, data)
        if enc == "cdr":
            if schema_encoding in ("ros2msg", "ros2idl") and not data.strip() and self._ros2_fallback_store:
                try:  # an empty definition: the type is empty, or the log left it out
                    return _ros_builtin_decoder(type_name, self._ros2_fallback_store, ros1=False)
                except SkipTopic:
                    pass
            if schema_encoding in ("ros2msg", "ros2idl"):
                return _ros_decoder(type_name, schema_encoding, data.decode("utf-8", "replace"), ros1=False)
            if schema_encoding == "" and self._ros2_fallback_store:
                return _ros_builtin_decoder(type_name, self._ros2_fallback_store, ros1=False)
            raise SkipTopic(UNKNOWN_ENCODING, f"CDR messages with schema encoding {schema_encoding!r} "
                                              f"(expected ros2msg or ros2idl)")
        if enc == "ros1":
            if schema_encoding == "ros1msg" and not data.strip():
                try:
                    return _ros_builtin_decoder(type_name, "ROS1_NOETIC", ros1=True)
                except SkipTopic:
                    pass
            if schema_encoding == "ros1msg":
                return _ros_decoder(type_name, "ros1msg", data.decode("utf-8", "replace"), ros1=True)
            raise SkipTopic(UNKNOWN_ENCODING, f"ROS 1 messages with schema encoding {schema_encoding!r} "
                                              f"(expected ros1msg)")
        raise SkipTopic(UNKNOWN_ENCODING, f"message encoding {encoding!r} (schema encoding {schema_encoding!r}) "
                                          f"is not one prf decodes ({KNOWN_ENCODINGS})")


# ---- ROS ---------------------------------------------------------------------------------------------
_SEPARATOR = re.compile(r"^={10,}\s*$", re.M)


def _normalize_type(name: str) -> str:
    from rosbags.typesys.msg import normalize_msgtype

    return normalize_msgtype(name)


def _ros_types(type_name: str, fmt: str, text: str) -> dict:
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    if fmt == "ros2idl":
        typs: dict = {}
        sep = "=" * 80 + "\n"
        if text.startswith(f"{sep}IDL: "):
            for part in text.split(sep)[1:]:
                _hdr, idl = part.split("\n", 1)
                typs.update(get_types_from_idl(idl))
        else:
            typs.update(get_types_from_idl(text))
        return typs
    if fmt == "ros1msg":
        text = _roslib_header_as_std_msgs(text)
    try:
        return get_types_from_msg(text, type_name)
    except Exception as first:  # noqa: BLE001 - rosbags raises several parser error types
        event = _service_event_types(type_name, text)
        if event is None:
            raise first
        return event


_ROSLIB_HEADER_MSG = re.compile(r"^MSG:\s*roslib/Header\s*$", re.M)
_ROSLIB_HEADER_FIELD = re.compile(r"^(\s*)roslib/(?:msg/)?Header(?=[\s\[])", re.M)


def _roslib_header_as_std_msgs(text: str) -> str:
    """ROS 1 bags recorded before ROS Electric embed ``MSG: roslib/Header`` (where ``Header`` lived then)
    while a bare ``Header`` field means ``std_msgs/Header``. The two are the same message (seq, stamp,
    frame_id; same MD5), which ROS itself renamed: read the old one as ``std_msgs/Header``."""
    if "roslib/" not in text:
        return text
    has_std = re.search(r"^MSG:\s*std_msgs/Header\s*$", text, re.M) is not None
    if not has_std:
        text = _ROSLIB_HEADER_MSG.sub("MSG: std_msgs/Header", text)
    return _ROSLIB_HEADER_FIELD.sub(r"\1std_msgs/Header", text)


def _service_event_types(type_name: str, text: str) -> dict | None:
    """ROS 2 service-event topics (``pkg/srv/Name_Event``) are recorded with the service's definition
    (request ``---`` response) as their schema. Build the event type as rosidl generates it:
    ``service_msgs/msg/ServiceEventInfo info``, ``Name_Request[<=1] request``,
    ``Name_Response[<=1] response``."""
    from rosbags.interfaces import Nodetype
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    m = re.fullmatch(r"(.+)/srv/(.+)_Event", type_name)
    if m is None:
        return None
    pieces = _SEPARATOR.split(text, maxsplit=1)
    main, deps = pieces[0], ("=" * 80 + pieces[1] if len(pieces) > 1 else "")
    halves = re.split(r"^---\s*$", main, flags=re.M)
    if len(halves) != 2:
        return None
    pkg, name = m.group(1), m.group(2)
    req, resp = f"{pkg}/srv/{name}_Request", f"{pkg}/srv/{name}_Response"
    typs: dict = {}
    typs.update(get_types_from_msg(halves[0].strip("\n") + "\n" + deps, req))
    typs.update(get_types_from_msg(halves[1].strip("\n") + "\n" + deps, resp))
    store = get_typestore(Stores.LATEST).fielddefs
    info = "service_msgs/msg/ServiceEventInfo"
    typs[info] = store[info]
    typs[type_name] = ([], [
        ("info", (Nodetype.NAME, info)),
        ("request", (Nodetype.SEQUENCE, ((Nodetype.NAME, req), 1))),
        ("response", (Nodetype.SEQUENCE, ((Nodetype.NAME, resp), 1))),
    ])
    return typs


def _ros_decoder(type_name: str, fmt: str, text: str, *, ros1: bool) -> TopicDecoder:
    from rosbags.typesys import Stores, get_typestore

    msgtype = _normalize_type(type_name)
    try:
        typs = _ros_types(msgtype, fmt, text)
        store = get_typestore(Stores.EMPTY)
        store.register(typs)
        flattener = RosFlattener(store.fielddefs, msgtype)
    except UnsupportedSchemaError as e:
        raise SkipTopic(SCHEMA_ERROR, f"{fmt} schema of {type_name}: {e}") from None
    except Exception as e:  # noqa: BLE001 - rosbags' parser raises several error types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SkipTopic(SCHEMA_ERROR, f"{fmt} schema of {type_name} cannot be parsed by rosbags "
                                      f"({type(e).__name__}: {first})") from None
    if msgtype not in store.fielddefs:
        raise SkipTopic(SCHEMA_ERROR, f"{fmt} schema does not define {type_name}")
    deser = store.deserialize_ros1 if ros1 else store.deserialize_cdr
    return TopicDecoder(lambda data: deser(data, msgtype), flattener)


def _ros_builtin_decoder(type_name: str, store_name: str, *, ros1: bool) -> TopicDecoder:
    """A decoder from rosbags' built-in type definitions (bags that store no definitions)."""
    from rosbags.typesys import Stores, get_typestore

    msgtype = _normalize_type(type_name)
    store = get_typestore(Stores[store_name])
    if msgtype not in store.fielddefs:
        raise SkipTopic(NO_DEFINITION, f"the log holds no message definition for {type_name}, and rosbags' "
                                       f"built-in {store_name} types do not include it")
    try:
        flattener = RosFlattener(store.fielddefs, msgtype)
    except UnsupportedSchemaError as e:
        raise SkipTopic(SCHEMA_ERROR, f"built-in definition of {type_name}: {e}") from None
    deser = store.deserialize_ros1 if ros1 else store.deserialize_cdr
    return TopicDecoder(lambda data: deser(data, msgtype), flattener)


# ---- protobuf ----------------------------------------------------------------------------------------
def _protobuf_decoder(schema_encoding: str, type_name: str, data: bytes) -> TopicDecoder:
    if schema_encoding != "protobuf":
        raise SkipTopic(UNKNOWN_ENCODING, f"protobuf messages with schema encoding {schema_encoding!r} "
                                          f"(expected protobuf)")
    try:
        from mcap.records import Schema
        from mcap_protobuf.decoder import DecoderFactory
    except ImportError as e:  # pragma: no cover - part of the ingest extra
        raise SkipTopic(UNKNOWN_ENCODING, f"protobuf decoding needs mcap-protobuf-support ({e})") from None
    try:
        decode = DecoderFactory().decoder_for("protobuf", Schema(id=1, name=type_name, encoding="protobuf", data=data))
        if decode is None:
            raise ValueError("no decoder")
        descriptor = type(decode(b"")).DESCRIPTOR
        flattener = ProtobufFlattener(descriptor)
    except Exception as e:  # noqa: BLE001 - protobuf raises many types for bad descriptor sets
        raise SkipTopic(SCHEMA_ERROR, f"protobuf schema {type_name}: {type(e).__name__}: {e}") from None
    return TopicDecoder(decode, flattener)
