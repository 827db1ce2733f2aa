"""The loader profile (Loader.profile, prf profile): stage times add up to the wall time, counters
are exact, profiling is off by default and does not move the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import prf
from prf import _profile
from prf.loading import ConvertedLoader
from prf.loading.profile import format_text

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lerobot"
SO101 = DATA / "so101_wrist_v30"
ALOHA = DATA / "aloha_multicam_v30"


def _check_adds_up(p: dict) -> None:
    main_sum = sum(v["s"] for v in p["main"].values())
    assert main_sum == pytest.approx(p["main_s"], abs=1e-5)
    # the calling thread's exclusive stages cover its wall time within 10% (or 1 ms: a loader without
    # cameras runs 4 batches in under a millisecond, where the timers' own overhead is that 10%)
    assert abs(p["wall_s"] - main_sum) <= max(0.10 * p["wall_s"], 1e-3), format_text(p)
    assert p["unaccounted_s"] == pytest.approx(p["wall_s"] - p["main_s"], abs=1e-5)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stage_times_add_up_to_wall_time_multicam(num_workers):
    ds = prf.open_dataset(ALOHA, delta_timestamps={"action": [i / 30 for i in range(4)],
                                                   "observation.images.top": [-1 / 30, 0.0]})
    with ds.loader(4, shuffle=True, seed=1, num_workers=num_workers, normalize={"action": "mean_std"}) as lo:
        p = lo.profile(10)
    _check_adds_up(p)
    assert p["batches"] == 10 and p["samples"] == 40 and p["batch_size"] == 4
    # per batch: top has a 2-step window, angle and left_wrist one frame each
    assert p["frames_delivered"] == 10 * 4 * (2 + 1 + 1)
    assert p["frames_decoded"] >= 1 and p["decode_tasks"] >= 3
    stages = p["main"] if num_workers == 0 else p["workers"]
    for cam in ds.cameras:
        assert stages[f"decode {cam}"]["calls"] >= 1 and stages[f"decode {cam}"]["s"] > 0
    assert stages["normalize"]["calls"] >= 10
    assert stages["assemble"]["calls"] >= 10
    assert p["main"]["planning"]["calls"] >= 1 and p["main"]["parquet rows"]["calls"] >= 1
    assert p["samples_per_s"] == pytest.approx(p["samples"] / p["wall_s"], rel=1e-3)
    if num_workers:
        assert p["main"]["waiting for workers"]["calls"] == 10
        assert 1 <= p["worker_threads"] <= 2
        assert "decode observation.images.top" not in p["main"]
    else:
        assert p["workers"] == {} and p["worker_threads"] == 0
    assert p["cache"]["decoder_opens"] + p["cache"]["decoder_reuse"] == p["decode_tasks"]
    text = format_text(p)
    assert "waiting for workers" in text and "decode observation.images.angle" in text


def test_profile_does_not_move_the_loader_and_batches_are_unchanged():
    ds = prf.open_dataset(SO101)
    with ds.loader(8, shuffle=True, seed=3, num_workers=2) as lo:
        state = lo.state_dict()
        p = lo.profile(3)
        assert lo.state_dict() == state
        first = next(iter(lo))
    _check_adds_up(p)
    with ds.loader(8, shuffle=True, seed=3, num_workers=2) as lo2:
        ref = next(iter(lo2))
    np.testing.assert_array_equal(first["observation.images.wrist"], ref["observation.images.wrist"])
    np.testing.assert_array_equal(first["index"], ref["index"])


def test_profile_stops_at_the_end_of_the_epoch():
    ds = prf.open_dataset(SO101, episodes=[1])
    n = len(ds)
    with ds.loader(64, num_workers=1) as lo:
        p = lo.profile(1000)
    assert p["batches"] == len(lo) == -(-n // 64)
    assert p["samples"] == n and p["frames_delivered"] == n
    _check_adds_up(p)


def test_converted_loader_times_the_conversion():
    ds = prf.open_dataset(SO101, cameras=[])
    calls = []

    def convert(batch):
        calls.append(1)
        return {k: v for k, v in batch.items()}

    with ConvertedLoader(prf.Loader(ds, batch_size=16, num_workers=0), convert) as lo:
        p = lo.profile(4)
    assert len(calls) == 4 and p["main"]["convert"]["calls"] == 4
    assert p["frames_delivered"] == 0 and p["samples"] == 64
    _check_adds_up(p)


def test_profiling_is_off_by_default():
    assert _profile.current() is None
    assert _profile.stage("planning") is _profile._NULL  # the shared no-op: nothing recorded
    _profile.count("x")  # no recorder: a no-op
    rec = _profile.Recorder()
    with rec.active():
        assert _profile.current() is rec
        with _profile.stage("a"):
            with _profile.stage("b"):
                pass
        _profile.count("x", 3)
    assert _profile.current() is None
    snap = rec.snapshot()
    assert set(snap["main"]) == {"a", "b"} and snap["counts"] == {"x": 3}
    assert snap["main"]["a"][1] == 1 and snap["main"]["b"][1] == 1


def test_bad_batches_is_a_value_error():
    ds = prf.open_dataset(SO101, cameras=[])
    with pytest.raises(ValueError, match="batches"):
        ds.loader(4).profile(0)


def test_cli_profile_json():
    out = subprocess.run([sys.executable, "-m", "prf.cli", "profile", str(SO101), "--batches", "3",
                          "--batch-size", "4", "--num-workers", "1", "--window", "5", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout)
    assert p["batches"] == 3 and p["samples"] == 12 and p["frames_delivered"] == 12
    assert p["dataset"] == str(SO101)
    _check_adds_up(p)
    assert p["workers"]["decode observation.images.wrist"]["calls"] >= 1


def test_adapter_conversion_is_a_stage():
    pytest.importorskip("torch")
    ds = prf.open_dataset(SO101)
    with ds.loader(4, output="torch", num_workers=1) as lo:
        p = lo.profile(3)
    assert p["main"]["convert"]["calls"] == 3 and p["samples"] == 12 and p["frames_delivered"] == 12
    _check_adds_up(p)
