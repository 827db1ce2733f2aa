"""Message payloads -> rows (the flat dicts the per-topic Parquet columns are built from).

- Numeric topics: a JSON object (numbers, arrays of numbers, nested objects -> dotted columns, as
  ``prf convert`` flattens JSON), or a protobuf message given a decoder (:func:`protobuf_decoder`).
- Cameras: JPEG or PNG bytes (recognised by their magic bytes), a protobuf ``foxglove.CompressedImage``
  (``timestamp`` = 1, ``data`` = 2, ``format`` = 3, ``frame_id`` = 4), or a JSON object with ``data``
  (base64) and ``format``. The row is ``{"data": bytes, "format": "jpeg"|"png"[, "frame_id"]}``.

Time and sequence id: ``time_field`` names a payload field holding the message time (an integer is
nanoseconds, a float is seconds; a ``foxglove.CompressedImage`` carries its own ``timestamp``); without
it, or for raw JPEG/PNG bytes, the receive time is used (raw image bytes carry no time: record them
without ``time_field``, or with payload times on the same clock as the receive time, else the camera
and the other topics do not overlap in time and the episode cannot be resampled). ``seq_field`` names a payload field with an
integer sequence id per topic (duplicates are removed by ``(topic, sequence id)``); with it set, a
``foxglove.CompressedImage``'s timestamp is its sequence id (the message has no sequence field).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Mapping

#: decoded payload: (row, time ns or None, sequence id or None)
Decoded = tuple[dict, "int | None", "int | None"]


class PayloadError(ValueError):
    """A payload that cannot be decoded (counted per topic as ``invalid``; the first error is kept)."""


def _time_ns(v: Any, field: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PayloadError(f"time field {field!r} is {v!r}, not a number (int ns or float s)")
    return int(v) if isinstance(v, int) else int(round(v * 1e9))


def _seq(v: Any, field: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise PayloadError(f"sequence field {field!r} is {v!r}, not an integer")
    return v


def _fields(row: Mapping[str, Any], time_field: str | None, seq_field: str | None) -> tuple[int | None, int | None]:
    t = s = None
    if time_field is not None:
        if time_field not in row:
            raise PayloadError(f"no time field {time_field!r} (fields: {list(row)[:8]})")
        t = _time_ns(row[time_field], time_field)
    if seq_field is not None and seq_field in row:
        s = _seq(row[seq_field], seq_field)
    return t, s


def decode_json(payload: bytes, time_field: str | None, seq_field: str | None) -> Decoded:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError(f"not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"a JSON {type(obj).__name__}, expected an object")
    t, s = _fields(obj, time_field, seq_field)
    return obj, t, s


def image_format(data: bytes) -> str | None:
    """``"jpeg"``, ``"png"`` or None from the first bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


# ---- protobuf wire format (foxglove.CompressedImage) -----------------------------------------------------
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if i >= len(buf):
            raise PayloadError("protobuf: truncated varint")
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, i
        shift += 7
        if shift > 63:
            raise PayloadError("protobuf: varint too long")


def _fields_pb(buf: bytes) -> dict[int, Any]:
    """Top-level fields of a protobuf message: {number: value} (varints as int, length-delimited as bytes)."""
    out: dict[int, Any] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            out[num], i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise PayloadError("protobuf: field runs past the end")
            out[num], i = buf[i:i + n], i + n
        elif wt == 1:
            out[num], i = buf[i:i + 8], i + 8
        elif wt == 5:
            out[num], i = buf[i:i + 4], i + 4
        else:
            raise PayloadError(f"protobuf: wire type {wt} not supported")
    return out


def decode_foxglove_image(payload: bytes) -> tuple[dict, int | None]:
    """A ``foxglove.CompressedImage`` (protobuf) -> (row, timestamp ns or None)."""
    f = _fields_pb(payload)
    data, fmt = f.get(2), f.get(3)
    if not isinstance(data, bytes) or not data:
        raise PayloadError("foxglove.CompressedImage without data")
    fmt_s = fmt.decode("utf-8", "replace").strip().lower() if isinstance(fmt, bytes) else (image_format(data) or "")
    t = None
    if isinstance(f.get(1), bytes):
        ts = _fields_pb(f[1])
        t = int(ts.get(1, 0)) * 10**9 + int(ts.get(2, 0))
    row = {"data": data, "format": fmt_s}
    if isinstance(f.get(4), bytes):
        row["frame_id"] = f[4].decode("utf-8", "replace")
    return row, t


def decode_image(payload: bytes, time_field: str | None, seq_field: str | None) -> Decoded:
    """A camera payload -> (row, time ns or None, sequence id or None)."""
    fmt = image_format(payload)
    if fmt is not None:
        return {"data": bytes(payload), "format": fmt}, None, None
    if payload[:1] == b"{":
        obj, t, s = decode_json(payload, time_field, seq_field)
        data = obj.get("data")
        if isinstance(data, str):
            try:
                data = base64.b64decode(data, validate=True)
            except ValueError as e:
                raise PayloadError(f"image 'data' is not base64 ({e})") from None
        if not isinstance(data, bytes) or image_format(data) is None:
            raise PayloadError("JSON image without JPEG/PNG 'data'")
        row = {"data": data, "format": str(obj.get("format") or image_format(data))}
        return row, t, s
    row, t = decode_foxglove_image(payload)
    if image_format(row["data"]) is None:
        raise PayloadError(f"image data is neither JPEG nor PNG (format {row['format']!r})")
    # a CompressedImage has no sequence field: with de-duplication on, its timestamp identifies it
    return row, (t if time_field is not None else None), (t if seq_field is not None else None)


def protobuf_decoder(message_class: Any) -> Callable[[bytes], dict]:
    """A decoder for protobuf payloads of ``message_class`` (a generated protobuf class): the message as
    a dict (nested messages as dicts, repeated fields as lists, ``google.protobuf.Timestamp`` as int ns,
    enums as their numbers), flattened like JSON. Pass it as ``decoders={topic: ...}``."""

    def to_py(m: Any) -> Any:
        if m.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
            return int(m.seconds) * 10**9 + int(m.nanos)
        out = {}
        for fd in m.DESCRIPTOR.fields:
            v = getattr(m, fd.name)
            is_msg = fd.message_type is not None
            repeated = getattr(fd, "is_repeated", None)
            repeated = repeated if repeated is not None else fd.label == fd.LABEL_REPEATED
            if repeated:
                out[fd.name] = [to_py(x) for x in v] if is_msg else list(v)
            elif is_msg:
                out[fd.name] = to_py(v)
            else:
                out[fd.name] = v
        return out

    def decode(payload: bytes) -> dict:
        m = message_class()
        m.ParseFromString(payload)
        return to_py(m)

    decode.__name__ = f"protobuf_decoder({getattr(message_class, '__name__', message_class)})"
    return decode


def custom(decoder: Callable[[bytes], Mapping], time_field: str | None, seq_field: str | None
           ) -> Callable[[bytes], Decoded]:
    def run(payload: bytes) -> Decoded:
        try:
            obj = decoder(payload)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad payload
            raise PayloadError(f"{getattr(decoder, '__name__', 'decoder')}: {type(e).__name__}: {e}") from None
        if not isinstance(obj, Mapping):
            raise PayloadError(f"the decoder returned {type(obj).__name__}, expected a mapping")
        obj = dict(obj)
        t, s = _fields(obj, time_field, seq_field)
        return obj, t, s

    return run
