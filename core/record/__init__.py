"""prf.record: record live robot data from a message broker (MQTT) into a LeRobot v3.0 dataset.

``prf.record_mqtt(url, out, topics=[...], cameras={...}, fps=30)`` / ``prf record mqtt://HOST:PORT
--topic T --camera KEY=TOPIC --fps N OUT``. See :mod:`prf.record.recorder` for the data flow, the
files written, the accounting and the restart rule. Needs ``paho-mqtt`` 2.x (``pip install
'prf[record]'``), imported when a recording starts.
"""

from ._payload import protobuf_decoder
from .recorder import RecordReport, Recorder, TopicCounts, record_mqtt

__all__ = ["record_mqtt", "Recorder", "RecordReport", "TopicCounts", "protobuf_decoder"]
