"""prf.ingest: robot logs (MCAP, ROS 1 bags, ROS 2 bags) -> per-topic Parquet -> a time-indexed
:class:`RoboticsDataFrame` -> LeRobot v3.0 datasets.

Importing this package is light: the log libraries (``mcap``, ``mcap-ros2-support``,
``mcap-protobuf-support``, ``rosbags``; ``pip install 'prf[ingest]'``) are imported when a log is read.
"""

from .convert import ConversionReport, TopicReport, convert_log, open_log
from .dataframe import RoboticsDataFrame
from .to_lerobot import log_to_lerobot

__all__ = ["convert_log", "open_log", "ConversionReport", "TopicReport", "RoboticsDataFrame", "log_to_lerobot"]
