"""Streaming vs local disk, side by side in one run: samples/s of one shuffled epoch (episode-pool
sampler, batch size 32, the oracle's ``delta_timestamps``) read from the local folder and streamed
(``prf.open_dataset(url, streaming=True)``) from a local HTTP range server (tests/_range_server.py, in
its own process) that adds a fixed latency to every request; bytes fetched per sample.

    python benches/bench_stream.py --latency-ms 50 --out bench-results/stream.json

Local: the second epoch of a loader (packet indexes built, files in the page cache). Streamed: a cold
epoch (empty range cache, packet tables fetched from the server during it) and, for reference, the
second epoch (served from the range cache).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lerobot"


def _serve(folder: str, latency_s: float, q) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from _range_server import Faults, RangeServer

    with RangeServer(folder, Faults(latency_s=latency_s)) as srv:
        q.put(srv.url)
        while True:
            time.sleep(3600)


def _epoch(loader) -> tuple[int, float, float]:
    t0 = time.perf_counter()
    n, first = 0, None
    for batch in loader:
        n += len(batch["task"])
        if first is None:
            first = time.perf_counter() - t0
    return n, time.perf_counter() - t0, first or 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--datasets", nargs="+", default=["so101_wrist_v30", "aloha_multicam_v30"])
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("PRF_CACHE", tempfile.mkdtemp(prefix="prf-bench-stream-"))
    import prf
    import prf.stream
    from prf.sampling import EpisodePoolSampler

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    server = ctx.Process(target=_serve, args=(args.data, args.latency_ms / 1000, q), daemon=True)
    server.start()
    url = q.get(timeout=60)
    rows = []
    try:
        for name in args.datasets:
            oj = json.loads((Path(args.data) / name / "oracle.json").read_text())
            dt = oj["delta_timestamps"]
            local = prf.open_dataset(Path(args.data) / name, delta_timestamps=dt)
            for w in args.workers:
                ld = local.loader(batch_size=args.batch_size, num_workers=w,
                                  sampler=EpisodePoolSampler(local, seed=0))
                _epoch(ld)  # warm: indexes, page cache
                n, s, first = _epoch(ld)
                rows.append(dict(dataset=name, source="local disk", workers=w, samples=n, seconds=s,
                                 samples_per_s=n / s, first_batch_s=first, bytes_per_sample=0.0))
                print(rows[-1], flush=True)
                prf.stream.clear_cache()
                prf.stream._source.forget_sources()
                prf.decode.clear_index_cache()
                os.environ["PRF_INDEX_CACHE"] = "0"  # cold: packet tables come from the server
                prf.stream.stream_stats(reset=True)
                t0 = time.perf_counter()
                ds = prf.open_dataset(f"{url}/{name}", streaming=True, delta_timestamps=dt)
                open_s = time.perf_counter() - t0
                sl = ds.loader(batch_size=args.batch_size, num_workers=w, shuffle=True, seed=0)
                for label in ("streamed, cold", "streamed, 2nd epoch"):
                    prf.stream.stream_stats(reset=True)
                    n, s, first = _epoch(sl)
                    st = prf.stream.stream_stats()
                    rows.append(dict(dataset=name, source=f"{label} ({args.latency_ms:g} ms/request)", workers=w,
                                     samples=n, seconds=s, samples_per_s=n / s, first_batch_s=first,
                                     open_s=open_s, requests=st["requests"], bytes=st["bytes"],
                                     bytes_per_sample=st["bytes"] / n, retries=st["retries"]))
                    print(rows[-1], flush=True)
                del os.environ["PRF_INDEX_CACHE"]
    finally:
        server.terminate()
    print("\n| dataset | source | workers | samples/s | vs local | first batch s | requests | bytes/sample |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(x for x in rows if x["dataset"] == r["dataset"] and x["workers"] == r["workers"]
                    and x["source"] == "local disk")
        print(f"| {r['dataset']} | {r['source']} | {r['workers']} | {r['samples_per_s']:.0f} | "
              f"{r['samples_per_s'] / base['samples_per_s']:.2f}x | {r['first_batch_s']:.2f} | "
              f"{r.get('requests', '-')} | {r['bytes_per_sample']:.0f} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
