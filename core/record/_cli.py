"""``prf record``: the command line of :func:`prf.record_mqtt`."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from ..errors import RecordError


def _key_value(text: str) -> tuple[str, str]:
    k, sep, v = text.partition("=")
    if not sep or not k or not v:
        raise argparse.ArgumentTypeError(f"expected KEY=TOPIC, got {text!r}")
    return k, v


def _proto(text: str) -> tuple[str, str]:
    t, sep, cls = text.partition("=")
    if not sep or ":" not in cls:
        raise argparse.ArgumentTypeError(f"expected TOPIC=package.module:MessageClass, got {text!r}")
    return t, cls


def _password(env: str | None) -> str | None:
    import os

    if env is None:
        return None
    if env not in os.environ:
        raise RecordError(f"--password-env {env}: the environment variable is not set")
    return os.environ[env]


def _cmd_record(args: argparse.Namespace) -> int:
    from . import protobuf_decoder, record_mqtt

    decoders = {}
    for topic, spec in args.proto or []:
        mod, _, name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError) as e:
            raise RecordError(f"--proto {topic}={spec}: cannot import the message class ({e})") from None
        decoders[topic] = protobuf_decoder(cls)
    rep = record_mqtt(
        args.url, args.out, topics=args.topic, actions=args.action or [], cameras=dict(args.camera or []),
        fps=args.fps, control_topic=args.control, idle_gap_s=args.idle_gap, task=args.task,
        time_field=args.time_field, seq_field=args.seq_field, decoders=decoders, queue_size=args.queue_size,
        block_s=args.block, client_id=args.client_id, session_expiry_s=args.session_expiry,
        record_dir=args.record_dir, duration_s=args.duration, robot_type=args.robot_type,
        progress=not args.quiet, video_codec=args.video_codec, username=args.username,
        password=_password(args.password_env), ca_certs=args.ca_certs, certfile=args.certfile, keyfile=args.keyfile)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
    elif not args.quiet:
        print(rep.format_text(), file=sys.stderr)
    return 0 if rep.balanced and not any(e.get("error") for e in rep.episodes) else 4


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record", help="record live MQTT topics into a LeRobot dataset (needs prf[record])",
        description="Subscribe (QoS 1, persistent MQTT v5 session) to state/action/camera topics and record "
        "them into the LeRobot v3.0 dataset OUT, one episode at a time (control topic start/stop, or an idle "
        "gap): per-topic Parquet in OUT.record/episodes/, each finished episode resampled onto the fps grid, "
        "cameras encoded to video, and appended atomically to OUT. Ctrl-C / SIGTERM finish the current "
        "episode. A killed recorder restarted with the same OUT finishes its partial episode. Exit code 4 "
        "when a message is unaccounted for or an episode could not be written.")
    p.add_argument("url", help="broker: mqtt://HOST[:PORT] (1883), mqtts:// (TLS, 8883), ws://HOST[:PORT][/PATH] "
                   "(websockets, 80, path /mqtt), wss:// (websockets over TLS, 443); USER@ before HOST for a username")
    p.add_argument("out", help="dataset folder (created by the first episode, later ones appended)")
    p.add_argument("--topic", action="append", required=True, metavar="TOPIC", help="state topic (repeatable)")
    p.add_argument("--action", action="append", metavar="TOPIC", help="action topic (repeatable)")
    p.add_argument("--camera", action="append", type=_key_value, metavar="KEY=TOPIC",
                   help="camera topic (JPEG/PNG bytes or foxglove.CompressedImage); KEY without a dot becomes "
                   "observation.images.KEY")
    p.add_argument("--fps", type=int, default=30, help="dataset frame rate (default 30)")
    p.add_argument("--control", default=None, metavar="TOPIC", help="control topic: start/stop [task]")
    p.add_argument("--idle-gap", type=float, default=None, metavar="S", help="end an episode after S s without data")
    p.add_argument("--task", default="", help="default task text")
    p.add_argument("--time-field", default=None, help="payload field with the message time (int ns / float s); "
                   "default: receive time")
    p.add_argument("--seq-field", default=None, help="payload field with a per-topic sequence id (de-duplication)")
    p.add_argument("--proto", action="append", type=_proto, metavar="TOPIC=MODULE:CLASS",
                   help="decode TOPIC as this protobuf message class")
    p.add_argument("--queue-size", type=int, default=65536)
    p.add_argument("--block", type=float, default=10.0, metavar="S",
                   help="backpressure: how long a full queue holds the network thread before dropping (default 10)")
    p.add_argument("--username", default=None, help="MQTT username (overrides the URL's)")
    p.add_argument("--password-env", default=None, metavar="VAR",
                   help="read the MQTT password from this environment variable (not from the command line)")
    p.add_argument("--ca-certs", default=None, metavar="FILE", help="TLS: CA bundle to verify the broker (default: the system's)")
    p.add_argument("--certfile", default=None, metavar="FILE", help="TLS: client certificate")
    p.add_argument("--keyfile", default=None, metavar="FILE", help="TLS: client certificate's private key")
    p.add_argument("--client-id", default=None, help="MQTT client id (default: derived from OUT)")
    p.add_argument("--session-expiry", type=int, default=86400, metavar="S", help="broker session expiry (default 1 day)")
    p.add_argument("--record-dir", default=None, help="spool/Parquet/log folder (default OUT.record)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--robot-type", default=None)
    p.add_argument("--video-codec", default="auto")
    p.add_argument("--json", action="store_true", help="print the final report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line and no text report")
    p.set_defaults(func=_cmd_record)
