"""The examples train a tiny policy for a few steps on pusht_sim_v30 and the loss falls, one per framework."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, dataset_path

EXAMPLES = {
    "torch_train.py": (["torch"], ["--steps", "30"]),
    "mlx_train.py": (["mlx"], ["--steps", "30"]),
    "jax_train.py": (["jax", "grain", "optax"], ["--steps", "30"]),
    # 3 epochs of 5 steps from a PyDataset, then 3 from tf.data
    "keras_train.py": (["keras", "tensorflow"], ["--steps", "30", "--steps-per-epoch", "5"]),
}


def run_example(script: str, args: list[str], env: dict[str, str] | None = None) -> list[float]:
    cmd = [sys.executable, str(REPO / "examples" / script), "--dataset", str(dataset_path("pusht_sim_v30")),
           "--json", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, **(env or {})})
    assert r.returncode == 0, f"{script} failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])["losses"]


def require(modules: list[str]) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} not installed: CI must run every example")
        pytest.skip(f"{missing} not installed (pip install 'prf[all,test]')")


@pytest.mark.parametrize("script", list(EXAMPLES))
def test_example_loss_falls(script):
    modules, args = EXAMPLES[script]
    require(modules)
    losses = run_example(script, args)
    assert len(losses) >= 6 and np.isfinite(losses).all()
    k = max(1, len(losses) // 5)
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    assert last < 0.5 * first, f"{script}: loss did not fall: {losses}"
