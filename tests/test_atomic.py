"""prf._atomic: temporary folders of dead writers are swept, those of live writers and of other outputs stay."""

import os
import subprocess
import sys

from prf._atomic import sweep_stale, temp_dir_for


def test_sweep_removes_only_dead_writers_folders_of_that_output(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    stale = tmp_path / f".out.prf-tmp-{dead.pid}-0123abcd"
    stale_old = tmp_path / f".out.prf-old-{dead.pid}-0123abce"
    live = tmp_path / f".out.prf-tmp-{os.getpid()}-0123abcf"
    other = tmp_path / f".other.prf-tmp-{dead.pid}-0123abd0"
    for d in (stale, stale_old, live, other):
        (d / "x").mkdir(parents=True)
    removed = sweep_stale(out)
    assert sorted(removed) == sorted([stale, stale_old])
    assert live.is_dir() and other.is_dir() and not stale.exists() and not stale_old.exists()
    fresh = temp_dir_for(out)
    assert fresh.parent == tmp_path and fresh.name.startswith(f".out.prf-tmp-{os.getpid()}-") and not fresh.exists()
