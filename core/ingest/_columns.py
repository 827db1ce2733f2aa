"""Flatten decoded messages into Arrow columns.

One *flattener* per output topic turns decoded messages into rows (cheap, per message) and rows into
an Arrow table (per batch). Nested message fields become dotted columns (``pose.position.x``); arrays
become ``fixed_size_list`` (fixed length in the schema) or ``list`` (variable length); variable
``uint8``/``byte``/``char`` arrays (image and point-cloud payloads) become ``binary``; arrays of
messages become ``list<struct>``.

- :class:`RosFlattener`: ROS 1 / ROS 2 messages deserialized by ``rosbags`` (schema known up front
  from the message definition, so even a topic without messages gets its columns).
- :class:`ProtobufFlattener`: protobuf messages (schema from the message descriptor).
- :class:`JsonFlattener`: JSON messages (schema inferred from the values, with ``jsonschema`` type
  hints where the schema gives them; batches are unified when a topic ends).
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

#: the two time columns every converted topic starts with (int64 nanoseconds).
TIME_COLUMNS = ("log_time", "publish_time")


class Flattener:
    """Base: ``row(msg)`` per message, ``to_table(rows)`` per batch.

    ``schema`` is the Arrow schema of the message columns when it is known before any message is seen,
    else ``None`` (inferred per batch; the sink unifies the batches).
    """

    schema: pa.Schema | None = None

    def row(self, msg: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def to_table(self, rows: Sequence[Any]) -> pa.Table:  # pragma: no cover - interface
        raise NotImplementedError


def _safe_name(name: str) -> str:
    return f"msg.{name}" if name in TIME_COLUMNS else name


def _rows_or_drop(rows: Sequence[Any], build: Callable[[Sequence[Any]], pa.Table]
                  ) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Build a table from ``rows``; when the batch fails, find the rows that fail on their own and drop
    them. Returns the table and ``[(row position, error)]`` of the dropped rows."""
    try:
        return build(rows), []
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as first:
        good, bad = [], []
        for i, r in enumerate(rows):
            try:
                build([r])
                good.append(r)
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as e:
                bad.append((i, f"{type(e).__name__}: {e}"))
        if not bad:  # the batch fails but no single row does: not a per-message problem
            raise first
        return build(good), bad


# ---- ROS (rosbags) ---------------------------------------------------------------------------------
_ROS_BASE: dict[str, tuple[pa.DataType, Any]] = {
    # rosbags deserializes 'byte' as int8 and 'char' as uint8 (ROS 1 semantics, kept for ROS 2)
    "bool": (pa.bool_(), np.bool_),
    "byte": (pa.int8(), np.int8),
    "char": (pa.uint8(), np.uint8),
    "octet": (pa.uint8(), np.uint8),
    "int8": (pa.int8(), np.int8),
    "uint8": (pa.uint8(), np.uint8),
    "int16": (pa.int16(), np.int16),
    "uint16": (pa.uint16(), np.uint16),
    "int32": (pa.int32(), np.int32),
    "uint32": (pa.uint32(), np.uint32),
    "int64": (pa.int64(), np.int64),
    "uint64": (pa.uint64(), np.uint64),
    "float32": (pa.float32(), np.float32),
    "float64": (pa.float64(), np.float64),
    "string": (pa.string(), None),
    "wstring": (pa.string(), None),
}
_BLOB_BASES = {"uint8", "byte", "char", "octet"}
_NODE_BASE, _NODE_NAME, _NODE_ARRAY, _NODE_SEQUENCE = 1, 2, 3, 4


class UnsupportedSchemaError(Exception):
    """A message definition uses a construct prf does not flatten (reported as a schema error)."""


def _ros_fields(fielddefs: dict, msgtype: str) -> list[tuple[str, tuple]]:
    try:
        return list(fielddefs[msgtype][1])
    except KeyError:
        raise UnsupportedSchemaError(f"type {msgtype!r} is not defined") from None


def _base(details: Any) -> str:
    name = details[0] if isinstance(details, tuple) else details
    return str(name)


def _ros_struct_type(fielddefs: dict, msgtype: str, seen: tuple[str, ...] = ()) -> pa.DataType:
    if msgtype in seen:
        raise UnsupportedSchemaError(f"recursive message type {msgtype!r}")
    fields = []
    for name, desc in _ros_fields(fielddefs, msgtype):
        t = _ros_value_type(fielddefs, desc, seen + (msgtype,))
        if t is not None:
            fields.append(pa.field(name, t))
    return pa.struct(fields) if fields else None  # type: ignore[return-value]


def _ros_value_type(fielddefs: dict, desc: tuple, seen: tuple[str, ...] = ()) -> pa.DataType | None:
    """Arrow type of a field value (inside a struct); ``None`` for an empty message type."""
    node, details = int(desc[0]), desc[1]
    if node == _NODE_BASE:
        base = _base(details)
        if base not in _ROS_BASE:
            raise UnsupportedSchemaError(f"primitive type {base!r}")
        return _ROS_BASE[base][0]
    if node == _NODE_NAME:
        return _ros_struct_type(fielddefs, details, seen)
    sub, length = details
    if node == _NODE_SEQUENCE and int(sub[0]) == _NODE_BASE and _base(sub[1]) in _BLOB_BASES:
        return pa.binary()
    inner = _ros_value_type(fielddefs, sub, seen)
    if inner is None:
        return None
    return pa.list_(inner, int(length)) if node == _NODE_ARRAY else pa.list_(inner)


def _ros_to_py(fielddefs: dict, desc: tuple) -> Callable[[Any], Any]:
    """A converter from a rosbags value to a Python value Arrow accepts for :func:`_ros_value_type`."""
    node, details = int(desc[0]), desc[1]
    if node == _NODE_BASE:
        return lambda v: v
    if node == _NODE_NAME:
        convs = [(name, _ros_to_py(fielddefs, d)) for name, d in _ros_fields(fielddefs, details)
                 if _ros_value_type(fielddefs, d) is not None]
        return lambda v: {name: conv(getattr(v, name)) for name, conv in convs}
    sub, _length = details
    if node == _NODE_SEQUENCE and int(sub[0]) == _NODE_BASE and _base(sub[1]) in _BLOB_BASES:
        return _to_bytes
    if int(sub[0]) == _NODE_BASE:
        return lambda v: v.tolist() if isinstance(v, np.ndarray) else list(v)
    conv = _ros_to_py(fielddefs, sub)
    return lambda v: [conv(x) for x in v]


def _to_bytes(v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, np.ndarray):
        return v.tobytes()
    if isinstance(v, memoryview):
        return v.tobytes()
    return bytes(v)


class _Leaf:
    __slots__ = ("name", "type", "kind", "conv", "np_dtype", "length")

    def __init__(self, name: str, type_: pa.DataType, kind: str, conv: Callable[[Any], Any] | None = None,
                 np_dtype: Any = None, length: int = 0):
        self.name, self.type, self.kind, self.conv = name, type_, kind, conv
        self.np_dtype, self.length = np_dtype, length


def _build_column(leaf: _Leaf, values: Sequence[Any]) -> pa.Array:
    kind = leaf.kind
    if kind == "scalar":
        return pa.array(values, type=leaf.type)
    if kind == "fixed_num":
        n = leaf.length
        if values:
            arr = np.stack([np.asarray(v, dtype=leaf.np_dtype) for v in values])
        else:
            arr = np.empty((0, n), dtype=leaf.np_dtype)
        if arr.shape[1:] != (n,):
            raise ValueError(f"column {leaf.name!r}: expected {n} values per message, got {arr.shape[1:]}")
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1), type=leaf.type.value_type), n)
    if kind == "var_num":
        parts = [np.asarray(v, dtype=leaf.np_dtype).reshape(-1) for v in values]
        lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate(parts) if parts else np.empty(0, dtype=leaf.np_dtype)
        if offsets[-1] >= 2**31:
            raise ValueError(f"column {leaf.name!r}: a batch holds more than 2**31 values")
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat, type=leaf.type.value_type))
    if kind == "binary":
        return pa.array([_to_bytes(v) for v in values], type=pa.binary())
    # "py": values converted to Python objects first
    conv = leaf.conv
    return pa.array([conv(v) for v in values], type=leaf.type)


class RosFlattener(Flattener):
    """Flatten rosbags-deserialized ROS messages of type ``msgtype`` (``pkg/msg/Name``).

    Args:
        fielddefs: the rosbags typestore's ``fielddefs`` (``{type: (constants, fields)}``).
        msgtype: the message type.

    Raises:
        UnsupportedSchemaError: the definition is recursive or names an unknown type.
    """

    def __init__(self, fielddefs: dict, msgtype: str):
        self.msgtype = msgtype
        self.leaves: list[_Leaf] = []
        paths: list[str] = []
        self._walk(fielddefs, msgtype, "", paths, ())
        self.schema = pa.schema([pa.field(leaf.name, leaf.type) for leaf in self.leaves])
        if len(paths) == 0:
            self._get: Callable[[Any], tuple] = lambda m: ()
        elif len(paths) == 1:
            g = operator.attrgetter(paths[0])
            self._get = lambda m: (g(m),)
        else:
            self._get = operator.attrgetter(*paths)

    def _walk(self, fielddefs: dict, msgtype: str, prefix: str, paths: list[str], seen: tuple[str, ...]) -> None:
        if msgtype in seen:
            raise UnsupportedSchemaError(f"recursive message type {msgtype!r}")
        for name, desc in _ros_fields(fielddefs, msgtype):
            node, details = int(desc[0]), desc[1]
            col = prefix + name
            path = col  # attribute path == dotted column name before renaming
            if node == _NODE_NAME:
                self._walk(fielddefs, details, col + ".", paths, seen + (msgtype,))
                continue
            t = _ros_value_type(fielddefs, desc, seen + (msgtype,))
            if t is None:  # array of empty messages: nothing to store
                continue
            if node == _NODE_BASE:
                leaf = _Leaf(_safe_name(col), t, "scalar")
            else:
                sub, length = details
                sub_base = _base(sub[1]) if int(sub[0]) == _NODE_BASE else None
                if pa.types.is_binary(t):
                    leaf = _Leaf(_safe_name(col), t, "binary")
                elif sub_base is not None and _ROS_BASE[sub_base][1] is not None:
                    np_dtype = _ROS_BASE[sub_base][1]
                    if node == _NODE_ARRAY:
                        leaf = _Leaf(_safe_name(col), t, "fixed_num", np_dtype=np_dtype, length=int(length))
                    else:
                        leaf = _Leaf(_safe_name(col), t, "var_num", np_dtype=np_dtype)
                else:
                    leaf = _Leaf(_safe_name(col), t, "py", conv=_ros_to_py(fielddefs, desc))
            self.leaves.append(leaf)
            paths.append(path)

    def row(self, msg: Any) -> tuple:
        return self._get(msg)

    def to_table(self, rows: Sequence[tuple]) -> tuple[pa.Table, list[tuple[int, str]]]:
        return _rows_or_drop(rows, self._build)

    def _build(self, rows: Sequence[tuple]) -> pa.Table:
        cols = list(zip(*rows)) if rows else [()] * len(self.leaves)
        arrays = [_build_column(leaf, list(c)) for leaf, c in zip(self.leaves, cols)]
        return pa.Table.from_arrays(arrays, schema=self.schema)  # no columns: the sink keeps the times


# ---- protobuf ----------------------------------------------------------------------------------------
def _pb_scalar_type(fd: Any) -> pa.DataType:
    from google.protobuf.descriptor import FieldDescriptor as F

    return {
        F.TYPE_DOUBLE: pa.float64(), F.TYPE_FLOAT: pa.float32(),
        F.TYPE_INT64: pa.int64(), F.TYPE_SINT64: pa.int64(), F.TYPE_SFIXED64: pa.int64(),
        F.TYPE_UINT64: pa.uint64(), F.TYPE_FIXED64: pa.uint64(),
        F.TYPE_INT32: pa.int32(), F.TYPE_SINT32: pa.int32(), F.TYPE_SFIXED32: pa.int32(),
        F.TYPE_UINT32: pa.uint32(), F.TYPE_FIXED32: pa.uint32(),
        F.TYPE_BOOL: pa.bool_(), F.TYPE_STRING: pa.string(), F.TYPE_BYTES: pa.binary(), F.TYPE_ENUM: pa.int32(),
    }[fd.type]


def _pb_is_message(fd: Any) -> bool:
    from google.protobuf.descriptor import FieldDescriptor as F

    return fd.type in (F.TYPE_MESSAGE, F.TYPE_GROUP)


def _pb_repeated(fd: Any) -> bool:
    rep = getattr(fd, "is_repeated", None)
    if rep is not None:
        return bool(rep() if callable(rep) else rep)
    from google.protobuf.descriptor import FieldDescriptor as F

    return fd.label == F.LABEL_REPEATED


def _pb_has_presence(fd: Any) -> bool:
    hp = getattr(fd, "has_presence", None)
    if hp is not None:
        return bool(hp() if callable(hp) else hp)
    return fd.containing_oneof is not None or _pb_is_message(fd)


def _pb_struct_type(desc: Any, seen: tuple[str, ...]) -> pa.DataType | None:
    if desc.full_name in seen:
        return None  # recursive: stored as JSON text by the caller
    fields = []
    for fd in desc.fields:
        t = _pb_value_type(fd, seen + (desc.full_name,))
        fields.append(pa.field(fd.name, t))
    return pa.struct(fields) if fields else None


def _pb_value_type(fd: Any, seen: tuple[str, ...]) -> pa.DataType:
    if _pb_is_message(fd):
        inner = _pb_struct_type(fd.message_type, seen)
        inner = pa.string() if inner is None else inner
    else:
        inner = _pb_scalar_type(fd)
    return pa.list_(inner) if _pb_repeated(fd) else inner


def _pb_to_py(fd: Any, seen: tuple[str, ...]) -> Callable[[Any], Any]:
    """Converter of one field value (already fetched with getattr) to Arrow-ready Python."""
    if _pb_is_message(fd):
        desc = fd.message_type
        if desc.full_name in seen or not desc.fields:
            from google.protobuf import json_format

            def conv_msg(m: Any) -> Any:
                return json_format.MessageToJson(m, preserving_proto_field_name=True, indent=None)
        else:
            subs = [(f.name, f, _pb_to_py(f, seen + (desc.full_name,))) for f in desc.fields]

            def conv_msg(m: Any) -> Any:
                out = {}
                for name, f, c in subs:
                    if _pb_is_message(f) and not _pb_repeated(f) and not m.HasField(name):
                        out[name] = None
                    else:
                        out[name] = c(getattr(m, name))
                return out
        if _pb_repeated(fd):
            if desc.GetOptions().map_entry:
                val_fd = desc.fields_by_name["value"]
                vconv = _pb_to_py(val_fd, seen + (desc.full_name,))
                return lambda m: [{"key": k, "value": vconv(v)} for k, v in m.items()]
            return lambda seq: [conv_msg(x) for x in seq]
        return conv_msg
    if _pb_repeated(fd):
        return list
    return lambda v: v


class ProtobufFlattener(Flattener):
    """Flatten protobuf messages described by ``descriptor`` (a ``google.protobuf`` Descriptor).

    Singular sub-messages flatten to dotted columns (null when the sub-message is not set), fields with
    presence are null when unset, repeated fields become lists (of structs for messages; maps become
    ``list<struct<key, value>>``), enums their ``int32`` number, recursive message types JSON text.
    """

    def __init__(self, descriptor: Any):
        self.leaves: list[tuple[str, pa.DataType, Callable[[Any], Any]]] = []
        self._walk(descriptor, "", [], ())
        self.schema = pa.schema([pa.field(n, t) for n, t, _ in self.leaves])

    def _walk(self, desc: Any, prefix: str, path: list[Any], seen: tuple[str, ...]) -> None:
        for fd in desc.fields:
            col = prefix + fd.name
            if _pb_is_message(fd) and not _pb_repeated(fd) and fd.message_type.full_name not in seen \
                    and fd.message_type.fields:
                self._walk(fd.message_type, col + ".", path + [fd], seen + (desc.full_name,))
                continue
            t = _pb_value_type(fd, seen + (desc.full_name,))
            conv = _pb_to_py(fd, seen + (desc.full_name,))
            self.leaves.append((_safe_name(col), t, self._getter(path + [fd], conv)))

    @staticmethod
    def _getter(path: list[Any], conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
        *parents, leaf = path
        leaf_presence = _pb_has_presence(leaf) and not _pb_repeated(leaf)

        def get(m: Any) -> Any:
            for fd in parents:
                if not m.HasField(fd.name):
                    return None
                m = getattr(m, fd.name)
            if leaf_presence and not m.HasField(leaf.name):
                return None
            return conv(getattr(m, leaf.name))

        return get

    def row(self, msg: Any) -> tuple:
        return tuple(g(msg) for _, _, g in self.leaves)

    def to_table(self, rows: Sequence[tuple]) -> tuple[pa.Table, list[tuple[int, str]]]:
        return _rows_or_drop(rows, self._build)

    def _build(self, rows: Sequence[tuple]) -> pa.Table:
        cols = list(zip(*rows)) if rows else [()] * len(self.leaves)
        arrays = [pa.array(list(c), type=t) for (_, t, _), c in zip(self.leaves, cols)]
        return pa.Table.from_arrays(arrays, schema=self.schema)


# ---- JSON --------------------------------------------------------------------------------------------
def _json_hints(schema_text: bytes | str | None) -> dict[str, pa.DataType]:
    """Column type hints from a JSON schema: ``number`` -> float64, ``integer`` -> int64,
    ``boolean`` -> bool, ``string`` -> string, a ``string`` with ``contentEncoding: base64`` (how JSON
    carries bytes, e.g. Foxglove's JSON ``CompressedImage.data``) -> binary, nested ``object``
    properties flattened."""
    if not schema_text:
        return {}
    try:
        schema = json.loads(schema_text)
    except (ValueError, TypeError):
        return {}
    hints: dict[str, pa.DataType] = {}
    simple = {"number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_(), "string": pa.string()}

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, dict):
            return
        for name, sub in (node.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            typ = sub.get("type")
            if typ == "object":
                walk(sub, prefix + name + ".")
            elif typ == "string" and str(sub.get("contentEncoding", "")).lower() == "base64":
                hints[_safe_name(prefix + name)] = pa.binary()
            elif isinstance(typ, str) and typ in simple:
                hints[_safe_name(prefix + name)] = simple[typ]

    walk(schema, "")
    return hints


def _flatten_dict(d: dict, prefix: str, out: dict) -> None:
    for k, v in d.items():
        name = prefix + str(k)
        if isinstance(v, dict) and v:
            _flatten_dict(v, name + ".", out)
        else:
            out[name] = v


class JsonFlattener(Flattener):
    """Flatten JSON objects: nested objects to dotted columns, arrays to lists; a non-object message is
    stored in a ``value`` column. Types are inferred per batch (``schema`` is ``None``); a column whose
    values Arrow cannot type together is stored as JSON text."""

    schema = None

    def __init__(self, schema_text: bytes | str | None = None):
        self.hints = _json_hints(schema_text)
        #: columns the schema declares as base64 text (``contentEncoding: base64``): stored as the bytes
        self.base64 = {k for k, t in self.hints.items() if t == pa.binary()}

    def row(self, msg: Any) -> dict:
        out: dict[str, Any] = {}
        if isinstance(msg, dict):
            _flatten_dict(msg, "", out)
        else:
            out["value"] = msg
        row = {_safe_name(k): v for k, v in out.items()}
        for k in self.base64:
            v = row.get(k)
            if isinstance(v, str):
                try:
                    row[k] = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError) as e:
                    raise ValueError(f"field {k!r} is declared base64 but is not valid base64 ({e})") from None
        return row

    def to_table(self, rows: Sequence[dict]) -> tuple[pa.Table, list[tuple[int, str]]]:
        names: dict[str, None] = {}
        for r in rows:
            for k in r:
                names.setdefault(k, None)
        arrays, fields = [], []
        for name in names:
            values = [r.get(name) for r in rows]
            arr = self._column(name, values)
            arrays.append(arr)
            fields.append(pa.field(name, arr.type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), []

    def _column(self, name: str, values: list[Any]) -> pa.Array:
        hint = self.hints.get(name)
        if hint is not None:
            try:
                return pa.array(values, type=hint)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                pass
        try:
            arr = pa.array(values)
            if pa.types.is_null(arr.type) and hint is not None:
                arr = pa.nulls(len(values), hint)
            return arr
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())
