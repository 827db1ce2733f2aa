"""Ingest benchmarks: log conversion throughput, and as-of alignment with NumPy + Arrow (what
prf.RoboticsDataFrame uses) against polars' ``join_asof`` and DuckDB's ``ASOF JOIN``.

    python benches/bench_ingest.py [--quick] [--json OUT.json]

Prints a table (median of 3 runs). polars and duckdb are optional: their rows are skipped when the
package is missing. Results on the CI machine type are in BENCHMARKS.md ("Ingest").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
SHARED = (HERE.parent / ".." / "shared" / "data").resolve()


def _median(fn, runs=3):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def bench_convert(quick: bool) -> list[dict]:
    import _logs

    import prf

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="prf-bench-"))
    big = tmp / "robot_bag"
    n_joint = 20_000 if quick else 100_000
    _logs.write_ros2_bag(big, "mcap", n_joint=n_joint, n_image=300, joint_dt=1_000_000, image_dt=33_000_000)
    logs = [
        ("turtlesim example.bag (ROS 1, 8647 msgs)", SHARED / "ros1bag/turtlesim_rosbagjs/fixtures/example.bag"),
        ("turtlesim example-bz2.bag", SHARED / "ros1bag/turtlesim_rosbagjs/fixtures/example-bz2.bag"),
        ("keelson protobuf MCAP (2172 msgs, 649 topics)", SHARED / "mcap/keelson_ais_protobuf/test.mcap"),
        (f"generated ROS 2 mcap bag ({n_joint} JointState + 600 images + {n_joint // 2} Twist)", big),
    ]
    k = [0]
    for name, path in logs:

        def run():
            k[0] += 1
            return prf.convert_log(path, tmp / f"out{k[0]}", progress=False)

        sec, rep = _median(run)
        rows.append({"bench": "convert_log", "case": name, "messages": rep.messages_in_log, "seconds": round(sec, 3),
                     "messages_per_s": round(rep.messages_in_log / sec)})
    return rows


def bench_asof(quick: bool) -> list[dict]:
    from prf.ingest.dataframe import asof_indices

    rng = np.random.default_rng(0)
    n_topic = 200_000 if quick else 2_000_000
    n_ref = 30_000 if quick else 300_000
    t_topic = np.sort(rng.integers(0, 10**12, n_topic)).astype(np.int64)
    t_ref = np.sort(rng.integers(0, 10**12, n_ref)).astype(np.int64)
    ncols = 8
    topic = pa.table({"log_time": t_topic, **{f"c{i}": rng.normal(size=n_topic) for i in range(ncols)}})
    ref = pa.table({"log_time": t_ref})
    tol = 5 * 10**6
    rows = []

    def numpy_arrow():
        idx = asof_indices(t_topic, t_ref, tol, "backward")
        mask = idx < 0
        return topic.take(pa.array(np.where(mask, 0, idx), mask=mask))

    sec, base = _median(numpy_arrow)
    rows.append({"bench": "asof backward", "case": f"NumPy searchsorted + Arrow take ({n_topic} rows onto {n_ref})",
                 "seconds": round(sec, 4)})
    try:
        import polars as pl

        left = pl.from_arrow(ref)
        right = pl.from_arrow(topic.rename_columns(["t", *topic.column_names[1:]]))

        def polars_join():
            return left.join_asof(right, left_on="log_time", right_on="t", strategy="backward", tolerance=tol)

        sec, out = _median(polars_join)
        got = out.get_column("c0").to_numpy()
        want = base.column("c0").to_numpy(zero_copy_only=False)
        same = bool(np.array_equal(np.nan_to_num(got, nan=-9e9), np.nan_to_num(want, nan=-9e9)))
        rows.append({"bench": "asof backward", "case": f"polars {pl.__version__} join_asof", "seconds": round(sec, 4),
                     "same_result": same})
    except ImportError:
        pass
    try:
        import duckdb

        con = duckdb.connect()
        con.register("r", ref)
        con.register("x", topic.rename_columns(["t", *topic.column_names[1:]]))
        q = ("SELECT r.log_time, x.* FROM r ASOF LEFT JOIN x ON r.log_time >= x.t "
             "ORDER BY r.log_time")

        def duck():
            rel = con.sql(q)
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()

        sec, out = _median(duck)
        rows.append({"bench": "asof backward", "case": f"duckdb {duckdb.__version__} ASOF JOIN (no tolerance)",
                     "seconds": round(sec, 4)})
    except ImportError:
        pass
    return rows


def bench_resample(quick: bool) -> list[dict]:
    import prf

    rng = np.random.default_rng(1)
    n = 200_000 if quick else 2_000_000
    t = np.sort(rng.integers(0, 10**12, n)).astype(np.int64)
    df = prf.RoboticsDataFrame({"/x": pa.table({
        "log_time": t, "pos": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 7)), 7),
        "v": rng.normal(size=n)})})
    rows = []
    for method in ("linear", "previous"):
        sec, out = _median(lambda: df.resample(10**12 // (n // 10), method))
        rows.append({"bench": f"resample {method}", "case": f"{n} rows (float64 + float64[7]) onto {out['/x'].num_rows} times",
                     "seconds": round(sec, 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = bench_convert(args.quick) + bench_asof(args.quick) + bench_resample(args.quick)
    for r in rows:
        print(" | ".join(f"{k}={v}" for k, v in r.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
