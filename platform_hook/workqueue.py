"""A rate-limited work queue of instance keys ("namespace/name"), like client-go's.

A key is queued at most once; a key being processed is never handed to a second worker (it is
re-queued when it was added again meanwhile); delayed adds (requeue-after, backoff) wait in a heap.
Imports the standard library only.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class WorkQueue:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ready: list[str] = []
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()  # added while active: run again when done
        self._delayed: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._monotonic = monotonic

    def add(self, key: str) -> None:
        with self._cond:
            if key in self._active:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heapq.heappush(self._delayed, (self._monotonic() + delay, key))
            self._cond.notify()

    def _promote(self) -> float | None:
        now = self._monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, key = heapq.heappop(self._delayed)
            if key in self._active:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float = 1.0) -> str | None:
        """The next key (marked active), or None after `timeout` or when closed."""
        deadline = self._monotonic() + timeout
        with self._cond:
            while True:
                wait = self._promote()
                if self._closed:
                    return None
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                left = deadline - self._monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, wait) if wait is not None else left)

    def done(self, key: str) -> None:
        with self._cond:
            self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                    self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._delayed)
