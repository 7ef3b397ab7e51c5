"""Exec ids this gate created: bounded, with expiry, safe across threads.

Only ids in here may be started, resized or inspected through the gate, so an agent cannot
drive an exec someone else created (for instance one into a container it may not touch).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class ExecRegistry:
    """An LRU map exec id -> container id, with a maximum size and a time to live."""

    def __init__(self, capacity: int = 4096, ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._clock = clock
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, exec_id: str, container_id: str) -> None:
        """Remember an exec created through the gate (evicting the oldest beyond capacity)."""
        with self._lock:
            self._items[exec_id] = (container_id, self._clock())
            self._items.move_to_end(exec_id)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, exec_id: str) -> str | None:
        """The container id of a known, unexpired exec, or None."""
        with self._lock:
            entry = self._items.get(exec_id)
            if entry is None:
                return None
            container_id, created = entry
            if self._clock() - created > self._ttl:
                del self._items[exec_id]
                return None
            self._items.move_to_end(exec_id)
            return container_id

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
