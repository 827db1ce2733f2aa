"""RoboticsDataFrame: slice / align / resample against hand-computed examples and hypothesis properties
(output times sorted, tolerance respected, as-of matches equal a brute-force search, linear
interpolation exact on linear signals), save / from_converted round trips, pandas output."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prf
from conftest import SHARED_DATA
from prf.errors import DataFrameError, LogError
from prf.ingest.dataframe import asof_indices


def _frame():
    a = pa.table({
        "log_time": pa.array([0, 10, 20, 30], pa.int64()),
        "x": pa.array([0.0, 1.0, 2.0, 3.0]),
        "k": pa.array([1, 2, 3, 4], pa.int32()),
        "v": pa.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0]], pa.list_(pa.float64(), 2)),
    })
    b = pa.table({"log_time": pa.array([5, 25, 26], pa.int64()), "s": ["p", "q", "r"],
                  "y": pa.array([50.0, 250.0, 260.0], pa.float32())})
    return prf.RoboticsDataFrame({"/a": a, "/b": b})


def test_basics():
    df = _frame()
    assert df.topics == ["/a", "/b"] and len(df) == 2 and "/a" in df
    assert df.time_range() == (0, 30)
    with pytest.raises(DataFrameError, match="unknown topic"):
        df["/c"]
    with pytest.raises(DataFrameError, match="log_time"):
        prf.RoboticsDataFrame({"/z": pa.table({"t": [1]})})
    unsorted = prf.RoboticsDataFrame({"/u": pa.table({"log_time": pa.array([3, 1, 2], pa.int64()), "i": [0, 1, 2]})})
    assert unsorted["/u"].column("i").to_pylist() == [1, 2, 0]


def test_slice_hand_computed():
    s = _frame().slice(10, 26)
    assert s["/a"].column("log_time").to_pylist() == [10, 20]
    assert s["/b"].column("log_time").to_pylist() == [25]
    assert _frame().slice(None, 6)["/b"].column("s").to_pylist() == ["p"]
    assert _frame().slice(31, None)["/a"].num_rows == 0


def test_align_hand_computed():
    df = _frame()
    back = df.align("/a", tolerance_ns=6, direction="backward")
    assert back.aligned
    b = back["/b"]
    # ref 0: nothing before; 10: 5 (5 <= 6); 20: 5 is 15 away -> null; 30: 26 (4 away)
    assert b.column("source_log_time").to_pylist() == [None, 5, None, 26]
    assert b.column("s").to_pylist() == [None, "p", None, "r"]
    fwd = df.align("/a", tolerance_ns=6, direction="forward")["/b"]
    # 0: 5 (5 away); 10: 25 is 15 away -> null; 20: 25 (5); 30: nothing after
    assert fwd.column("source_log_time").to_pylist() == [5, None, 25, None]
    near = df.align("/a", tolerance_ns=None, direction="nearest")["/b"]
    # 0 -> 5; 10 -> 5 (5 vs 15); 20 -> 25 (15 vs 5); 30 -> 26
    assert near.column("source_log_time").to_pylist() == [5, 5, 25, 26]
    assert back["/a"].column("x").to_pylist() == [0.0, 1.0, 2.0, 3.0]  # the reference matches itself
    wide = back.to_pandas()
    assert list(wide.index) == [0, 10, 20, 30]
    assert np.isnan(wide["/b/y"].iloc[0]) and wide["/b/y"].iloc[1] == 50.0  # NaN beyond the tolerance
    with pytest.raises(DataFrameError, match="direction"):
        df.align("/a", 5, "sideways")
    with pytest.raises(DataFrameError, match="tolerance"):
        df.align("/a", -1)


def test_nearest_tie_takes_the_earlier():
    df = prf.RoboticsDataFrame({"/r": pa.table({"log_time": pa.array([10], pa.int64())}),
                                "/s": pa.table({"log_time": pa.array([5, 15], pa.int64()), "i": [0, 1]})})
    assert df.align("/r", None, "nearest")["/s"].column("i").to_pylist() == [0]


def test_resample_hand_computed():
    df = _frame()
    lin = df.resample(5, "linear")
    assert lin["/a"].column("log_time").to_pylist() == [0, 5, 10, 15, 20, 25, 30]
    assert lin["/a"].column("x").to_pylist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert lin["/a"].column("v").to_pylist()[1] == [0.5, 1.0]
    assert lin["/a"].column("k").to_pylist() == [1, 1, 2, 2, 3, 3, 4]  # integers hold the previous value
    # /b: samples at 5, 25, 26 -> no value before 5 or after 26 (no extrapolation)
    assert lin["/b"].column("y").to_pylist() == [None, 50.0, 100.0, 150.0, 200.0, 250.0, None]
    assert lin["/b"].schema.field("y").type == pa.float32()
    prev = df.resample(5, "previous")["/b"]
    assert prev.column("s").to_pylist() == [None, "p", "p", "p", "p", "q", "r"]
    near = df.resample(5, "nearest", tolerance_ns=3)["/b"]
    assert near.column("s").to_pylist() == [None, "p", None, None, None, "q", None]  # 30 is 4 from 26
    tol = df.resample(5, "linear", tolerance_ns=10)["/b"]
    assert tol.column("y").to_pylist() == [None, 50.0, None, 150.0, None, 250.0, None]  # both sides <= 10 at 15
    with pytest.raises(DataFrameError, match="period"):
        df.resample(0)
    with pytest.raises(DataFrameError, match="method"):
        df.resample(5, "cubic")


def test_to_arrow_needs_alignment():
    df = _frame()
    with pytest.raises(DataFrameError, match="align"):
        df.to_arrow()
    assert df.to_arrow("/a").num_rows == 4
    wide = df.resample(10, "previous").to_arrow()
    assert wide.column_names[:3] == ["log_time", "/a/source_log_time", "/a/x"]


def test_save_round_trip(tmp_path):
    df = _frame().align("/a", 6)
    p = df.save(tmp_path / "saved")
    back = prf.RoboticsDataFrame.from_converted(p)
    assert back.aligned and back.topics == df.topics
    for t in df.topics:
        assert back[t].equals(df[t])
    with pytest.raises(LogError, match="exists"):
        df.save(tmp_path / "saved")
    with pytest.raises(LogError, match="metadata.json"):
        prf.RoboticsDataFrame.from_converted(tmp_path)


def test_from_log_equals_from_converted(tmp_path):
    bag = SHARED_DATA / "ros1bag/turtlesim_rosbagjs/fixtures/example.bag"
    a = prf.RoboticsDataFrame.from_log(bag, topics=["/turtle1/pose", "/turtle1/cmd_vel"], progress=False)
    assert a.report.topics["/turtle2/pose"].skipped == {"not_selected": 1344}
    prf.convert_log(bag, tmp_path / "c", progress=False)
    b = prf.RoboticsDataFrame.from_converted(tmp_path / "c")
    assert a.topics == ["/turtle1/cmd_vel", "/turtle1/pose"] or set(a.topics) == {"/turtle1/pose", "/turtle1/cmd_vel"}
    assert a["/turtle1/pose"].equals(b["/turtle1/pose"])
    al = b.align("/turtle1/pose", tolerance_ns=20_000_000, direction="backward", topics=["/turtle1/cmd_vel", "/turtle1/pose"])
    src = al["/turtle1/cmd_vel"].column("source_log_time").to_numpy(zero_copy_only=False)
    ref = al["/turtle1/pose"].column("log_time").to_numpy()
    ok = ~np.isnan(src)
    assert ok.any() and np.all(ref[ok] - src[ok] >= 0) and np.all(ref[ok] - src[ok] <= 20_000_000)
    p = b.save(tmp_path / "saved")
    assert prf.RoboticsDataFrame.from_converted(p)["/tf"].equals(b["/tf"])


# ---- properties ------------------------------------------------------------------------------------------
times_st = st.lists(st.integers(0, 1000), min_size=0, max_size=40).map(lambda x: np.array(sorted(x), np.int64))
query_st = st.lists(st.integers(-50, 1050), min_size=1, max_size=40).map(lambda x: np.array(sorted(x), np.int64))
tol_st = st.one_of(st.none(), st.integers(0, 200))


def _brute(times, q, tol, direction):
    best = -1
    for i, t in enumerate(times):
        d = abs(int(t) - int(q))
        if tol is not None and d > tol:
            continue
        if direction == "backward" and t <= q and (best < 0 or t >= times[best]):
            best = i
        elif direction == "forward" and t >= q and (best < 0 or t < times[best]):
            best = i
        elif direction == "nearest":
            if best < 0:
                best = i
            else:
                db = abs(int(times[best]) - int(q))
                if d < db or (d == db and t < times[best]):
                    best = i
                elif d == db and t == times[best] and t <= q:
                    best = i  # equal times before the query: the last one (as backward)
    return best


@settings(max_examples=150, deadline=None)
@given(times=times_st, query=query_st, tol=tol_st, direction=st.sampled_from(["backward", "forward", "nearest"]))
def test_asof_matches_brute_force(times, query, tol, direction):
    got = asof_indices(times, query, tol, direction)
    for q, g in zip(query, got):
        want = _brute(times, q, tol, direction)
        if want < 0:
            assert g == -1
        else:
            assert g >= 0 and times[g] == times[want]  # same time (duplicates may differ in index)
            if direction == "backward":
                assert g == max(i for i in range(len(times)) if times[i] == times[want])
            if direction == "forward":
                assert g == min(i for i in range(len(times)) if times[i] == times[want])


@settings(max_examples=80, deadline=None)
@given(times=times_st, ref=query_st, tol=tol_st, direction=st.sampled_from(["backward", "forward", "nearest"]))
def test_align_properties(times, ref, tol, direction):
    df = prf.RoboticsDataFrame({
        "/ref": pa.table({"log_time": pa.array(ref)}),
        "/x": pa.table({"log_time": pa.array(times), "v": pa.array(times.astype(np.float64) * 2)}),
    })
    out = df.align("/ref", tol, direction)
    lt = out["/x"].column("log_time").to_numpy()
    assert np.array_equal(lt, ref) and np.all(np.diff(lt) >= 0)
    src = out["/x"].column("source_log_time").to_pylist()
    vals = out["/x"].column("v").to_pylist()
    for r, s, v in zip(ref, src, vals):
        if s is None:
            assert v is None
            continue
        assert tol is None or abs(int(r) - s) <= tol
        assert v == 2.0 * s  # the row comes from the matched message
        if direction == "backward":
            assert s <= r
        if direction == "forward":
            assert s >= r


@settings(max_examples=80, deadline=None)
@given(
    times=st.lists(st.integers(0, 10_000), min_size=2, max_size=30, unique=True).map(lambda x: np.array(sorted(x), np.int64)),
    slope=st.floats(-5, 5, allow_nan=False), icept=st.floats(-100, 100, allow_nan=False),
    period=st.integers(1, 997),
)
def test_linear_resample_exact_on_linear_signals(times, slope, icept, period):
    sig = icept + slope * times.astype(np.float64)
    df = prf.RoboticsDataFrame({"/s": pa.table({
        "log_time": pa.array(times), "y": pa.array(sig),
        "vec": pa.array(np.stack([sig, -sig], 1).tolist(), pa.list_(pa.float64(), 2)),
    })})
    out = df.resample(period, "linear")["/s"]
    grid = out.column("log_time").to_numpy()
    assert grid[0] == times[0] and np.all(np.diff(grid) == period) and grid[-1] <= times[-1]
    y = np.array(out.column("y").to_pylist(), dtype=np.float64)
    want = icept + slope * grid.astype(np.float64)
    scale = 1 + abs(icept) + abs(slope) * 10_000
    assert np.all(np.isfinite(y)) and np.max(np.abs(y - want)) <= 1e-9 * scale
    vec = np.array(out.column("vec").to_pylist())
    assert np.max(np.abs(vec[:, 0] - want)) <= 1e-9 * scale and np.max(np.abs(vec[:, 1] + want)) <= 1e-9 * scale
    on_samples = np.isin(grid, times)
    assert np.array_equal(y[on_samples], sig[np.searchsorted(times, grid[on_samples])])  # exact at samples


@settings(max_examples=60, deadline=None)
@given(times=times_st, lo=st.integers(-10, 1010), width=st.integers(0, 600))
def test_slice_properties(times, lo, width):
    df = prf.RoboticsDataFrame({"/x": pa.table({"log_time": pa.array(times), "i": pa.array(np.arange(len(times)))})})
    out = df.slice(lo, lo + width)["/x"].column("log_time").to_numpy()
    assert np.array_equal(out, times[(times >= lo) & (times < lo + width)])
