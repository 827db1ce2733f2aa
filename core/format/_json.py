"""Reading LeRobot's JSON metadata strictly: UTF-8 only, no key twice in an object, bounded nesting;
every failure a :class:`~prf.errors.MetadataError` naming the file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import MetadataError

#: how deep ``info.json`` and the other JSON metadata may nest (Python's parser recurses per level).
_MAX_JSON_DEPTH = 200


def _no_duplicate_keys(path: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise MetadataError(f"{path}: key {k!r} appears twice in one JSON object (JSON keeps the last "
                                    f"value silently; remove one)")
            out[k] = v
        return out

    return hook


def _decode_text(raw: bytes, path: Path) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(raw) > 1 and (raw[0] == 0 or raw[1] == 0)):
        raise MetadataError(f"{path}: not UTF-8 text (it looks like UTF-16); LeRobot metadata is UTF-8 JSON")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MetadataError(f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}; Latin-1 or "
                            f"another encoding?); LeRobot metadata is UTF-8 JSON") from None


def _depth_ok(text: str, path: Path, where: str = "") -> None:
    """Refuse nesting deeper than :data:`_MAX_JSON_DEPTH` before Python's recursive parser hits it."""
    if text.count("[") + text.count("{") <= _MAX_JSON_DEPTH:
        return
    depth = 0
    for m in _BRACKETS.finditer(text):  # strings are skipped so brackets inside them do not count
        c = m.group(0)
        if c in "[{":
            depth += 1
            if depth > _MAX_JSON_DEPTH:
                raise MetadataError(f"{path}{where}: JSON nested more than {_MAX_JSON_DEPTH} levels deep")
        elif c in "]}":
            depth -= 1


_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def parse_json(text: str, path: Path, where: str = "") -> Any:
    """Parse JSON metadata text, as a :class:`MetadataError` naming ``path`` on any failure: invalid
    JSON, a key twice in one object, nesting deeper than :data:`_MAX_JSON_DEPTH`."""
    _depth_ok(text, path, where)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise MetadataError(f"{path}{where}: not valid JSON ({e})") from None
    except RecursionError:
        raise MetadataError(f"{path}{where}: JSON nested too deeply") from None


def read_text(path: Path) -> str:
    """A metadata file's text (UTF-8, an optional BOM dropped), as :class:`MetadataError` on failure."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MetadataError(f"{path}: cannot be read ({e})") from None
    return _decode_text(raw, path)


def read_jsonl(path: Path) -> list[Any]:
    """The JSON values of a ``.jsonl`` file's non-blank lines (see :func:`parse_json` for the errors)."""
    if not path.is_file():
        raise MetadataError(f"{path}: missing")
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            rows.append(parse_json(line, path, f":{n}"))
    return rows
