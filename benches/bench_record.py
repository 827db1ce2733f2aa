"""`prf record` throughput: the highest sustained message rate recorded with zero drops.

    python benches/bench_record.py [--rates 2000,4000,...] [--seconds 6] [--queue-size 8192] [--json OUT.json]

Per rate: a fresh mosquitto on 127.0.0.1 (Debian's, as the tests use), `prf record` in its own process
(state topics /a, /b, action /c, a 96x96 JPEG camera /cam as foxglove.CompressedImage, 30 fps grid,
one episode by control topic), one paho publisher paced to the rate for ``--seconds`` (4 messages per
frame: 3 numeric + 1 camera). The recorder runs with a queue of ``--queue-size`` messages and
``--block 0`` (a full queue drops at once instead of holding the broker back), so a recorder that falls
behind shows as drops. Reported per rate: the rate the publisher reached (first publish to last
PUBACK), messages dropped / received, and the time from the last PUBACK until the episode was in the
dataset (encoding included). The ramp stops at the first rate with drops, or when the publisher
itself cannot reach the rate (then the recorder was not the limit).

``--backlog N``: the recorder's own ceiling, without a publisher competing for the CPU: N messages are
published while the recorder's persistent session is disconnected (the broker queues them), then
`prf record` (default queue, backpressure on) is started and drains them; the rate is N over the time
from the episode's start message to its stop message in the recorder (episodes.jsonl), zero drops
checked.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from test_record import (  # noqa: E402
    Broker, Publisher, episode_messages, publish_all, start_recorder, stop_recorder, test_images, total_episodes,
)


def trial(rate: int, seconds: float, queue_size: int, jpegs: list[bytes]) -> dict:
    frames = max(30, int(rate * seconds / 4))
    msgs = episode_messages([frames], ["bench"], jpegs)
    with tempfile.TemporaryDirectory(prefix="prf-bench-record-") as d:
        d = Path(d)
        broker = Broker(d / "broker")
        try:
            rec = start_recorder(broker, d / "ds", "--queue-size", str(queue_size), "--block", "0", "--quiet")
            pub = Publisher(broker)
            achieved = publish_all(pub, msgs, rate=rate)
            t_acked = time.perf_counter()
            deadline = time.monotonic() + 600
            while total_episodes(d / "ds") < 1 and rec.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            lag = time.perf_counter() - t_acked
            rep = stop_recorder(rec)
            pub.close()
        finally:
            broker.stop()
    tot = rep["totals"]
    return {"target": rate, "published_per_s": round(achieved), "messages": len(msgs) - 2,
            "received": tot["received"], "dropped": tot["dropped"], "written": tot["written"],
            "episode_in_dataset_after_s": round(lag, 2), "queue_high_water": rep["queue_high_water"],
            "balanced": rep["balanced"]}


def backlog(n: int, jpegs: list[bytes]) -> dict:
    frames = max(30, n // 4)
    msgs = episode_messages([frames], ["bench"], jpegs)
    with tempfile.TemporaryDirectory(prefix="prf-bench-record-") as d:
        d = Path(d)
        broker = Broker(d / "broker")
        try:
            rec = start_recorder(broker, d / "ds", "--quiet")  # creates the persistent session
            stop_recorder(rec)
            pub = Publisher(broker)
            publish_all(pub, msgs)
            pub.close()
            rec = start_recorder(broker, d / "ds", "--quiet")
            deadline = time.monotonic() + 900
            while total_episodes(d / "ds") < 1 and rec.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            rep = stop_recorder(rec)
        finally:
            broker.stop()
        log = [json.loads(x) for x in (d / "ds.record" / "episodes.jsonl").read_text().splitlines()]
    e = log[-1]
    secs = e["recorded_to"] - e["recorded_from"]
    tot = rep["totals"]
    return {"messages": len(msgs) - 2, "received": tot["received"], "dropped": tot["dropped"],
            "written": tot["written"], "drain_s": round(secs, 2), "drain_per_s": round((len(msgs) - 2) / secs),
            "queue_high_water": rep["queue_high_water"], "balanced": rep["balanced"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="2000,4000,6000,8000,10000,12000,16000,20000")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--queue-size", type=int, default=8192)
    ap.add_argument("--backlog", type=int, default=0, metavar="N", help="also measure draining N queued messages")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import os

    jpegs, _ = test_images()
    drain = None
    if args.backlog:
        drain = backlog(args.backlog, jpegs)
        print(f"backlog: {drain['messages']} messages queued at the broker drained in {drain['drain_s']} s = "
              f"{drain['drain_per_s']} messages/s, dropped {drain['dropped']}, written {drain['written']}, "
              f"queue max {drain['queue_high_water']} (load average {os.getloadavg()[0]:.1f})", flush=True)
    rows, best = [], 0
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'target/s':>9} {'published/s':>11} {'received':>9} {'dropped':>8} {'written':>8} {'queue max':>9} "
          f"{'in dataset after':>16}")
    for rate in [int(x) for x in args.rates.split(",")]:
        r = trial(rate, args.seconds, args.queue_size, jpegs)
        rows.append(r)
        print(f"{r['target']:>9} {r['published_per_s']:>11} {r['received']:>9} {r['dropped']:>8} {r['written']:>8} "
              f"{r['queue_high_water']:>9} {r['episode_in_dataset_after_s']:>15.2f}s", flush=True)
        if r["dropped"]:
            print(f"drops at {rate}/s: stop")
            break
        best = max(best, r["published_per_s"])
        if r["published_per_s"] < 0.9 * rate:
            print(f"the publisher reached only {r['published_per_s']}/s of {rate}/s: publisher-limited, stop")
            break
    print(f"highest sustained rate with zero drops: {best} messages/s "
          f"(load average now {os.getloadavg()[0]:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "best_zero_drop_per_s": best, "backlog": drain}, indent=2))


if __name__ == "__main__":
    main()
