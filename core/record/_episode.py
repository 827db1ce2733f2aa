"""Episode segmentation: where one recorded episode ends and the next begins.

Two rules, usable together:

- A control topic: a message ``start`` begins an episode, ``stop`` ends it. The payload is JSON
  ``{"command": "start", "task": "pick the cube"}`` / ``{"command": "stop"}`` (``"event"`` is accepted
  for ``"command"``) or plain text ``start``, ``start: pick the cube``, ``stop``. A ``start`` during an
  episode ends it and begins the next one; a ``stop`` outside an episode is ignored. With a control
  topic, data messages outside an episode are not recorded (counted as ``outside_episode``).
- An idle gap: no data message for ``idle_gap_s`` seconds (receive time) ends the episode; without a
  control topic the next data message begins a new one (task: the recorder's default task).

Without either, everything received until the recorder stops is one episode. Messages are assigned to
episodes in the order the recorder receives them (the broker keeps one publisher's order across topics).
"""

from __future__ import annotations

import json
from typing import Any

from ._payload import PayloadError

#: segmentation events: ("start", task) or ("stop", reason)
Event = tuple[str, str]


def parse_control(payload: bytes) -> tuple[str, str]:
    """A control payload -> ``(command, task)``; command ``"start"`` or ``"stop"``.

    Raises:
        PayloadError: anything else.
    """
    text = bytes(payload).decode("utf-8", "replace").strip()
    cmd, task = "", ""
    if text.startswith("{"):
        try:
            obj: Any = json.loads(text)
        except ValueError as e:
            raise PayloadError(f"control message is not JSON ({e})") from None
        cmd = str(obj.get("command", obj.get("event", ""))).strip().lower() if isinstance(obj, dict) else ""
        task = str(obj.get("task") or "") if isinstance(obj, dict) else ""
    else:
        head, _, rest = text.partition(":")
        cmd, task = head.strip().lower(), rest.strip()
        if " " in cmd and not rest:
            cmd, _, task = text.partition(" ")
            cmd, task = cmd.lower(), task.strip()
    if cmd not in ("start", "stop"):
        raise PayloadError(f"control message {text[:80]!r}: expected start or stop")
    return cmd, task


class Segmenter:
    """The episode state machine.

    Args:
        control: a control topic is used (episodes begin only on ``start``).
        idle_gap_s: end an episode after this many seconds without data (None: never).
        task: the task of episodes begun without a ``start`` task.
    """

    def __init__(self, control: bool, idle_gap_s: float | None, task: str = ""):
        self.control, self.idle_gap_s, self.default_task = bool(control), idle_gap_s, task
        self.active = False
        self.task = ""
        self._last_data: float | None = None

    def resume(self, task: str, now_s: float) -> None:
        """Continue an episode found in the spool at start-up."""
        self.active, self.task, self._last_data = True, task, now_s

    def on_control(self, payload: bytes) -> list[Event]:
        cmd, task = parse_control(payload)
        task = task or self.default_task
        events: list[Event] = []
        if cmd == "start":
            if self.active:
                events.append(("stop", "restarted"))
            self.active, self.task = True, task
            self._last_data = None
            events.append(("start", task))
        elif self.active:
            self.active = False
            events.append(("stop", "control"))
        return events

    def on_data(self, now_s: float) -> list[Event]:
        """Events before a data message received at ``now_s`` is added (may begin an episode)."""
        events: list[Event] = []
        if self.active and self._gap(now_s):
            self.active = False
            events.append(("stop", "idle"))
        if not self.active and not self.control:
            self.active, self.task = True, self.default_task
            events.append(("start", self.task))
        if self.active:
            self._last_data = now_s
        return events

    def tick(self, now_s: float) -> list[Event]:
        """Events due by time alone (an idle gap ending the episode)."""
        if self.active and self._gap(now_s):
            self.active = False
            return [("stop", "idle")]
        return []

    def _gap(self, now_s: float) -> bool:
        return self.idle_gap_s is not None and self._last_data is not None and now_s - self._last_data > self.idle_gap_s
