"""prf.stats.EpisodeStatsColumns (the column-wise per-episode stats the editors use) agrees with the
dict-per-episode functions: reading the shared datasets' stored stats, aggregating as LeRobot does,
and writing ``stats/*`` columns of the same Arrow types as the datasets' own."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prf
from conftest import LEROBOT
from prf.stats import EpisodeStatsColumns, read_episode_stats, read_episode_stats_columns
from test_stats import _lerobot_aggregate

NAMES = ["aloha_multicam_v30", "so101_wrist_v30", "pusht_sim_v30", "pusht_sim_v21", "rebot_novideo_v30"]


@pytest.mark.parametrize("name", NAMES)
def test_read_columns_equals_read_dicts(name):
    meta = prf.DatasetMeta(LEROBOT / name)
    per = read_episode_stats(meta)
    eps = list(meta.episodes)[::-1][:7] + [list(meta.episodes)[0]]  # out of order, a repeat
    cols = read_episode_stats_columns(meta, eps)
    assert cols.n == len(eps)
    for i, e in enumerate(eps):
        row = cols.row(i)
        assert set(row) == set(per[e]), (name, e)
        for k, d in per[e].items():
            assert set(row[k]) == set(d)
            for s, v in d.items():
                assert np.array_equal(row[k][s], v), (name, e, k, s)
    assert _close(cols.aggregate(), _lerobot_aggregate([per[e] for e in eps]))


@pytest.mark.parametrize("name", ["aloha_multicam_v30", "pusht_sim_v30"])
def test_arrow_columns_keep_the_stored_types(name):
    root = LEROBOT / name
    meta = prf.DatasetMeta(root)
    f = next((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    stored = pq.read_table(f)
    cols = read_episode_stats_columns(meta).arrow_columns(list(meta.features))
    assert cols, "no stats columns"
    for name, arr in cols.items():
        ref = stored.column(name)
        # the same value types (field names differ: Parquet stores lists as "element", Arrow calls them "item")
        assert str(arr.type).replace("item", "element") == str(ref.type), name
        assert arr.to_pylist() == ref.to_pylist(), name


def test_absent_key_is_null_and_not_aggregated():
    a = {"x": {"min": np.array([0.0]), "max": np.array([2.0]), "mean": np.array([1.0]), "std": np.array([1.0]),
               "count": np.array([4])}}
    b = {"y": {"min": np.array([5.0]), "max": np.array([5.0]), "mean": np.array([5.0]), "std": np.array([0.0]),
               "count": np.array([2])}}
    cols = EpisodeStatsColumns.from_dicts([a, b, a])
    assert cols.present["x"].tolist() == [True, False, True] and cols.present["y"].tolist() == [False, True, False]
    arrow = cols.arrow_columns(["x", "y"])
    assert arrow["stats/x/mean"].to_pylist() == [[1.0], None, [1.0]]
    assert arrow["stats/y/count"].to_pylist() == [None, [2], None]
    agg = cols.aggregate()
    assert agg["x"]["count"].tolist() == [8] and agg["y"]["mean"].tolist() == [5.0]


def _close(a, b):
    if set(a) != set(b):
        return False
    return all(set(a[k]) == set(b[k]) and all(np.allclose(a[k][s], b[k][s], rtol=1e-12, atol=1e-12) for s in a[k])
               for k in a)


@st.composite
def _episode_stats(draw):
    n = draw(st.integers(1, 6))
    shape = draw(st.sampled_from([(1,), (3,), (3, 1, 1)]))
    out = []
    for _ in range(n):
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        lo = rng.normal(size=shape)
        out.append({"f": {"min": lo, "max": lo + rng.random(shape), "mean": lo + 0.5, "std": rng.random(shape),
                          "count": np.array([draw(st.integers(1, 1000))]), "q50": lo + 0.4}})
    return out


@settings(max_examples=60, deadline=None)
@given(_episode_stats())
def test_aggregate_equals_lerobot_rules(per):
    """Column-wise aggregation = LeRobot's aggregate_stats formulas written out plainly
    (tests/test_stats.py::_lerobot_aggregate; prf.stats.aggregate_stats calls the column-wise one)."""
    cols = EpisodeStatsColumns.from_dicts(per)
    assert _close(cols.aggregate(), _lerobot_aggregate(per))
    # concatenation and take are row operations: aggregating a permuted concat gives the same result
    both = EpisodeStatsColumns.concat([cols, cols]).take(np.arange(2 * len(per))[::-1])
    assert _close(both.aggregate(), _lerobot_aggregate(per + per))
