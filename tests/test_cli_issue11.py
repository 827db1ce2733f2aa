"""Issue 11 items 10 and 15: the command line as a new user tries it (subprocesses)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

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


def test_info_strict_on_a_partial_download():
    """A partial download (some episodes with all their files) is described as consistent by info, but
    prf validate reports the absent files (files.missing errors), and --strict fails exactly when
    validate finds an error (issue 12)."""
    from conftest import dataset_path

    r = run("info", str(dataset_path("g1_cam_high_v21_subset")), "--json", "--strict")
    out = json.loads(r.stdout)
    assert out["problems"] == [] and out["episodes_present"] == 2
    assert r.returncode == 3 and {f["check"] for f in out["strict"]["findings"]} == {"files.missing"}
    assert run("info", str(dataset_path("g1_cam_high_v21_subset"))).returncode == 0


def test_cache_build_takes_options_after_the_subcommand(tmp_path):
    from conftest import dataset_path

    ds = str(dataset_path("pusht_sim_v30"))
    r = run("cache", "build", "--json", "--cache-dir", str(tmp_path / "c"), ds, "--size", "16x16")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["videos"] > 0 and len(out["entries"]) == out["videos"]
    r2 = run("cache", "clean", "--json", "--cache-dir", str(tmp_path / "c"))
    assert r2.returncode == 0 and json.loads(r2.stdout)["removed"] == []
    missing = run("cache", "build", "--json")
    assert missing.returncode == 2 and "dataset" in missing.stderr


@pytest.mark.parametrize("args, name", [(["--steps", "0"], "--steps"), (["--batch-size", "0"], "--batch-size"),
                                        (["--steps", "-3"], "--steps"), (["--num-workers", "-1"], "--num-workers")])
def test_demo_rejects_nonpositive_counts(args, name, tmp_path):
    r = run("demo", *args, env={"PRF_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert f"argument {name}: must be >=" in r.stderr
    assert "Traceback" not in r.stderr and "nan" not in r.stdout + r.stderr


def test_run_demo_rejects_zero_steps():
    pytest.importorskip("torch")
    from prf.torch.demo import run_demo

    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        run_demo(steps=0)


def test_info_on_a_hub_id_offline_is_one_line(tmp_path):
    pytest.importorskip("huggingface_hub")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    r = run("info", "lerobot/pusht", env=env, timeout=120)
    assert r.returncode == 1, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert lines[0].startswith("prf: error: lerobot/pusht:") and "HF_HUB_OFFLINE" in lines[0]


def test_demo_prints_no_requires_grad_warning(tmp_path):
    pytest.importorskip("torch")
    from conftest import dataset_path

    r = run("demo", "--dataset", str(dataset_path("pusht_sim_v30")), "--steps", "3", "--json",
            env={"PRF_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "always"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "requires_grad" not in r.stderr and "Warning" not in r.stderr, r.stderr[-2000:]
    assert json.loads(r.stdout)["steps"] == 3


@pytest.mark.parametrize("steps", ["1", "3", "9"])
def test_keras_example_with_few_steps(steps):
    from test_examples import require, run_example

    require(["keras", "tensorflow"])
    losses = run_example("keras_train.py", ["--steps", steps])
    assert 1 <= len(losses) and all(np.isfinite(losses))
