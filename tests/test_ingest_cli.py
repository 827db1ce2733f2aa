"""``prf convert``: report output (text and --json), exit codes 0 / 1 / 2 / 4."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from conftest import SHARED_DATA
from prf.cli import main

TURTLE = SHARED_DATA / "ros1bag/turtlesim_rosbagjs/fixtures/example.bag"


def test_convert_json(tmp_path, capsys):
    rc = main(["convert", str(TURTLE), str(tmp_path / "o"), "--json", "--topics", "/turtle1/pose", "/rosout"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["messages_in_log"] == 8647 and rep["complete"]
    assert rep["topics"]["/turtle1/pose"]["written"] == 1344
    assert rep["topics"]["/tf"]["skipped"] == {"not_selected": rep["topics"]["/tf"]["total"]}
    assert pq.read_metadata(tmp_path / "o" / "turtle1.pose.parquet").num_rows == 1344


def test_convert_text_and_exit_codes(tmp_path, capsys):
    assert main(["convert", str(TURTLE), str(tmp_path / "o"), "--start", "1396293890000000000"]) == 0
    out = capsys.readouterr().out
    assert "outside_time_range" in out and "/turtle1/pose" in out
    assert main(["convert", str(TURTLE), str(tmp_path / "o")]) == 1  # exists
    assert "already exists" in capsys.readouterr().err
    wrong = SHARED_DATA / "ros2bag/rosbag2_test_resources/rosbag2_tests/resources/mcap/wrong_rmw_test"
    assert main(["convert", str(wrong), str(tmp_path / "w"), "--quiet"]) == 4  # converted in part
    empty = SHARED_DATA / "ros1bag/turtlesim_rosbagjs/fixtures/empty-file.bag"
    assert main(["convert", str(empty), str(tmp_path / "e")]) == 1
    assert "empty" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "missing.bag"), str(tmp_path / "m")]) == 1
    with pytest.raises(SystemExit) as e:
        main(["convert", str(TURTLE)])
    assert e.value.code == 2


def test_import_prf_stays_light():
    """``import prf`` loads no log library (they are imported when a log is read)."""
    import subprocess
    import sys

    code = ("import sys, prf; heavy = [m for m in ('mcap', 'rosbags', 'mcap_ros2', 'mcap_protobuf', 'google.protobuf', "
            "'pandas', 'polars', 'duckdb', 'torch') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
