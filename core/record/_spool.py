"""The spool: every accepted message of the episode being recorded, on disk before it is acknowledged.

One append-only file per episode, ``OUT.record/spool/episode-NNNNNN.spool`` (NNNNNN: the episode's
index in the dataset). It starts with a magic line and holds records ``<kind u8, topic length u16,
receive time ns i64, payload length u32> topic payload``: kind ``S`` (episode start, payload = task),
``M`` (a message, the raw payload), ``E`` (episode end, payload = the reason). Records are written in
batches and flushed to the OS before the batch's messages are acknowledged, so a SIGKILLed recorder
loses nothing it acknowledged (the file is fsync'ed when the episode ends; a power loss may lose the
last unsynced batch). A record cut short by a kill is cut off when the file is read again.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterator

from ..errors import RecordError

MAGIC = b"PRF-MQTT-SPOOL 1\n"
_HEAD = struct.Struct("<BHqI")
START, MESSAGE, END = ord("S"), ord("M"), ord("E")


def spool_path(spool_dir: Path, episode: int) -> Path:
    return Path(spool_dir) / f"episode-{episode:06d}.spool"


def spool_episode(path: Path) -> int:
    try:
        return int(Path(path).stem.split("-")[1])
    except (IndexError, ValueError):
        raise RecordError(f"{path}: not a prf spool file name (episode-NNNNNN.spool)") from None


class SpoolWriter:
    """Append records to one episode's spool (created with its ``S`` record, or reopened to go on)."""

    def __init__(self, path: Path, task: str | None = None, *, valid_size: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if task is not None:
            self._f = open(self.path, "wb")
            self._f.write(MAGIC)
            self.record(START, "", 0, task.encode())
            self.flush()
        else:
            self._f = open(self.path, "r+b")
            self._f.truncate(valid_size if valid_size is not None else os.path.getsize(self.path))
            self._f.seek(0, os.SEEK_END)

    def record(self, kind: int, topic: str, recv_ns: int, payload: bytes) -> None:
        t = topic.encode()
        self._f.write(_HEAD.pack(kind, len(t), recv_ns, len(payload)))
        self._f.write(t)
        self._f.write(payload)

    def flush(self) -> None:
        self._f.flush()

    def close(self, reason: str) -> None:
        """Write the ``E`` record, fsync and close."""
        self.record(END, "", 0, reason.encode())
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def abandon(self) -> None:
        self._f.close()


def read_spool(path: Path) -> tuple[list[tuple[int, str, int, bytes]], int]:
    """``([(kind, topic, recv_ns, payload), ...], size of the complete records)``.

    Raises:
        RecordError: the file is not a prf spool.
    """
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise RecordError(f"{path}: not a prf MQTT spool file (bad magic)")
    out, i = [], len(MAGIC)
    for rec, end in _records(data, i):
        out.append(rec)
        i = end
    return out, i


def _records(data: bytes, i: int) -> Iterator[tuple[tuple[int, str, int, bytes], int]]:
    n = len(data)
    while i + _HEAD.size <= n:
        kind, tl, recv, pl = _HEAD.unpack_from(data, i)
        j = i + _HEAD.size
        if j + tl + pl > n or kind not in (START, MESSAGE, END):
            return
        topic = data[j:j + tl].decode()
        payload = data[j + tl:j + tl + pl]
        i = j + tl + pl
        yield (kind, topic, recv, payload), i
