"""Warm open of a large dataset, several times in one process (the open-time checks of issue 11 ride
on it): ``python benches/bench_open_checks.py DATASET_ROOT`` prints the min and median of 5 opens after
one that builds the Arrow cache. Run it once with this tree and once with an older one on
``PYTHONPATH`` for a side-by-side (see BENCHMARKS.md)."""

import sys
import time

import prf

D = sys.argv[1]
prf.open_dataset(D)
ts = []
for _ in range(5):
    t = time.perf_counter()
    prf.open_dataset(D)
    ts.append(time.perf_counter() - t)
print("min %.3f median %.3f" % (min(ts), sorted(ts)[2]))
