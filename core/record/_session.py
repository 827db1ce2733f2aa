"""The recorder's MQTT client (paho-mqtt 2.x): MQTT v5, a persistent session, QoS 1, manual acks.

- ``clean_start=False`` and a session expiry interval: the broker keeps the subscriptions and queues
  QoS-1 messages published while the recorder is disconnected (broker restart, network loss, recorder
  restart with the same client id); they arrive after it reconnects.
- Manual acknowledgement: a message is acknowledged (PUBACK) only after the recorder has written it to
  its spool (or counted it as dropped). A message received but not yet acknowledged when the recorder
  dies is delivered again by the broker.
- Reconnects are automatic (paho's loop thread, backing off from 0.1 s to 2 s); every connection gets
  a generation number, and an acknowledgement for a message of an earlier connection is not sent (the
  packet id may have been reused; the broker redelivers that message, which the (topic, sequence id)
  de-duplication removes).
"""

from __future__ import annotations

import threading
import time
from typing import Callable
from urllib.parse import urlparse

from ..errors import RecordError


def parse_url(url: str) -> tuple[str, int]:
    """``mqtt://HOST[:PORT]`` (or ``tcp://``, or plain ``HOST[:PORT]``) -> ``(host, port)``; port 1883 by default.

    Raises:
        RecordError: another scheme, or no host.
    """
    s = str(url)
    if "://" not in s:
        s = "mqtt://" + s
    u = urlparse(s)
    if u.scheme not in ("mqtt", "tcp"):
        raise RecordError(f"{url!r}: only mqtt://HOST:PORT brokers are supported (no TLS/websockets yet)")
    if not u.hostname:
        raise RecordError(f"{url!r}: no broker host")
    try:
        port = u.port or 1883
    except ValueError:
        raise RecordError(f"{url!r}: bad port") from None
    return u.hostname, port


#: called from paho's network thread per message: (topic, payload, receive time ns, ack token)
OnMessage = Callable[[str, bytes, int, tuple], None]


class MqttSession:
    """One persistent MQTT v5 session subscribed to ``topics`` at QoS 1.

    Args:
        url: ``mqtt://HOST:PORT``.
        topics: topic filters to subscribe to.
        client_id: the session's identity at the broker (the same id resumes the same session).
        session_expiry_s: how long the broker keeps the session (and queues messages) while disconnected.
        on_message: called in the network thread for every message.
        receive_maximum: the most unacknowledged QoS-1 messages the broker may send at once.
    """

    def __init__(self, url: str, topics: list[str], client_id: str, session_expiry_s: int,
                 on_message: OnMessage, receive_maximum: int = 65535):
        self.host, self.port = parse_url(url)
        self.url, self.topics, self.client_id = url, list(topics), client_id
        self.session_expiry_s = int(session_expiry_s)
        self.receive_maximum = int(receive_maximum)
        self._on_message = on_message
        self.generation = 0
        self.connects = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self._subscribed = threading.Event()
        self.last_error: str | None = None
        self.sub_error: str | None = None
        self.session_present = False
        self._client = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        """Connect, subscribe and start the network thread.

        Raises:
            RecordError: paho-mqtt is missing, or the broker cannot be reached/subscribed within ``timeout_s``.
        """
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
        except ImportError as e:
            raise RecordError(f"recording from MQTT needs paho-mqtt 2.x: pip install 'prf[record]' ({e})") from None
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=True)
        c.reconnect_delay_set(min_delay=0.1, max_delay=2)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.on_connect = self._connected
        c.on_disconnect = self._disconnected
        c.on_subscribe = self._on_subscribe
        c.on_message = self._message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        self._client = c
        try:
            c.connect(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        except OSError as e:
            raise RecordError(f"cannot connect to the MQTT broker {self.url} ({self.host}:{self.port}): {e}") from None
        c.loop_start()
        # a resumed session may deliver its queued messages before the SUBACK: the CONNACK is enough then
        if not self.connected.wait(timeout_s) or not (self._subscribed.wait(timeout_s) or self.session_present):
            self.stop()
            raise RecordError(f"the MQTT broker {self.url} did not accept the connection/subscription within "
                              f"{timeout_s:g} s ({self.last_error or 'no answer'})")
        if self.sub_error:
            self.stop()
            raise RecordError(f"the MQTT broker {self.url} refused the subscription: {self.sub_error}")

    def stop(self) -> None:
        """Disconnect (the broker keeps the session for ``session_expiry_s``) and end the network thread."""
        c, self._client = self._client, None
        if c is None:
            return
        try:
            c.disconnect()
        except Exception:  # noqa: BLE001 - already disconnected
            pass
        c.loop_stop()

    # ---- acks ------------------------------------------------------------------------------------
    def ack(self, token: tuple) -> bool:
        """Acknowledge the message of ``token``; False when its connection is gone (the broker redelivers it)."""
        gen, mid, qos = token
        c = self._client
        if c is None or qos == 0 or gen != self.generation or not self.connected.is_set():
            return False
        c.ack(mid, qos)
        return True

    # ---- paho callbacks (network thread) ---------------------------------------------------------
    def _connected(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            self.last_error = f"connection refused: {reason_code}"
            return
        self.generation += 1
        self.connects += 1
        self.session_present = bool(getattr(flags, "session_present", False))
        self.connected.set()
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        bad = [str(r) for r in reason_codes if r.is_failure]
        if bad:
            self.sub_error = f"{bad} for {self.topics}"
        self._subscribed.set()

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.connected.clear()
        self.disconnects += 1
        self.last_error = f"disconnected: {reason_code}"

    def _message(self, client, userdata, msg) -> None:  # noqa: ANN001
        self._on_message(msg.topic, msg.payload, time.time_ns(), (self.generation, msg.mid, msg.qos))
