"""Issue 11 items 11-14: ROS 1 bags with roslib/Header, ROS 1 bags cut short, JSON MCAP camera topics with
base64 image bytes, and the exit code when only an empty topic has a schema problem."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import prf
from prf.cli import main
from conftest import SHARED_DATA

TURTLE = SHARED_DATA / "ros1bag/turtlesim_rosbagjs/fixtures/example.bag"


# ---- item 14 ----------------------------------------------------------------------------------------
def test_convert_exit_0_when_only_an_empty_topic_has_a_schema_problem(tmp_path, capsys):
    from mcap.writer import Writer

    path = tmp_path / "log.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        s_json = w.register_schema("J", "jsonschema", b"{}")
        s_bad = w.register_schema("pkg/msg/Bad", "ros2msg", b"this is not ! a definition [[[")
        good = w.register_channel("/good", "json", s_json)
        w.register_channel("/empty_bad", "cdr", s_bad)  # no message is ever published on it
        for i in range(10):
            w.add_message(good, log_time=1000 + i, publish_time=1000 + i, data=json.dumps({"v": i}).encode())
        w.finish()
    rc = main(["convert", str(path), str(tmp_path / "o"), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0, rep
    assert rep["complete"] and rep["failed_topics"] == [] and rep["messages_written"] == 10
    assert rep["topics"]["/empty_bad"]["total"] == 0 and "pkg/msg/Bad" in rep["topics"]["/empty_bad"]["error"]
    assert any("/empty_bad" in w_ and "no messages" in w_ for w_ in rep["warnings"])
    # a topic that has messages and a schema problem still makes the conversion partial (exit 4)
    with open(tmp_path / "b.mcap", "wb") as f:
        w = Writer(f)
        w.start()
        s_bad = w.register_schema("pkg/msg/Bad", "ros2msg", b"this is not ! a definition [[[")
        c = w.register_channel("/bad", "cdr", s_bad)
        w.add_message(c, log_time=1, publish_time=1, data=b"\0\1\0\0")
        w.finish()
    assert main(["convert", str(tmp_path / "b.mcap"), str(tmp_path / "o2"), "--quiet"]) == 4
