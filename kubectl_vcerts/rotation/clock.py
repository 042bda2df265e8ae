"""The real clock for workflows (UTC `now`, blocking `sleep`); tests pass their own `Clock`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    """Implements rotation.ports.Clock with the wall clock (or an injected `now`)."""

    def __init__(
        self, now: Callable[[], datetime] = _utc_now, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._now = now
        self._sleep = sleep

    def now(self) -> datetime:
        return self._now()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)
