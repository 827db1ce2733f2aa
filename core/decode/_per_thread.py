"""Open decoders kept per thread and per process (fork-safe).

A decoder belongs to the thread that opened it (FFmpeg contexts are not thread-safe) and to the
process that opened it: after a fork the child must neither reuse the parent's FFmpeg state nor free
it (closing a decoder whose threads stayed in the parent blocks forever), so inherited tables are
kept alive, unused, for the life of the child.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

_INHERITED: list = []  # tables inherited across fork: kept alive, never used or freed in the child


class DecoderTable(threading.local):
    """Per-thread ``path -> open decoder`` table that starts empty in a forked child."""

    def current(self) -> OrderedDict[str, Any]:
        """This thread's table in this process (an inherited one is set aside, never freed)."""
        if getattr(self, "pid", None) != os.getpid():
            if getattr(self, "open", None):
                _INHERITED.append(self.open)
            self.pid = os.getpid()
            self.open = OrderedDict()
        return self.open
