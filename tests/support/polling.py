"""The one polling loop of the test support: wait for a condition (never for a fixed time).

`wait_until(probe, timeout=…, interval=…, fail=…)` calls `probe()` until it returns a true value and
returns that value; when `timeout` seconds pass first it raises what `fail()` returns (so the message can
say what was last seen). `probe` may raise to stop early (e.g. a process exited).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], *, timeout: float, interval: float = 0.2,
               fail: Callable[[], BaseException]) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise fail()
        time.sleep(interval)  # polling a condition, not timing an assertion
