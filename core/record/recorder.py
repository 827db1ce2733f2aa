"""``prf.record_mqtt``: record live robot data from an MQTT broker into a LeRobot v3.0 dataset.

Data flow (one thread each)::

    broker --paho network thread--> BoundedQueue --consumer--> spool file + episode buffers, then ack
                                                               |  (episode end)
                                                               v
                                          writer: per-topic Parquet -> one-episode dataset -> OUT

Files, beside the dataset ``OUT`` (``record_dir``, default ``OUT.record/``)::

    OUT.record/
      recorder.json           the recording's settings and OUT's episode count when it began
      lock                    flock held while a recorder runs (a second one on the same OUT is refused)
      spool/episode-NNNNNN.spool   the episode being recorded (see prf.record._spool); removed once in OUT
      episodes/episode-NNNNNN/     each finished episode as per-topic Parquet (a prf convert folder)
      episodes.jsonl          one line per finished episode: its dataset index (or the error), task,
                              frames, messages per topic, why it ended

Accounting, per topic: ``written + dropped + duplicate + invalid + outside_episode == received +
recovered``. ``received``: messages delivered to this run; ``recovered``: messages of the spool of an
earlier, killed run, finished by this one; ``dropped``: refused by the full queue after ``block_s`` of
backpressure (acknowledged, so never redelivered); ``duplicate``: a ``(topic, sequence id)`` seen before
(in this recording, earlier runs included); ``invalid``: a payload that could not be decoded (the
first error is kept); ``outside_episode``: data between a control ``stop`` and the next ``start``.

Restart rule: a recorder killed (SIGKILL, power cut after the last fsync) leaves its partial episode in
the spool. The next recorder with the same ``OUT`` (and client id) **finishes it**: an episode whose end
was spooled is written to OUT at start-up; the open one is resumed (its spooled messages kept, new
messages added) and ends by the usual rules. Messages the killed recorder had not acknowledged are
redelivered by the broker (persistent session); duplicates among them are removed by sequence id when
the payloads carry one (without a sequence id a message received, spooled but not yet acknowledged at
the kill may appear twice). Finished episodes are never touched: each was appended to OUT atomically
(:func:`prf.append_episodes`, one revision each), so they stay intact and readable.

SIGINT / SIGTERM (and :meth:`Recorder.stop`) end a recording cleanly: messages already received are
spooled and acknowledged, the current episode is finished and written; messages still arriving are left
unacknowledged at the broker for the next session.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .._atomic import temp_dir_for
from ..errors import PrfError, RecordError
from . import _payload
from ._episode import Segmenter
from ._queue import BoundedQueue
from ._resample import TopicRows, episode_dataset, write_converted
from ._session import MqttSession, TlsOptions, parse_url
from ._spool import END, MESSAGE, START, SpoolWriter, read_spool, spool_episode, spool_path

LOG_FILE = "episodes.jsonl"
SETTINGS_FILE = "recorder.json"


@dataclass
class TopicCounts:
    """Per-topic message counts (see the module docstring for their meaning)."""

    received: int = 0
    recovered: int = 0
    written: int = 0
    dropped: int = 0
    duplicate: int = 0
    invalid: int = 0
    outside_episode: int = 0
    first_error: str | None = None

    @property
    def balanced(self) -> bool:
        return (self.written + self.dropped + self.duplicate + self.invalid + self.outside_episode
                == self.received + self.recovered)


@dataclass
class RecordReport:
    """The outcome of a recording: per-topic counts, the episodes written (and failed), connections."""

    url: str
    out: str
    record_dir: str
    topics: dict[str, TopicCounts]
    episodes: list[dict[str, Any]] = field(default_factory=list)
    control: dict[str, int] = field(default_factory=dict)
    connects: int = 0
    disconnects: int = 0
    queue_high_water: int = 0
    elapsed_s: float = 0.0

    @property
    def balanced(self) -> bool:
        """Every message accounted for on every topic."""
        return all(c.balanced for c in self.topics.values())

    @property
    def episodes_written(self) -> int:
        return sum(1 for e in self.episodes if e.get("dataset_episode") is not None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["balanced"] = self.balanced
        d["episodes_written"] = self.episodes_written
        d["totals"] = {k: sum(getattr(c, k) for c in self.topics.values())
                       for k in ("received", "recovered", "written", "dropped", "duplicate", "invalid", "outside_episode")}
        return d

    def format_text(self) -> str:
        lines = [f"recorded {self.url} -> {self.out}: {self.episodes_written} episode(s) written"
                 + (f", {len(self.episodes) - self.episodes_written} failed" if len(self.episodes) > self.episodes_written else "")
                 + f" in {self.elapsed_s:.1f} s"]
        w = max([len(t) for t in self.topics] + [5])
        lines.append(f"  {'topic':<{w}}  {'received':>9} {'recovered':>9} {'written':>9} {'dropped':>8} "
                     f"{'duplicate':>9} {'invalid':>7} {'outside':>7}")
        for t, c in self.topics.items():
            lines.append(f"  {t:<{w}}  {c.received:>9} {c.recovered:>9} {c.written:>9} {c.dropped:>8} "
                         f"{c.duplicate:>9} {c.invalid:>7} {c.outside_episode:>7}"
                         + ("" if c.balanced else "  (UNBALANCED)") + (f"  first error: {c.first_error}" if c.first_error else ""))
        for e in self.episodes:
            if e.get("error"):
                lines.append(f"  episode {e['episode']} not written: {e['error']}")
        return "\n".join(lines)


class _Episode:
    __slots__ = ("seq", "task", "rows", "spool", "recovered", "t_start", "t_end", "reason")

    def __init__(self, seq: int, task: str, rows: dict[str, TopicRows], spool: SpoolWriter | None):
        self.seq, self.task, self.rows, self.spool = seq, task, rows, spool
        self.recovered = False
        self.t_start, self.t_end = time.time(), None
        self.reason = ""


def _dataset_episodes(root: Path) -> int:
    info = root / "meta" / "info.json"
    if not info.is_file():
        return 0
    return int(json.loads(info.read_text()).get("total_episodes") or 0)


class Recorder:
    """Records MQTT topics into the LeRobot v3.0 dataset ``out``; see :func:`record_mqtt` for the arguments.

    Use ``start()``, then ``stop()`` (or ``run()``); ``report()`` at any time.
    """

    def __init__(self, url: str, out: str | Path, *, topics: Iterable[str] = (), actions: Iterable[str] = (),
                 cameras: Mapping[str, str] | None = None, fps: int = 30, control_topic: str | None = None,
                 idle_gap_s: float | None = None, task: str = "", time_field: str | None = None,
                 seq_field: str | None = None, decoders: Mapping[str, Callable[[bytes], Mapping]] | None = None,
                 robot_type: str | None = None, method: str = "linear", queue_size: int = 65536,
                 block_s: float = 10.0, client_id: str | None = None, session_expiry_s: int = 86400,
                 record_dir: str | Path | None = None, video_codec: str = "auto", progress: bool = True,
                 progress_s: float = 2.0, username: str | None = None, password: str | None = None,
                 ca_certs: str | Path | None = None, certfile: str | Path | None = None,
                 keyfile: str | Path | None = None):
        address = parse_url(url)
        self._credentials = {"username": username, "password": password}
        self._tls = TlsOptions(*(None if f is None else str(Path(f).expanduser()) for f in (ca_certs, certfile, keyfile)))
        for f in (ca_certs, certfile, keyfile):
            if f is not None and not Path(f).expanduser().is_file():
                raise RecordError(f"TLS file {f} does not exist")
        if not address.tls and any(f is not None for f in (ca_certs, certfile, keyfile)):
            raise RecordError(f"{address.redacted}: TLS files given for a broker without TLS (use mqtts:// or wss://)")
        self._broker_url = url  # with its password, if any: only given to the MQTT client
        if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
            raise RecordError(f"fps must be a positive integer, got {fps!r}")
        # the URL without its password: what the record folder's settings and the report hold
        self.url, self.out = address.redacted, Path(out).absolute()
        self.state_topics = list(dict.fromkeys(topics))
        self.action_topics = list(dict.fromkeys(actions))
        self.cameras = {(k if "." in k else f"observation.images.{k}"): v for k, v in (cameras or {}).items()}
        if not self.state_topics:
            raise RecordError("record needs at least one state topic (--topic)")
        data_topics = self.state_topics + self.action_topics + list(self.cameras.values())
        for t in data_topics + ([control_topic] if control_topic else []):
            if not t or "+" in t or "#" in t:
                raise RecordError(f"topic {t!r}: give exact topic names (no MQTT wildcards)")
        if len(set(data_topics)) != len(data_topics):
            raise RecordError(f"a topic is named twice among state/action/camera topics: {data_topics}")
        if control_topic in data_topics:
            raise RecordError(f"the control topic {control_topic!r} is also a data topic")
        self.data_topics = data_topics
        self.control_topic = control_topic
        self.fps, self.task, self.idle_gap_s = fps, task, idle_gap_s
        self.time_field, self.seq_field = time_field, seq_field
        self.robot_type, self.method, self.video_codec = robot_type, method, video_codec
        self.progress, self.progress_s = progress, progress_s
        self.record_dir = Path(record_dir).absolute() if record_dir else self.out.parent / f"{self.out.name}.record"
        self.client_id = client_id or "prf-record-" + hashlib.sha1(str(self.out).encode()).hexdigest()[:16]
        self.session_expiry_s = int(session_expiry_s)
        decoders = dict(decoders or {})
        self._decode: dict[str, Callable[[bytes], Any]] = {}
        cam_topics = set(self.cameras.values())
        for t in data_topics:
            if t in decoders:
                self._decode[t] = _payload.custom(decoders[t], time_field, seq_field)
            elif t in cam_topics:
                self._decode[t] = lambda p, _tf=time_field, _sf=seq_field: _payload.decode_image(p, _tf, _sf)
            else:
                self._decode[t] = lambda p, _tf=time_field, _sf=seq_field: _payload.decode_json(p, _tf, _sf)
        self._kind = {t: ("image" if t in cam_topics else "json") for t in data_topics}
        self.counts = {t: TopicCounts() for t in data_topics}
        self.control_counts = {"received": 0, "invalid": 0, "dropped": 0}
        self._queue = BoundedQueue(queue_size, block_s)
        self._seg = Segmenter(control_topic is not None, idle_gap_s, task)
        self._seen: dict[str, set[int]] = {t: set() for t in data_topics}
        self._episode: _Episode | None = None
        self._next_seq = 0
        self._episodes_log: list[dict[str, Any]] = []
        self._writer_q: list[_Episode | None] = []
        self._writer_cv = threading.Condition()
        self._put_lock = threading.Lock()
        self._closing = False
        self._consumer: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._session: MqttSession | None = None
        self._lock_fd: int | None = None
        self._error: BaseException | None = None
        self._t0 = time.monotonic()
        self._stopped = False

    # ---- start-up ------------------------------------------------------------------------------------
    def start(self) -> "Recorder":
        """Lock the recording folder, finish what a killed recorder left, connect and subscribe.

        Raises:
            RecordError: another recorder holds ``record_dir``; the broker is unreachable.
        """
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            settings = self.record_dir / SETTINGS_FILE
            if not settings.is_file():
                settings.write_text(json.dumps({
                    "url": self.url, "out": str(self.out), "client_id": self.client_id, "fps": self.fps,
                    "topics": self.state_topics, "actions": self.action_topics, "cameras": self.cameras,
                    "control_topic": self.control_topic, "base_episodes": _dataset_episodes(self.out)}, indent=2))
            self._episodes_log = [json.loads(x) for x in (self.record_dir / LOG_FILE).read_text().splitlines()
                                  if x.strip()] if (self.record_dir / LOG_FILE).is_file() else []
            self._next_seq = max([e["episode"] + 1 for e in self._episodes_log] + [0])
            self._load_seen()
            self._recover()
            self._consumer = threading.Thread(target=self._consume, name="prf-record-consumer", daemon=True)
            self._writer = threading.Thread(target=self._write_loop, name="prf-record-writer", daemon=True)
            self._consumer.start()
            self._writer.start()
            self._session = MqttSession(self._broker_url, self.data_topics + ([self.control_topic] if self.control_topic else []),
                                        self.client_id, self.session_expiry_s, self._on_message, tls=self._tls,
                                        **self._credentials)
            self._session.start()
        except BaseException:
            self._abort()
            raise
        self._t0 = time.monotonic()
        return self

    def _lock(self) -> None:
        import fcntl

        fd = os.open(self.record_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RecordError(f"{self.record_dir}: another recorder (pid {holder}) is recording into {self.out}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load_seen(self) -> None:
        """Sequence ids of the finished episodes (so a redelivered message is a duplicate across runs)."""
        if self.seq_field is None:
            return
        import pyarrow.parquet as pq

        logged = {int(e["episode"]) for e in self._episodes_log}
        for folder in sorted((self.record_dir / "episodes").glob("episode-*")):
            meta_p = folder / "metadata.json"
            try:
                seq = int(folder.name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if seq not in logged or not meta_p.is_file():
                continue  # an episode whose spool is still there is finished again from it (see _recover)
            meta = json.loads(meta_p.read_text())
            for topic, entry in meta.get("topics", {}).items():
                f = entry.get("file")
                if topic in self._seen and f and self.seq_field in entry.get("columns", {}):
                    col = pq.read_table(folder / f, columns=[self.seq_field]).column(0)
                    self._seen[topic].update(v for v in col.to_pylist() if v is not None)

    def _recover(self) -> None:
        spools = sorted((self.record_dir / "spool").glob("episode-*.spool"), key=spool_episode)
        for path in spools:
            seq = spool_episode(path)
            self._next_seq = max(self._next_seq, seq + 1)
            if any(e["episode"] == seq for e in self._episodes_log):
                path.unlink()  # finished, but its spool was not yet removed
                continue
            records, valid = read_spool(path)
            task = records[0][3].decode() if records and records[0][0] == START else self.task
            ep = _Episode(seq, task, self._new_rows(), None)
            ep.recovered = True
            ended = None
            for kind, topic, recv, payload in records:
                if kind == MESSAGE and topic in self.counts:
                    self.counts[topic].recovered += 1
                    self._accept(ep, topic, payload, recv, dedupe=True)
                elif kind == END:
                    ended = payload.decode() or "spooled end"
            if ended is not None or path != spools[-1]:
                self._finalize(ep, ended or "recovered")
                path.unlink(missing_ok=True)
            else:
                ep.spool = SpoolWriter(path, valid_size=valid)
                self._episode = ep
                self._seg.resume(task, time.time())

    def _new_rows(self) -> dict[str, TopicRows]:
        return {t: TopicRows(t, self._kind[t]) for t in self.data_topics}

    # ---- network thread ------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, recv_ns: int, token: tuple) -> None:
        with self._put_lock:
            if self._closing:
                return  # not acknowledged: the broker keeps it for the next session
            c = self.counts.get(topic)
            if c is None:
                if topic != self.control_topic:
                    self._session.ack(token)  # type: ignore[union-attr]
                    return
                self.control_counts["received"] += 1
            else:
                c.received += 1
            if not self._queue.put((topic, payload, recv_ns, token)):
                if c is None:
                    self.control_counts["dropped"] += 1
                else:
                    c.dropped += 1
                self._session.ack(token)  # type: ignore[union-attr]

    # ---- consumer thread -----------------------------------------------------------------------------
    def _consume(self) -> None:
        try:
            while True:
                batch = self._queue.get_batch(4096, 0.1)
                if not batch:
                    for ev in self._seg.tick(time.time()):
                        self._event(ev)
                    if self._closing and not len(self._queue):
                        break
                    continue
                for topic, payload, recv_ns, token in batch:
                    if topic == self.control_topic:
                        try:
                            events = self._seg.on_control(payload)
                        except _payload.PayloadError:
                            self.control_counts["invalid"] += 1
                            continue
                        for ev in events:
                            self._event(ev)
                        continue
                    for ev in self._seg.on_data(recv_ns / 1e9):
                        self._event(ev)
                    ep = self._episode
                    if ep is None:
                        self.counts[topic].outside_episode += 1
                        continue
                    if self._accept(ep, topic, payload, recv_ns, dedupe=True):
                        ep.spool.record(MESSAGE, topic, recv_ns, payload)  # type: ignore[union-attr]
                if self._episode is not None:
                    self._episode.spool.flush()  # type: ignore[union-attr]
                session = self._session
                if session is not None:
                    for item in batch:
                        session.ack(item[3])
            if self._episode is not None:
                self._event(("stop", "shutdown"))
        except BaseException as e:  # noqa: BLE001 - reported by stop()/run()
            self._error = e
        finally:
            with self._writer_cv:
                self._writer_q.append(None)
                self._writer_cv.notify_all()

    def _accept(self, ep: _Episode, topic: str, payload: bytes, recv_ns: int, *, dedupe: bool) -> bool:
        c = self.counts[topic]
        try:
            row, t, seq = self._decode[topic](payload)
        except _payload.PayloadError as e:
            c.invalid += 1
            c.first_error = c.first_error or str(e)
            return False
        if seq is not None and dedupe:
            seen = self._seen[topic]
            if seq in seen:
                c.duplicate += 1
                return False
            seen.add(seq)
        ep.rows[topic].add(recv_ns if t is None else t, recv_ns, row, len(payload))
        return True

    def _event(self, ev: tuple[str, str]) -> None:
        kind, arg = ev
        if kind == "start":
            if self._episode is not None:
                self._event(("stop", "restarted"))
            seq = self._next_seq
            self._next_seq += 1
            self._episode = _Episode(seq, arg, self._new_rows(),
                                     SpoolWriter(spool_path(self.record_dir / "spool", seq), arg))
        elif kind == "stop" and self._episode is not None:
            ep, self._episode = self._episode, None
            ep.spool.close(arg)  # type: ignore[union-attr]
            ep.spool = None
            ep.t_end, ep.reason = time.time(), arg
            with self._writer_cv:
                self._writer_q.append(ep)
                self._writer_cv.notify_all()

    # ---- writer thread -------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            with self._writer_cv:
                while not self._writer_q:
                    self._writer_cv.wait()
                ep = self._writer_q.pop(0)
            if ep is None:
                return
            try:
                self._finalize(ep, "")
                (self.record_dir / "spool" / spool_path(Path(), ep.seq).name).unlink(missing_ok=True)
            except BaseException as e:  # noqa: BLE001 - reported by stop()/run()
                self._error = e
                return

    def _finalize(self, ep: _Episode, reason: str) -> None:
        """Parquet folder, one-episode dataset, append to OUT, log line (in this order; see _recover)."""
        n_rows = {t: len(r.rows) for t, r in ep.rows.items()}
        folder = self.record_dir / "episodes" / f"episode-{ep.seq:06d}"
        entry: dict[str, Any] = {"episode": ep.seq, "task": ep.task, "messages": n_rows, "parquet": str(folder),
                                 "dataset_episode": None, "frames": 0, "error": None}
        # why it ended: control (stop message), idle (gap), restarted (a start during it), shutdown
        # (SIGINT/SIGTERM/stop()), or the reason spooled by a killed recorder
        entry["ended"] = ep.reason or reason
        # wall-clock times (s) the episode began and ended in the consumer (not the message times)
        entry["recorded_from"], entry["recorded_to"] = ep.t_start, ep.t_end
        if ep.recovered:
            entry["recovered"] = True
        if sum(n_rows.values()) == 0:
            entry["error"] = "no data messages"
        else:
            write_converted(folder, {t: r for t, r in ep.rows.items() if r.rows},
                            {"url": self.url, "format": "mqtt", "client_id": self.client_id}, {})
        for t, n in n_rows.items():
            self.counts[t].written += n
        if entry["error"] is None:
            before = _dataset_episodes(self.out)
            expected = self._expected_episodes()
            if before == expected + 1:
                # appended by a recorder killed before it wrote the log line
                entry["dataset_episode"] = before - 1
            else:
                staging = temp_dir_for(self.out)
                try:
                    episode_dataset(folder, staging, fps=self.fps, state=self.state_topics, action=self.action_topics,
                                    cameras=self.cameras, task=ep.task,
                                    skip_columns=[c for c in (self.time_field, self.seq_field) if c],
                                    robot_type=self.robot_type, method=self.method, video_codec=self.video_codec)
                    if not self.out.exists():
                        os.rename(staging, self.out)
                    else:
                        from ..edit.append import append_episodes

                        append_episodes(self.out, staging, progress=False)
                    entry["dataset_episode"] = before
                except PrfError as e:
                    entry["error"] = f"{type(e).__name__}: {e}"
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            if entry["dataset_episode"] is not None:
                entry["frames"] = self._episode_frames(entry["dataset_episode"])
        entry["total_episodes"] = _dataset_episodes(self.out)
        with open(self.record_dir / LOG_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._episodes_log.append(entry)

    def _expected_episodes(self) -> int:
        """OUT's episode count after the last logged episode."""
        for e in reversed(self._episodes_log):
            if "total_episodes" in e:
                return int(e["total_episodes"])
        s = self.record_dir / SETTINGS_FILE
        return int(json.loads(s.read_text()).get("base_episodes", 0)) if s.is_file() else 0

    def _episode_frames(self, index: int) -> int:
        try:
            from ..format import DatasetMeta

            return int(DatasetMeta(self.out).episodes[index].length)
        except Exception:  # noqa: BLE001 - informational only
            return 0

    # ---- shutdown ------------------------------------------------------------------------------------
    def stop(self) -> RecordReport:
        """End the recording: spool and acknowledge what was received, finish the current episode, write
        it, disconnect (the broker keeps the session). Returns the report.

        Raises:
            RecordError: the consumer or writer failed (the message says why; finished episodes stay).
        """
        if not self._stopped:
            self._stopped = True
            with self._put_lock:
                self._closing = True
            if self._consumer is not None:
                self._consumer.join()
            if self._session is not None:
                self._session.stop()
            if self._writer is not None:
                self._writer.join()
            self._unlock()
        rep = self.report()
        if self._error is not None:
            raise RecordError(f"recording into {self.out} failed: {type(self._error).__name__}: {self._error}") from self._error
        return rep

    def _abort(self) -> None:
        with self._put_lock:
            self._closing = True
        if self._session is not None:
            self._session.stop()
        for th in (self._consumer,):
            if th is not None:
                th.join(5)
        if self._writer is not None:
            self._writer.join(60)
        self._unlock()
        self._stopped = True

    @property
    def failed(self) -> BaseException | None:
        return self._error

    def report(self) -> RecordReport:
        s = self._session
        return RecordReport(
            url=self.url, out=str(self.out), record_dir=str(self.record_dir),
            topics={t: TopicCounts(**asdict(c)) for t, c in self.counts.items()},
            episodes=[dict(e) for e in self._episodes_log],
            control=dict(self.control_counts), connects=s.connects if s else 0, disconnects=s.disconnects if s else 0,
            queue_high_water=self._queue.high_water, elapsed_s=time.monotonic() - self._t0)

    def progress_line(self, prev: dict[str, int] | None, dt: float) -> tuple[str, dict[str, int]]:
        now = {t: c.received for t, c in self.counts.items()}
        rates = {t: (n - (prev or {}).get(t, 0)) / dt if dt > 0 else 0.0 for t, n in now.items()}
        total = sum(rates.values())
        dropped = sum(c.dropped for c in self.counts.values())
        dup = sum(c.duplicate for c in self.counts.values())
        written = sum(1 for e in self._episodes_log if e.get("dataset_episode") is not None)
        per = " ".join(f"{t} {r:,.0f}/s" for t, r in rates.items())
        cur = "recording" if self._episode is not None else "idle"
        return (f"prf record: {total:,.0f} msg/s [{per}] | queue {len(self._queue)} | episodes {written} written"
                f" ({cur}) | dropped {dropped} | duplicate {dup}"), now

    def run(self, duration_s: float | None = None, until: Callable[[], bool] | None = None,
            handle_signals: bool = True) -> RecordReport:
        """Record until SIGINT/SIGTERM, ``duration_s`` seconds, or ``until()`` returns true; returns the report."""
        stop = threading.Event()
        old = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, lambda *_: stop.set())
        try:
            if self._session is None:
                self.start()
            t_end = None if duration_s is None else time.monotonic() + duration_s
            prev, t_prev = None, time.monotonic()
            while not stop.is_set() and self._error is None:
                stop.wait(min(0.1, self.progress_s))
                if t_end is not None and time.monotonic() >= t_end:
                    break
                if until is not None and until():
                    break
                if self.progress and time.monotonic() - t_prev >= self.progress_s:
                    line, prev = self.progress_line(prev, time.monotonic() - t_prev)
                    t_prev = time.monotonic()
                    print(line, file=sys.stderr, flush=True)
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
        return self.stop()


def record_mqtt(url: str, out: str | Path, *, topics: Iterable[str], duration_s: float | None = None,
                until: Callable[[], bool] | None = None, handle_signals: bool = True, **options: Any) -> RecordReport:
    """Record MQTT topics into the LeRobot v3.0 dataset ``out``, one episode at a time, until SIGINT /
    SIGTERM, ``duration_s`` or ``until()``.

    Args:
        url: the broker: ``mqtt://HOST[:PORT]`` (1883), ``mqtts://`` (TLS, 8883), ``ws://HOST[:PORT][/PATH]``
            (websockets, 80, path ``/mqtt``), ``wss://`` (websockets over TLS, 443); ``USER[:PASSWORD]@HOST``
            for credentials (the password is kept out of every file the recorder writes).
        out: the dataset; created by the first episode, later episodes appended (atomically, one
            revision each, :func:`prf.append_episodes`). It may already exist (compatible features).
        topics: state topics: their numeric payload fields (in topic order, time/sequence fields left
            out) form ``observation.state`` (``float32 [D]``).
        actions: action topics -> ``action`` (optional).
        cameras: ``{camera key: topic}`` (a key without ``.`` becomes ``observation.images.KEY``); JPEG/PNG
            bytes, protobuf ``foxglove.CompressedImage``, or JSON ``{data: base64, format}``; stored as video.
        fps: frames per second of the dataset grid (frame k of an episode at ``t0 + floor(k * 1e9 / fps)`` ns).
        control_topic: start/stop messages (see :mod:`prf.record._episode`); idle_gap_s: end an episode
            after this many seconds without data; task: the default task text.
        time_field: payload field with the message time (int ns or float s; default: the receive time);
            seq_field: payload field with a per-topic integer sequence id (duplicates removed).
        decoders: ``{topic: callable(bytes) -> mapping}`` for non-JSON payloads (e.g.
            :func:`prf.record.protobuf_decoder`).
        method: state/action resampling (``"linear"``, ``"previous"``, ``"nearest"``).
        queue_size: the bounded queue's capacity (messages); block_s: how long a full queue holds back
            the network thread before a message is dropped (and counted).
        client_id, session_expiry_s: the persistent MQTT session (default id derived from ``out``).
        username, password: MQTT credentials (override the URL's).
        ca_certs, certfile, keyfile: TLS: the CA bundle the broker's certificate is verified with
            (default: the system's), a client certificate and its key.
        record_dir: spool/Parquet/log folder (default ``OUT.record``); video_codec, robot_type: as
            :func:`prf.write_lerobot_dataset`; progress: a status line on stderr every ``progress_s``.

    Returns:
        :class:`RecordReport` (``report.balanced``: every message accounted for).

    Raises:
        RecordError: bad options (an unknown URL scheme lists the allowed ones; a TLS file missing), the
            broker unreachable or refusing the connection at start (bad credentials, a certificate that
            does not verify), ``out`` already being recorded into,
            a failure while recording (finished episodes stay in ``out``).
    """
    rec = Recorder(url, out, topics=topics, **options)
    return rec.run(duration_s=duration_s, until=until, handle_signals=handle_signals)
