"""delta_timestamps windows: LeRobot's semantics, checked against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prf.errors import DeltaTimestampsError
from prf.windows import delta_indices, window_rows


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    offsets=st.lists(st.integers(-40, 40), min_size=1, max_size=8),
    data=st.data(),
)
def test_window_rows_match_reference(lengths, offsets, data):
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = int(sum(lengths))
    pos = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=20)))
    ep = np.searchsorted(starts, pos, side="right") - 1
    start, length = starts[ep], np.array(lengths)[ep]
    rows, pad = window_rows(pos - start, start, length, np.array(offsets))
    for b, p in enumerate(pos):
        s, L = start[b], length[b]
        for t, d in enumerate(offsets):
            # LeRobot: query = clamp(idx + d, ep_start, ep_end - 1); pad = idx + d outside [start, end)
            assert rows[b, t] == max(s, min(s + L - 1, p + d))
            assert pad[b, t] == (p + d < s or p + d >= s + L)
    assert (rows >= start[:, None]).all() and (rows < (start + length)[:, None]).all()  # never leave the episode


@pytest.mark.parametrize("fps", [10, 15, 30, 50])
def test_on_grid_offsets(fps):
    d = delta_indices({"a": [-2 / fps, 0.0, 1 / fps, 15 / fps]}, fps, ["a"], 1e-4)
    assert d["a"].tolist() == [-2, 0, 1, 15]


@settings(max_examples=100, deadline=None)
@given(k=st.integers(-100, 100), fps=st.sampled_from([10, 15, 20, 25, 30, 60]),
       frac=st.floats(0.0, 1.0), sign=st.sampled_from([-1, 1]))
def test_off_grid_rejected(k, fps, frac, sign):
    # off the grid by more than tolerance_s (up to half a frame): rejected
    off_s = 1.5e-4 + frac * (0.49 / fps - 1.5e-4)
    with pytest.raises(DeltaTimestampsError):
        delta_indices({"a": [k / fps + sign * off_s]}, fps, ["a"], 1e-4)
    # within tolerance_s of the grid: accepted, rounded to the frame
    assert delta_indices({"a": [k / fps + sign * frac * 0.9e-4]}, fps, ["a"], 1e-4)["a"].tolist() == [k]


@pytest.mark.parametrize("bad", [[], "0.1", [None], [float("nan")], [True], {"x": 1}])
def test_malformed_windows(bad):
    with pytest.raises(DeltaTimestampsError):
        delta_indices({"a": bad}, 30, ["a"], 1e-4)
