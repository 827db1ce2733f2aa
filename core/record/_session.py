"""The recorder's MQTT client (paho-mqtt 2.x): MQTT v5, a persistent session, QoS 1, manual acks.

- ``clean_start=False`` and a session expiry interval: the broker keeps the subscriptions and queues
  QoS-1 messages published while the recorder is disconnected (broker restart, network loss, recorder
  restart with the same client id); they arrive after it reconnects.
- Manual acknowledgement: a message is acknowledged (PUBACK) only after the recorder has written it to
  its spool (or counted it as dropped). A message received but not yet acknowledged when the recorder
  dies is delivered again by the broker.
- Transports: plain TCP (``mqtt://``), TLS (``mqtts://``), websockets (``ws://``) and websockets over
  TLS (``wss://``); a username and password from the URL (``mqtt://user:pass@host``) or given apart
  (the password is never written to the recorder's files: :attr:`BrokerAddress.redacted`).
- Reconnects are automatic (paho's loop thread, backing off from 0.1 s to 2 s); every connection gets
  a generation number, and an acknowledgement for a message of an earlier connection is not sent (the
  packet id may have been reused; the broker redelivers that message, which the (topic, sequence id)
  de-duplication removes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal
from urllib.parse import quote, unquote, urlparse

from ..errors import RecordError

#: URL scheme -> (transport, TLS, default port)
SCHEMES: dict[str, tuple[str, bool, int]] = {
    "mqtt": ("tcp", False, 1883), "tcp": ("tcp", False, 1883), "mqtts": ("tcp", True, 8883),
    "ssl": ("tcp", True, 8883), "ws": ("websockets", False, 80), "wss": ("websockets", True, 443)}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where and how to reach the broker (see :func:`parse_url`)."""

    host: str
    port: int
    transport: Literal["tcp", "websockets"] = "tcp"
    tls: bool = False
    path: str = "/mqtt"  # the websocket path
    username: str | None = None
    password: str | None = None

    @property
    def redacted(self) -> str:
        """The URL without the password (what logs and the recorder's files hold)."""
        scheme = {("tcp", False): "mqtt", ("tcp", True): "mqtts", ("websockets", False): "ws",
                  ("websockets", True): "wss"}[(self.transport, self.tls)]
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        path = self.path if self.transport == "websockets" else ""
        return f"{scheme}://{user}{self.host}:{self.port}{path}"

    def __repr__(self) -> str:
        return f"BrokerAddress({self.redacted!r})"


def parse_url(url: str) -> BrokerAddress:
    """``SCHEME://[USER[:PASSWORD]@]HOST[:PORT][/PATH]`` (or plain ``HOST[:PORT]``, as ``mqtt://``) ->
    :class:`BrokerAddress`. Schemes: ``mqtt``/``tcp`` (port 1883), ``mqtts``/``ssl`` (TLS, 8883), ``ws``
    (websockets, 80), ``wss`` (websockets over TLS, 443); ``PATH`` is the websocket path (default ``/mqtt``).

    Raises:
        RecordError: another scheme (the message lists the allowed ones), no host, a bad port.
    """
    s = str(url)
    if "://" not in s:
        s = "mqtt://" + s
    u = urlparse(s)
    if u.scheme not in SCHEMES:
        raise RecordError(f"{_redact(url)!r}: broker URL scheme must be one of {sorted(SCHEMES)}, got {u.scheme!r}")
    if not u.hostname:
        raise RecordError(f"{_redact(url)!r}: no broker host")
    transport, tls, default_port = SCHEMES[u.scheme]
    try:
        port = u.port or default_port
    except ValueError:
        raise RecordError(f"{_redact(url)!r}: bad port") from None
    return BrokerAddress(u.hostname, port, transport, tls, u.path or "/mqtt",  # type: ignore[arg-type]
                         unquote(u.username) if u.username else None, unquote(u.password) if u.password else None)


def _redact(url: str) -> str:
    u = urlparse(str(url))
    return str(url).replace(f":{u.password}@", ":***@") if u.password else str(url)


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings for ``mqtts://`` / ``wss://`` (paho's ``tls_set``): ``ca_certs`` the CA bundle
    (default: the system's), ``certfile`` / ``keyfile`` a client certificate."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None


#: called from paho's network thread per message: (topic, payload, receive time ns, ack token)
OnMessage = Callable[[str, bytes, int, tuple], None]


class MqttSession:
    """One persistent MQTT v5 session subscribed to ``topics`` at QoS 1.

    Args:
        url: the broker (see :func:`parse_url`).
        topics: topic filters to subscribe to.
        client_id: the session's identity at the broker (the same id resumes the same session).
        session_expiry_s: how long the broker keeps the session (and queues messages) while disconnected.
        on_message: called in the network thread for every message.
        receive_maximum: the most unacknowledged QoS-1 messages the broker may send at once.
        username, password: credentials (override the URL's).
        tls: certificates for a TLS broker (``mqtts://``, ``wss://``).
    """

    def __init__(self, url: str, topics: list[str], client_id: str, session_expiry_s: int,
                 on_message: OnMessage, receive_maximum: int = 65535, *, username: str | None = None,
                 password: str | None = None, tls: TlsOptions | None = None):
        self.address = parse_url(url)
        self.host, self.port = self.address.host, self.address.port
        self.username = username if username is not None else self.address.username
        self.password = password if password is not None else self.address.password
        self.tls = tls or TlsOptions()
        self.url, self.topics, self.client_id = self.address.redacted, list(topics), client_id
        self.session_expiry_s = int(session_expiry_s)
        self.receive_maximum = int(receive_maximum)
        self._on_message = on_message
        self.generation = 0
        self.connects = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self._answered = threading.Event()  # the first CONNACK, accepted or not
        self.refused: str | None = None  # the first CONNACK's refusal
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
        a = self.address
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=True, transport=a.transport)
        if a.transport == "websockets":
            c.ws_set_options(path=a.path)
        if a.tls:
            try:
                c.tls_set(ca_certs=self.tls.ca_certs, certfile=self.tls.certfile, keyfile=self.tls.keyfile)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                raise RecordError(f"{self.url}: TLS settings {self.tls}: {e}") from None
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
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
        self._answered.wait(timeout_s)
        if self.refused:
            self.stop()
            raise RecordError(f"the MQTT broker {self.url} refused the connection: {self.refused}"
                              + (" (check the username and password)" if "authori" in self.refused.lower()
                                 or "password" in self.refused.lower() else ""))
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
            if not self._answered.is_set():
                self.refused = str(reason_code)
                self._answered.set()
            return
        self._answered.set()
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
        if not self._answered.is_set():  # closed before any CONNACK: start() fails now, saying so
            self.refused = f"the connection was closed before the broker answered ({reason_code})"
            if self.address.tls and self.tls.certfile is None:
                self.refused += "; a TLS listener that requires a client certificate does this (give certfile/keyfile)"
            self._answered.set()

    def _message(self, client, userdata, msg) -> None:  # noqa: ANN001
        self._on_message(msg.topic, msg.payload, time.time_ns(), (self.generation, msg.mid, msg.qos))
