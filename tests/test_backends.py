"""Backend selection and the allocator tuning the loader applies."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import prf
from prf.decode import get_backend, torchcodec_available
from conftest import dataset_path


def test_auto_picks_by_frame_size():
    small = prf.open_dataset(dataset_path("pusht_sim_v30"), backend="auto", cameras=[])
    big = prf.open_dataset(dataset_path("so101_wrist_v30"), backend="auto")
    assert big.backend.name == "pyav"  # 640x360: PyAV measured faster
    assert small.backend.name == ("torchcodec" if torchcodec_available() else "pyav")


def test_unknown_backend_and_device():
    with pytest.raises(ValueError, match="unknown decode backend"):
        get_backend("ffmpeg-cli")
    with pytest.raises(ValueError, match="CPU"):
        get_backend("pyav", device="cuda")


@pytest.mark.skipif(not torchcodec_available(), reason="torchcodec not installed")
def test_torchcodec_cuda_device_passes_through():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no GPU: NVDEC decoding is not tested here")
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), backend="torchcodec", device="cuda")
    assert ds[0]["observation.image"].shape == (96, 96, 3)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc only")
def test_malloc_tuning_applies_once_and_can_be_disabled():
    code = ("import prf.decode._malloc as m; print(m.tune_malloc(), m.tune_malloc())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert on.stdout.split() == ["True", "True"]
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "PRF_MALLOC_TUNING": "0"})
    assert off.stdout.split() == ["False", "False"]
    user = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, "MALLOC_TRIM_THRESHOLD_": "1000000"})
    assert user.stdout.split() == ["False", "False"]  # never overrides the user's own settings
