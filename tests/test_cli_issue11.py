"""Issue 11 items 10 and 15: the command line as a new user tries it (subprocesses)."""

from __future__ import annotations

import json
import shutil

from test_cli import run


def test_info_strict_fails_when_no_episode_has_its_videos(copy_dataset):
    root = copy_dataset("so101_wrist_v30")
    shutil.rmtree(root / "videos")
    r = run("info", str(root), "--json", "--strict")
    assert r.returncode == 3, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    d = json.loads(r.stdout)
    assert d["episodes_present"] == 0
    assert any("none of the 6 episodes" in p for p in d["problems"])
    cam = d["cameras"][0]
    assert cam["files"] == 0 and any("no episode has its video file" in m for m in cam["mismatches"])
    plain = run("info", str(root))  # without --strict: described, exit 0, the problem shown
    assert plain.returncode == 0 and "PROBLEM" in plain.stdout


def test_info_strict_accepts_a_partial_download():
    """A partial download (some episodes with all their files) is not an inconsistency."""
    from conftest import dataset_path

    r = run("info", str(dataset_path("g1_cam_high_v21_subset")), "--json", "--strict")
    assert r.returncode == 0, r.stdout[-2000:]
    assert json.loads(r.stdout)["problems"] == []
