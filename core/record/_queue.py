"""The bounded hand-over queue between the MQTT network thread and the recorder's consumer.

``put`` blocks while the queue is full (backpressure: the network thread stops reading the socket, so
the broker and TCP hold further messages) for at most ``block_s`` seconds; a message that still finds
no room is refused and the caller counts it as dropped. Nothing is dropped silently: every ``put``
returns whether the item was queued.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any


class BoundedQueue:
    """A FIFO of at most ``maxsize`` items with blocking ``put`` and batched ``get``.

    Args:
        maxsize: the most items held (>= 1).
        block_s: how long a ``put`` on a full queue waits for room before refusing (0: refuse at once).
    """

    def __init__(self, maxsize: int, block_s: float):
        if int(maxsize) < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self.maxsize, self.block_s = int(maxsize), max(0.0, float(block_s))
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any) -> bool:
        """Queue ``item``; False when the queue stayed full for ``block_s`` (the item is not queued)."""
        with self._cond:
            if len(self._items) >= self.maxsize:
                deadline = time.monotonic() + self.block_s
                while len(self._items) >= self.maxsize:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            self._items.append(item)
            if len(self._items) > self.high_water:
                self.high_water = len(self._items)
            self._cond.notify_all()
            return True

    def get_batch(self, max_items: int, timeout: float) -> list[Any]:
        """Up to ``max_items`` items, oldest first; waits up to ``timeout`` s for the first (``[]``: none)."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            n = min(len(self._items), max_items)
            out = [self._items.popleft() for _ in range(n)]
            if n:
                self._cond.notify_all()
            return out
