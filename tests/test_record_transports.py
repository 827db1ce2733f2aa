"""prf record over the broker transports a deployment uses, against a real mosquitto on 127.0.0.1: a
listener that demands a username and password (mosquitto_passwd's file), a TLS listener (a CA and a
server certificate for localhost / 127.0.0.1 made in the test with ``cryptography``), and websockets
(``ws://``, and ``wss://`` with that certificate) through a websocket server of the ``websockets``
library that relays each connection's bytes to mosquitto's plain listener (Debian's mosquitto 2.0.11
cannot open a websockets listener itself). Each records two episodes equal to what was published; a
wrong password or an unverifiable certificate is a clear error at start; the password is in none of
the recorder's files or its report."""

from __future__ import annotations

import datetime
import getpass
import asyncio
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from test_record import (MOSQUITTO, PRF, Publisher, _free_port, check_dataset, episode_messages, mqtt, publish_all,
                         stop_recorder, total_episodes, wait_for, wait_listening)

if not os.environ.get("CI"):
    pytestmark = pytest.mark.skipif(MOSQUITTO is None or mqtt is None or shutil.which("mosquitto_passwd") is None,
                                    reason="needs Debian's mosquitto (with mosquitto_passwd) and paho-mqtt")

USER, PASSWORD = "robot-7", "s3cr3t-pw:%@"


def _certificates(d: Path) -> tuple[Path, ...]:
    """A CA, a server certificate (localhost, 127.0.0.1) and a client certificate signed by it:
    (ca.pem, server.pem, server.key, client.pem, client.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prf test CA")])

    def signed(name: x509.Name, public_key, *extensions):  # noqa: ANN001
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name).public_key(public_key)
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1)))
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        return b.sign(ca_key, hashes.SHA256())

    def pem(cert) -> bytes:  # noqa: ANN001
        return cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(key) -> bytes:  # noqa: ANN001
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca = signed(ca_name, ca_key.public_key(), (x509.BasicConstraints(ca=True, path_length=None), True))
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = signed(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), server_key.public_key(),
                    (x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                  x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False))
    client = signed(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prf-recorder")]), client_key.public_key())
    out = []
    for name, data in (("ca.pem", pem(ca)), ("server.pem", pem(server)), ("server.key", key_pem(server_key)),
                       ("client.pem", pem(client)), ("client.key", key_pem(client_key))):
        (d / name).write_bytes(data)
        out.append(d / name)
    return tuple(out)


class SecureBroker:
    """mosquitto with four listeners: ``auth_port`` (password file, no anonymous clients), ``tls_port``
    (TLS with the test CA's server certificate), ``mtls_port`` (TLS that also requires a client
    certificate of the CA), ``plain_port`` (anonymous, what the websocket relay uses)."""

    def __init__(self, d: Path):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key, self.client_cert, self.client_key = _certificates(d)
        cert, key = self.cert, self.key
        pw = d / "passwords"
        subprocess.run([shutil.which("mosquitto_passwd"), "-c", "-b", str(pw), USER, PASSWORD], check=True,
                       capture_output=True)
        pw.chmod(0o600)
        self.auth_port, self.tls_port, self.plain_port, self.mtls_port = (_free_port() for _ in range(4))
        conf = d / "mosquitto.conf"
        conf.write_text(
            f"per_listener_settings true\nuser {getpass.getuser()}\nlog_dest file {d}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n"
            f"listener {self.auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
            f"listener {self.tls_port} 127.0.0.1\nallow_anonymous true\ncafile {self.ca}\ncertfile {cert}\nkeyfile {key}\n"
            f"listener {self.plain_port} 127.0.0.1\nallow_anonymous true\n"
            f"listener {self.mtls_port} 127.0.0.1\nallow_anonymous true\ncafile {self.ca}\ncertfile {cert}\n"
            f"keyfile {key}\nrequire_certificate true\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.proc, [self.auth_port, self.tls_port, self.plain_port, self.mtls_port],
                       d / "mosquitto.log")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def secure_broker(module_tmp):
    b = SecureBroker(module_tmp("secure"))
    yield b
    b.stop()


class WebsocketRelay:
    """A websocket server (subprotocol ``mqtt``, the ``websockets`` library) on 127.0.0.1 relaying each
    connection's binary messages to a TCP port and the replies back; TLS with ``cert``/``key`` when
    given. ``paths``: the request path of every connection."""

    def __init__(self, target_port: int, cert: Path | None = None, key: Path | None = None):
        from websockets.asyncio.server import serve

        self.port, self.paths, self._target = _free_port(), [], target_port
        ctx = None
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert), str(key))
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def main():
            self._stop = asyncio.Event()
            async with serve(self._relay, "127.0.0.1", self.port, subprotocols=["mqtt"], ssl=ctx):
                started.set()
                await self._stop.wait()

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()
        assert started.wait(10), "the websocket relay did not start"

    async def _relay(self, ws) -> None:  # noqa: ANN001
        self.paths.append(ws.request.path)
        reader, writer = await asyncio.open_connection("127.0.0.1", self._target)

        async def up():
            async for msg in ws:
                writer.write(msg if isinstance(msg, bytes) else msg.encode())
                await writer.drain()
            writer.close()

        async def down():
            while data := await reader.read(65536):
                await ws.send(data)
            await ws.close()

        await asyncio.gather(up(), down(), return_exceptions=True)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _publisher(port: int, **kw) -> Publisher:
    """test_record's QoS-1 publisher on ``port``, with credentials or a CA (``ca_certs``) when given."""
    return Publisher(SimpleNamespace(port=port), client_id=f"pub-{port}-{time.monotonic_ns()}", **kw)


def _record(url: str, out: Path, broker: SecureBroker, *extra: str, env=None) -> subprocess.Popen:
    cmd = [*PRF, "record", url, str(out), "--topic", "/a", "--topic", "/b", "--action", "/c", "--control", "/ctl",
           "--time-field", "t", "--seq-field", "seq", "--fps", "30", "--json", *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    log = broker.dir / "mosquitto.log"
    n0 = log.read_text().count("/ctl")
    wait_for(lambda: p.poll() is not None or log.read_text().count("/ctl") > n0, 30, "the recorder's subscription")
    assert p.poll() is None, p.communicate()[1][-3000:]
    return p


@pytest.mark.parametrize("transport", ["password", "tls", "client-cert", "ws", "wss"])
def test_record_over_transport(secure_broker, tmp_path, transport):
    b = secure_broker
    out = tmp_path / "ds"
    relay = None
    if transport in ("ws", "wss"):
        relay = WebsocketRelay(b.plain_port, *((b.cert, b.key) if transport == "wss" else ()))
        host = "localhost" if transport == "wss" else "127.0.0.1"
        url, env = f"{transport}://{host}:{relay.port}/robot-ws", None
        extra = ["--ca-certs", str(b.ca)] if transport == "wss" else []
        pub = _publisher(b.plain_port)
    elif transport == "client-cert":
        url, env = f"mqtts://localhost:{b.mtls_port}", None
        extra = ["--ca-certs", str(b.ca), "--certfile", str(b.client_cert), "--keyfile", str(b.client_key)]
        pub = _publisher(b.tls_port, ca_certs=b.ca)  # the same broker: what reaches one listener reaches all
    elif transport == "password":
        url, extra, env = f"mqtt://{USER}@127.0.0.1:{b.auth_port}", ["--password-env", "PRF_TEST_MQTT_PW"], \
            {"PRF_TEST_MQTT_PW": PASSWORD}
        pub = _publisher(b.auth_port, username=USER, password=PASSWORD)
    else:
        url, extra, env = f"mqtts://localhost:{b.tls_port}", ["--ca-certs", str(b.ca)], None
        pub = _publisher(b.tls_port, ca_certs=b.ca)
    rec = _record(url, out, b, *extra, env=env)
    lengths, tasks = [20, 15], ["pick", "place"]
    publish_all(pub, episode_messages(lengths, tasks, [], camera=False))
    wait_for(lambda: total_episodes(out) == 2, 120, "two episodes")
    rep = stop_recorder(rec)
    pub.close()
    if relay is not None:
        relay.stop()
        assert relay.paths and set(relay.paths) == {"/robot-ws"}  # the recorder came through the websocket
    assert rep["balanced"] and rep["episodes_written"] == 2
    check_dataset(out, lengths, tasks, None)
    files = [p for p in (out, out.parent / "ds.record") for p in p.rglob("*") if p.is_file()]
    assert files and not any(PASSWORD.encode() in p.read_bytes() for p in files)  # nowhere on disk
    assert PASSWORD not in json.dumps(rep) and rep["url"].startswith(url.split("://")[0] + "://")


def test_refused_connections_are_clear_errors(secure_broker, tmp_path):
    b = secure_broker
    cmd = [*PRF, "record", "--quiet", "--topic", "/a"]
    r = subprocess.run([*cmd, f"mqtt://{USER}@127.0.0.1:{b.auth_port}", str(tmp_path / "a"), "--password-env", "PW"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PW": "wrong"})
    assert r.returncode == 1 and "refused the connection" in r.stderr and "username and password" in r.stderr, r.stderr
    assert "wrong" not in r.stderr
    r = subprocess.run([*cmd, f"mqtts://localhost:{b.tls_port}", str(tmp_path / "b")],  # the system CAs: not ours
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cannot connect" in r.stderr and "certificate verify failed" in r.stderr, r.stderr
    r = subprocess.run([*cmd, f"mqtt://127.0.0.1:{b.auth_port}", str(tmp_path / "c"), "--password-env", "NOPE_UNSET"],
                       capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "NOPE_UNSET"})
    assert r.returncode == 1 and "NOPE_UNSET" in r.stderr and "not set" in r.stderr
    r = subprocess.run([*cmd, f"mqtts://localhost:{b.mtls_port}", str(tmp_path / "d"), "--ca-certs", str(b.ca)],
                       capture_output=True, text=True, timeout=60)  # no client certificate
    assert r.returncode == 1 and "closed before the broker answered" in r.stderr and "client certificate" in r.stderr, r.stderr
    r = subprocess.run([*cmd, f"mqtts://localhost:{b.mtls_port}", str(tmp_path / "e"), "--certfile", "/nonexistent.pem"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "TLS file /nonexistent.pem does not exist" in r.stderr, r.stderr
    r = subprocess.run([*cmd, f"mqtt://127.0.0.1:{b.plain_port}", str(tmp_path / "f"), "--ca-certs", str(b.ca)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "TLS files given for a broker without TLS" in r.stderr, r.stderr
    assert not any((tmp_path / n).exists() for n in "abcdef")
