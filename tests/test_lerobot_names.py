"""Issue #11 item 16: ``prf.open_dataset`` and ``prf.torch.Dataset`` accept LeRobot's argument names
where they mean the same (``root=``, ``video_backend=``, ``image_transforms=``), and ``episodes=`` takes
a SQL selection (issue #12)."""

from __future__ import annotations

import numpy as np
import pytest

import prf
from prf import transforms as T

from conftest import dataset_path

PUSHT = dataset_path("pusht_sim_v30")


def test_root_opens_the_folder_and_the_repo_id_is_only_a_name():
    ds = prf.open_dataset("lerobot/pusht", root=PUSHT, episodes=[0, 1])
    ref = prf.open_dataset(PUSHT, episodes=[0, 1])
    assert len(ds) == len(ref) and ds.meta.root == ref.meta.root
    np.testing.assert_array_equal(ds[5]["action"], ref[5]["action"])


def test_video_backend_is_backend():
    assert prf.open_dataset(PUSHT, video_backend="pyav", episodes=[0]).backend.name == "pyav"
    with pytest.raises(prf.errors.OptionsError, match="disagree"):
        prf.open_dataset(PUSHT, backend="torchcodec", video_backend="pyav")


def test_image_transforms_are_applied_to_every_camera():
    ds = prf.open_dataset(PUSHT, episodes=[0], image_transforms=T.CenterCrop(64))
    assert ds[3]["observation.image"].shape == (64, 64, 3)
    raw = prf.open_dataset(PUSHT, episodes=[0])[3]["observation.image"]
    np.testing.assert_array_equal(ds[3]["observation.image"], raw[16:80, 16:80])


def test_torch_dataset_takes_the_same_names():
    pytest.importorskip("torch")
    import prf.torch

    tds = prf.torch.Dataset("lerobot/pusht", root=PUSHT, video_backend="pyav", episodes=[0],
                            image_transforms=T.CenterCrop(48))
    assert tuple(tds[0]["observation.image"].shape) == (48, 48, 3)


def test_episodes_as_sql_selection():
    pytest.importorskip("duckdb")
    ds = prf.open_dataset(PUSHT, episodes="SELECT episode_index FROM episodes WHERE episode_index IN (2, 5)")
    assert list(ds.episodes) == [2, 5]
