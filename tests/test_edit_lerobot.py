"""LeRobot 0.4.4 reads every edit of the shared datasets (tests/_edit_cases.py: delete, split, merge,
subset of episodes/features/cameras, upgrade v2.1 -> v3.0, append, a compact write, GOPs re-encoded at a
cut) and its samples equal prf's reading of the source episodes: frames bit-equal where remuxed,
within the parity tolerance where re-encoded; numeric features bit-equal; indices re-based.

Runs when $PRF_LEROBOT_PYTHON names a Python with lerobot installed (CI sets it); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import prf
from _edit_cases import build_cases, compare, expected, sample_indices

LEROBOT_PYTHON = os.environ.get("PRF_LEROBOT_PYTHON")
SCRIPT = Path(__file__).parent / "tools" / "lerobot_readback_many.py"

pytestmark = pytest.mark.skipif(
    not LEROBOT_PYTHON or not Path(LEROBOT_PYTHON).is_file(),
    reason="PRF_LEROBOT_PYTHON is unset: set it to a Python with lerobot 0.4.4 (../shared/lerobot-reference.md) "
           "to check that LeRobot reads edited datasets",
)


@pytest.fixture(scope="module")
def lerobot_samples(module_tmp):
    tmp = module_tmp("edits")
    cases = build_cases(tmp)
    jobs = []
    for name, (root, _, _) in cases.items():
        jobs.append({"root": str(root), "out": str(tmp / f"{name}.npz"), "indices": sample_indices(root)})
    spec = tmp / "spec.json"
    spec.write_text(json.dumps(jobs))
    r = subprocess.run([LEROBOT_PYTHON, str(SCRIPT), str(spec)], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    return cases, {name: Path(j["out"]) for name, j in zip(cases, jobs)}


def test_lerobot_reads_every_edit(lerobot_samples, record_property):
    cases, outs = lerobot_samples
    failures = []
    worst = {}
    for name, (root, mapping, reencoded) in cases.items():
        out = outs[name]
        if Path(str(out) + ".err").exists():
            failures.append(f"{name}: LeRobot could not read {root}:\n{Path(str(out) + '.err').read_text()[-2000:]}")
            continue
        lr = dict(np.load(out))
        meta = prf.DatasetMeta(root)
        assert int(lr["__len__"]) == meta.total_frames, name
        assert int(lr["__episodes__"]) == meta.total_episodes == len(mapping), name
        idx = [int(i) for i in lr["__indices__"]]
        ref = expected(root, mapping, idx)
        try:
            worst[name] = compare(lr, ref, meta.camera_keys, reencoded, f"{name} (LeRobot)")
        except AssertionError as e:
            failures.append(str(e))
    record_property("max_abs_frame_diff", worst)
    print(worst)
    assert not failures, "\n".join(failures)
