"""`prf query` of a per-episode aggregate over a generated LeRobot v3.0 dataset, side by side with pandas
and polars on the same parquet files; and `prf.score_episodes` time per 1M frames.

    python benches/bench_query.py --frames 10000000 --repeat 3 --markdown bench-results/query.md

`--ann`: `prf.similar`'s approximate index (usearch HNSW, as prf builds it) against exact search on the
shared datasets and on the generated 1M-frame `nocam_1m` (benches/_scale_data.py), instead of the above:

    python benches/bench_query.py --ann --markdown bench-results/similar.md

`--validate`: `prf.validate` (every check but the video ones, which need cameras) on the shared
datasets and on a generated dataset with LeRobot's per-episode stats (`nocam_<frames>_stats` of
benches/_scale_data.py, also bench_edit's), its time and the peak RSS of the process:

    python benches/bench_query.py --validate --frames 10000000

The dataset (no cameras; observation.state and action float32[14], 500-frame episodes, 1M-row data
files) is generated once into $PRF_CACHE/bench/query_<frames> (default ~/.cache/prf/bench/...).
Every engine computes, per episode: count(*), mean(timestamp), mean(action[0]), max(observation.state[13]),
reading the parquet files from disk each run (the OS page cache is warm after the first run, for all).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EP_LEN, DIM, FILE_ROWS, FPS = 500, 14, 1_000_000, 30


def generate(root: Path, frames: int) -> Path:
    """A LeRobot v3.0 dataset of ``frames`` rows (written with pyarrow directly; atomic by rename)."""
    if (root / "meta" / "info.json").is_file():
        return root
    tmp = root.with_name(root.name + ".part")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (tmp / "data" / "chunk-000").mkdir(parents=True)
    rng = np.random.default_rng(0)
    n_eps = frames // EP_LEN
    ep_rows = {k: [] for k in ("episode_index", "data/chunk_index", "data/file_index", "dataset_from_index",
                               "dataset_to_index", "length")}
    for f, start in enumerate(range(0, frames, FILE_ROWS)):
        n = min(FILE_ROWS, frames - start)
        idx = np.arange(start, start + n, dtype=np.int64)
        ep = idx // EP_LEN
        fi = idx % EP_LEN
        state = np.cumsum(rng.standard_normal((n, DIM), dtype=np.float32) * 0.01, axis=0, dtype=np.float32)
        action = state + rng.standard_normal((n, DIM), dtype=np.float32) * 0.001
        t = pa.table({
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), DIM),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1)), DIM),
            "timestamp": pa.array((fi / FPS).astype(np.float32)),
            "frame_index": pa.array(fi), "episode_index": pa.array(ep), "index": pa.array(idx),
            "task_index": pa.array(np.zeros(n, np.int64)),
        })
        pq.write_table(t, tmp / "data" / "chunk-000" / f"file-{f:03d}.parquet")
        for e in np.unique(ep):
            ep_rows["episode_index"].append(int(e))
            ep_rows["data/chunk_index"].append(0)
            ep_rows["data/file_index"].append(f)
            ep_rows["dataset_from_index"].append(int(e) * EP_LEN)
            ep_rows["dataset_to_index"].append(int(e) * EP_LEN + EP_LEN)
            ep_rows["length"].append(EP_LEN)
    eps = pa.table({**{k: pa.array(v, pa.int64()) for k, v in ep_rows.items()},
                    "tasks": pa.array([["move"]] * len(ep_rows["episode_index"]), pa.list_(pa.string()))})
    pq.write_table(eps, tmp / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["move"]}), tmp / "meta" / "tasks.parquet")
    feats = {"observation.state": {"dtype": "float32", "shape": [DIM], "names": None},
             "action": {"dtype": "float32", "shape": [DIM], "names": None},
             **{k: {"dtype": "float32" if k == "timestamp" else "int64", "shape": [1], "names": None}
                for k in ("timestamp", "frame_index", "episode_index", "index", "task_index")}}
    info = {"codebase_version": "v3.0", "robot_type": "bench", "fps": FPS, "total_episodes": n_eps,
            "total_frames": frames, "total_tasks": 1, "chunks_size": 1000, "features": feats,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None}
    (tmp / "meta" / "info.json").write_text(json.dumps(info))
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, root)
    return root


SQL = ('SELECT episode_index, count(*) AS n, avg(timestamp) AS t, avg(action[1]) AS a0, '
       'max("observation.state"[14]) AS s13 FROM frames GROUP BY 1 ORDER BY 1')


def run_prf_cli(root: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "prf.cli", "query", str(root), SQL, "--csv"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise SystemExit(r.stderr)
    return time.perf_counter() - t0


def run_prf_api(root: Path):
    import prf

    t0 = time.perf_counter()
    t = prf.sql(root, SQL)
    return time.perf_counter() - t0, t


def run_polars(files: list[str]):
    import polars as pl

    t0 = time.perf_counter()
    out = (pl.scan_parquet(files).group_by("episode_index")
           .agg(pl.len().alias("n"), pl.col("timestamp").mean().alias("t"),
                pl.col("action").arr.get(0).mean().alias("a0"),
                pl.col("observation.state").arr.get(DIM - 1).max().alias("s13"))
           .sort("episode_index").collect())
    return time.perf_counter() - t0, out


def run_pandas(files: list[str]):
    import pandas as pd

    t0 = time.perf_counter()
    parts = []
    for f in files:  # pandas reads the vector columns as pyarrow-backed lists; element 0 / 13 via .list[]
        df = pd.read_parquet(f, columns=["episode_index", "timestamp", "action", "observation.state"],
                             dtype_backend="pyarrow")
        parts.append(pd.DataFrame({"episode_index": df["episode_index"], "timestamp": df["timestamp"],
                                   "a0": df["action"].list[0], "s13": df["observation.state"].list[DIM - 1]}))
    df = pd.concat(parts, ignore_index=True)
    out = df.groupby("episode_index").agg(n=("timestamp", "size"), t=("timestamp", "mean"), a0=("a0", "mean"),
                                           s13=("s13", "max")).sort_index()
    return time.perf_counter() - t0, out


ANN_SHARED = ["so101_wrist_v30", "aloha_multicam_v30", "pusht_sim_v30", "rebot_novideo_v30"]


def _median_ms(fn, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def bench_ann(root: Path, name: str, queries: int, k: int, work: Path) -> dict:
    """One dataset: vectors, index build (as ``prf.similar`` builds and caches it), per-query ANN vs exact
    time, recall@k, and whole ``prf.similar`` calls (warm: the cached index loaded; exact)."""
    import shutil

    import prf
    from prf.format import DatasetMeta
    from prf.query import exact_neighbours, frame_vectors
    from prf.query.similar import _ann_index, _key

    by = ["observation.state"]
    meta = DatasetMeta(root)
    t0 = time.perf_counter()
    x, eps, fis = frame_vectors(meta, by)
    t_vec = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    cache = work / "cache"
    t0 = time.perf_counter()
    index = _ann_index(x, cache / f"{_key(meta, by)}.usearch")  # prf.similar's build (threads=1), saved atomically
    t_build = time.perf_counter() - t0
    print(f"  {name}: vectors {t_vec:.2f} s, build {t_build:.2f} s", flush=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(x), size=min(queries, len(x)), replace=False)
    want = min(k + 1, len(x))
    t0 = time.perf_counter()
    ann = [np.asarray(index.search(x[r], want).keys, np.int64) for r in rows]
    t_ann = (time.perf_counter() - t0) / len(rows)
    t0 = time.perf_counter()
    ex = [exact_neighbours(x, x[r], want)[0][0] for r in rows]
    t_exact = (time.perf_counter() - t0) / len(rows)
    # recall@k, the query frame itself left out as prf.similar does; by distance (ties at the k-th count)
    hits = 0
    for r, a, e in zip(rows, ann, ex):
        a, e = a[a != r][:k], e[e != r][:k]
        kth = np.linalg.norm(x[e[-1]] - x[r])
        hits += min(k, int(sum(np.linalg.norm(x[i] - x[r]) <= kth * (1 + 1e-6) for i in a)))
    recall = hits / (k * len(rows))
    e0, f0 = int(eps[rows[0]]), int(fis[rows[0]])
    t_warm = _median_ms(lambda: prf.similar(root, episode=e0, frame=f0, k=k, cache_dir=cache), 3) / 1e3
    t_exact_call = _median_ms(lambda: prf.similar(root, episode=e0, frame=f0, k=k, exact=True), 3) / 1e3
    # one reusable prf.SimilarityIndex: opened once (vectors + cached index), then a query per frame
    t0 = time.perf_counter()
    reusable = prf.SimilarityIndex(root, cache_dir=cache)
    reusable.query(e0, f0, k)  # loads the cached index
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in rows:
        reusable.query(int(eps[r]), int(fis[r]), k)
    t_reuse = (time.perf_counter() - t0) / len(rows)
    # the same build on all cores (threads=0), into its own cache
    t0 = time.perf_counter()
    threaded = _ann_index(x, work / "threads0" / "index.usearch", threads=0)
    t_build_all = time.perf_counter() - t0
    hits_all = 0
    for r, e in zip(rows, ex):
        a = np.asarray(threaded.search(x[r], want).keys, np.int64)
        a, e = a[a != r][:k], e[e != r][:k]
        kth = np.linalg.norm(x[e[-1]] - x[r])
        hits_all += min(k, int(sum(np.linalg.norm(x[i] - x[r]) <= kth * (1 + 1e-6) for i in a)))
    shutil.rmtree(work, ignore_errors=True)
    return {"dataset": name, "frames": len(x), "dims": x.shape[1], "vectors_s": t_vec, "build_s": t_build,
            "ann_query_ms": t_ann * 1e3, "exact_query_ms": t_exact * 1e3, "recall": recall, "queries": len(rows),
            "similar_warm_s": t_warm, "similar_exact_s": t_exact_call, "index_open_s": t_open,
            "index_query_ms": t_reuse * 1e3, "build_all_cores_s": t_build_all,
            "recall_all_cores": hits_all / (k * len(rows))}


def _emit(lines: list[str], markdown: str | None) -> None:
    """Print the table and write it to ``markdown`` when given."""
    text = "\n".join(lines)
    print(text)
    if markdown:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(text + "\n")


def main_ann(args) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _scale_data import bench_data_dir, generate_nocam

    shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lerobot"
    targets = [(n, shared / n) for n in ANN_SHARED]
    t0 = time.perf_counter()
    big = generate_nocam(bench_data_dir() / "nocam_1m", 1_000_000)
    print(f"nocam_1m ready in {time.perf_counter() - t0:.1f} s", flush=True)
    targets.append(("nocam_1m (generated)", big))
    work = Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")) / "bench" / "_ann_work"
    rows = []
    for name, root in targets:
        q = args.big_queries if name.startswith("nocam_1m") else args.queries
        r = bench_ann(root.resolve(), name, q, args.k, work)
        print(json.dumps(r), flush=True)
        rows.append(r)
    load = "/".join(f"{v:.1f}" for v in os.getloadavg()[:2])
    lines = [f"`prf.similar` by `observation.state`, k={args.k}: usearch HNSW (connectivity 16, expansion_add 128, "
             f"expansion_search 64, 1 build thread, as prf builds it) against exact search (NumPy, "
             f"`prf.query.exact_neighbours`); per-query times are the mean over {args.queries} random frames "
             f"({args.big_queries} on nocam_1m); a first `prf.similar` call costs vectors + build (then cached); "
             f"load average at the end {load} (1/5 min) on {os.cpu_count()} cores:", "",
             "| dataset | frames | dims | vectors (s) | ANN build (s) | ANN query (ms) | exact query (ms) | "
             "speed-up | recall@10 | `prf.similar` call, cached index / exact (s) | `SimilarityIndex` open (s) / "
             "query (ms) | build on all cores (s), recall@10 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['frames']:,} | {r['dims']} | {r['vectors_s']:.2f} | {r['build_s']:.2f} | "
                     f"{r['ann_query_ms']:.3f} | {r['exact_query_ms']:.2f} | {r['exact_query_ms'] / r['ann_query_ms']:.0f}x | "
                     f"{r['recall']:.3f} | {r['similar_warm_s']:.2f} / {r['similar_exact_s']:.2f} | "
                     f"{r['index_open_s']:.2f} / {r['index_query_ms']:.3f} | {r['build_all_cores_s']:.2f}, "
                     f"{r['recall_all_cores']:.3f} |")
    _emit(lines, args.markdown)


def main_validate(args) -> None:
    import resource

    import prf

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _scale_data import bench_data_dir, generate_nocam

    shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lerobot"
    targets = [(n, (shared / n).resolve()) for n in ANN_SHARED]
    t0 = time.perf_counter()
    big = generate_nocam(bench_data_dir() / f"nocam_{args.frames}_stats", args.frames, episode_stats=True)
    print(f"{big} ready in {time.perf_counter() - t0:.1f} s", flush=True)
    targets.append((f"nocam_{args.frames}_stats (generated)", big))
    lines = [f"`prf.validate(path, videos=False)`, one run each, in one process (peak RSS after each) on "
             f"{os.cpu_count()} cores:", "", "| dataset | frames | episodes | seconds | errors | warnings | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|"]
    for name, root in targets:
        meta = prf.DatasetMeta(root)
        t0 = time.perf_counter()
        rep = prf.validate(root, videos=False)
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        errors = sum(f.severity == "error" for f in rep.findings)
        print(json.dumps({"dataset": name, "seconds": dt, "errors": errors, "rss_mb": rss}), flush=True)
        lines.append(f"| {name} | {meta.total_frames:,} | {meta.total_episodes:,} | {dt:.2f} | {errors} | "
                     f"{len(rep.findings) - errors} | {rss:.0f} |")
    _emit(lines, args.markdown)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=10_000_000)
    ap.add_argument("--score-frames", type=int, default=1_000_000, help="dataset size for the score timing")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--ann", action="store_true", help="the ANN index bench of prf.similar instead")
    ap.add_argument("--queries", type=int, default=200, help="--ann: query frames per dataset")
    ap.add_argument("-k", type=int, default=10, help="--ann: neighbours per query")
    ap.add_argument("--big-queries", type=int, default=50, help="--ann: query frames on nocam_1m")
    ap.add_argument("--validate", action="store_true", help="time prf.validate instead")
    args = ap.parse_args()
    if args.ann:
        return main_ann(args)
    if args.validate:
        return main_validate(args)
    cache = Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")) / "bench"
    t0 = time.perf_counter()
    root = generate(cache / f"query_{args.frames}", args.frames)
    print(f"dataset {root} ({args.frames} frames) ready in {time.perf_counter() - t0:.1f} s", flush=True)
    files = sorted(str(p) for p in (root / "data").rglob("*.parquet"))
    res: dict[str, list[float]] = {"prf query (CLI, incl. process start)": [], "prf.sql (API)": [],
                                   "polars scan_parquet": [], "pandas read_parquet + groupby": []}
    ref = None
    for _ in range(args.repeat):
        res["prf query (CLI, incl. process start)"].append(run_prf_cli(root))
        dt, t = run_prf_api(root)
        res["prf.sql (API)"].append(dt)
        ref = t
        dt, pl_out = run_polars(files)
        res["polars scan_parquet"].append(dt)
        dt, pd_out = run_pandas(files)
        res["pandas read_parquet + groupby"].append(dt)
    # same answers
    np.testing.assert_array_equal(ref.column("n").to_numpy(), pl_out["n"].to_numpy())
    np.testing.assert_allclose(ref.column("a0").to_numpy(), pl_out["a0"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(ref.column("a0").to_numpy(), pd_out["a0"].to_numpy(dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(ref.column("s13").to_numpy(), pd_out["s13"].to_numpy(dtype=np.float64), rtol=1e-6)
    lines = [f"Per-episode aggregate over {args.frames:,} frames ({args.frames // EP_LEN:,} episodes, "
             f"{len(files)} data files), median of {args.repeat}:", "", "| engine | seconds | frames/s |", "|---|---|---|"]
    for k, v in res.items():
        m = statistics.median(v)
        lines.append(f"| {k} | {m:.2f} | {args.frames / m / 1e6:.1f} M |")
    sroot = generate(cache / f"query_{args.score_frames}", args.score_frames)
    import prf

    st = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        prf.score_episodes(sroot, cameras=[])
        st.append(time.perf_counter() - t0)
    m = statistics.median(st)
    lines += ["", f"`prf.score_episodes` (no cameras) over {args.score_frames:,} frames: {m:.2f} s = "
              f"{m / (args.score_frames / 1e6):.2f} s per 1M frames (median of {args.repeat})"]
    _emit(lines, args.markdown)


if __name__ == "__main__":
    main()
