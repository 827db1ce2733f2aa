"""``prf info --strict`` fails (exit 3) exactly when ``prf validate`` finds an error: on each one-defect
copy of a shared dataset (the defects of tests/test_query_validate.py, warnings-only ones included) and
on every shared dataset as it is."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("duckdb")

import prf
from prf.cli import main

from conftest import DATASETS, dataset_path, edit_info
from test_cli import run
from test_query_validate import DATA, EPISODES, _edit_parquet, _set_col


def _features(root, **changes):
    info = json.loads((root / "meta/info.json").read_text())
    for key, (field, value) in changes.items():
        info["features"][key][field] = value
    edit_info(root, features=info["features"])


def _shift_timestamps(root):
    def fn(t):
        ts = t.column("timestamp").to_numpy().copy()
        m = (t.column("episode_index").to_numpy() == 1) & (t.column("frame_index").to_numpy() >= 100)
        ts[m] += 0.51
        return _set_col(t, "timestamp", ts)
    _edit_parquet(root / DATA, fn)


def _frame_index_plus_one(root):
    _edit_parquet(root / DATA, lambda t: _set_col(t, "frame_index", np.where(
        t.column("episode_index").to_numpy() == 3, t.column("frame_index").to_numpy() + 1,
        t.column("frame_index").to_numpy())))


def _episode_range(root):
    _edit_parquet(root / EPISODES, lambda t: _set_col(t, "dataset_to_index", [
        v + (1 if e == 5 else 0) for e, v in zip(t.column("episode_index").to_pylist(),
                                                 t.column("dataset_to_index").to_pylist())]))


def _span_half_frame(root):
    key = "videos/observation.images.top/from_timestamp"
    _edit_parquet(root / EPISODES, lambda t: _set_col(t, key, [
        v + (0.5 / 30 if e == 4 else 0.0) for e, v in zip(t.column("episode_index").to_pylist(), t.column(key).to_pylist())]))


def _short_video(root):
    vid = root / "videos/chunk-000/observation.image"
    shutil.copy(vid / "episode_000002.mp4", vid / "episode_000000.mp4")


def _stats_action_max(root):
    stats = json.loads((root / "meta/stats.json").read_text())
    stats["action"]["max"] = [v * 2 + 1 for v in stats["action"]["max"]]
    (root / "meta/stats.json").write_text(json.dumps(stats))


def _episode_stats(root):
    key = "stats/observation.state/min"
    _edit_parquet(root / EPISODES, lambda t: _set_col(t, key, [
        [x - 5 for x in v] if e == 7 else v for e, v in zip(t.column("episode_index").to_pylist(), t.column(key).to_pylist())]))


#: defect -> (dataset, mutation); one defect each (as tests/test_query_validate.py builds them)
DEFECTS = {
    "info.totals": ("pusht_sim_v30", lambda r: edit_info(r, total_frames=3851)),
    "files.missing": ("so101_wrist_v30", lambda r: shutil.rmtree(r / "videos")),
    "files.missing_data": ("pusht_sim_v21", lambda r: (r / "data/chunk-000/episode_000003.parquet").unlink()),
    "files.orphan (warning)": ("pusht_sim_v30", lambda r: shutil.copy(r / DATA, r / "data/chunk-000/file-007.parquet")),
    "schema.features": ("pusht_sim_v30", lambda r: _features(r, action=("shape", [3]))),
    "schema.missing_column": ("pusht_sim_v30", lambda r: _edit_parquet(r / DATA, lambda t: t.drop_columns(["next.done"]))),
    "video.fps": ("pusht_sim_v21", lambda r: edit_info(r, fps=20)),
    "video.shape": ("pusht_sim_v21", lambda r: _features(r, **{"observation.image": ("shape", [64, 96, 3])})),
    "index.continuity": ("pusht_sim_v30", _frame_index_plus_one),
    "index.ranges": ("pusht_sim_v30", _episode_range),
    "timestamps.grid": ("so101_wrist_v30", _shift_timestamps),
    "video.frames": ("pusht_sim_v21", _short_video),
    "video.frames_span": ("aloha_multicam_v30", _span_half_frame),
    "stats.present (warning)": ("pusht_sim_v30", lambda r: (r / "meta/stats.json").unlink()),
    "stats.consistent": ("pusht_sim_v30", _stats_action_max),
    "stats.episode": ("pusht_sim_v30", _episode_stats),
    "meta.readable": ("pusht_sim_v30", lambda r: (r / "meta/info.json").write_text("{not json")),
    "codec only (info mismatch, no validate error)": (
        "pusht_sim_v30", lambda r: _features(r, **{"observation.image": ("info", {
            **json.loads((r / "meta/info.json").read_text())["features"]["observation.image"]["info"],
            "video.codec": "h264"})})),
}


#: the error check each defect must raise (None: validate finds no error)
EXPECTED = {d: (None if d.endswith("(warning)") or d.startswith("codec only") else d.split("_")[0])
            for d in DEFECTS}
EXPECTED.update({"files.missing_data": "files.missing", "schema.missing_column": "schema.features",
                 "index.ranges": "index.continuity", "video.frames_span": "video.frames",
                 "stats.episode": "stats.consistent"})


def _strict(root, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["info", str(root), "--json", "--strict"])
    return rc, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_strict_fails_iff_validate_finds_an_error(defect, copy_dataset, capsys):
    name, mutate = DEFECTS[defect]
    root = copy_dataset(name)
    mutate(root)
    rep = prf.validate(root)
    errors = {f.check for f in rep.findings if f.severity == "error"}
    rc, out = _strict(root, capsys)
    assert rc == (0 if rep.ok else 3), (defect, rc, rep.format_text())
    assert out["strict"]["ok"] is rep.ok
    assert {f["check"] for f in out["strict"]["findings"] if f["severity"] == "error"} == errors
    assert out["strict"]["errors"] == len(rep.errors)
    want = EXPECTED[defect]
    if want is None:  # a warning only, or a mismatch validate does not count: --strict passes
        assert rep.ok and rc == 0
    else:
        assert not rep.ok and rc == 3 and want in errors, (defect, errors)


@pytest.mark.parametrize("name", DATASETS)
def test_strict_on_every_shared_dataset_agrees_with_validate(name, capsys):
    rep = prf.validate(dataset_path(name))
    rc, out = _strict(dataset_path(name), capsys)
    if name == "g1_cam_high_v21_subset":  # a partial download: validate's files.missing errors fail --strict
        assert not rep.ok and rc == 3 and {f["check"] for f in out["strict"]["findings"]} == {"files.missing"}
    else:
        assert rep.ok and rc == 0 and out["strict"]["findings"] == [], rep.format_text()
    assert out["codebase_version"]  # info's description is still there


def test_strict_names_the_check_from_the_command_line(copy_dataset):
    root = copy_dataset("so101_wrist_v30")
    _shift_timestamps(root)
    r = run("info", str(root), "--strict")
    assert r.returncode == 3, (r.stdout[-2000:], r.stderr[-2000:])
    assert "strict         FAILED" in r.stdout and "timestamps.grid" in r.stdout and "episode 1" in r.stdout
    plain = run("info", str(root))  # without --strict: described, exit 0, validate not run
    assert plain.returncode == 0 and "timestamps.grid" not in plain.stdout
    ok = run("info", str(dataset_path("aloha_multicam_v30")), "--strict", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["strict"]["ok"] is True
