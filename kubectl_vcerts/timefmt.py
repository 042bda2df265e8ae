"""How times are written and read: the one home of every timestamp format the project emits or parses.

Every function converts to UTC first (a naive datetime is taken as UTC), so no caller can write a local
time with a "Z" behind it. Imports only the standard library: every layer may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def rfc3339(when: datetime) -> str:
    """Go's time.RFC3339 in UTC, second precision: "2006-01-02T15:04:05Z" (annotations, JSON, YAML)."""
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 time ("Z" or an offset, fractions allowed) in UTC; None when it does not parse or
    names no zone (a local time cannot be placed)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def rfc3339_micro(when: datetime) -> str:
    """Kubernetes' MicroTime: "2006-01-02T15:04:05.000000Z" (Lease renewTime, Event eventTime)."""
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expiry(when: datetime) -> str:
    """`vcluster certs check`'s EXPIRES ON column: Go layout "Jan 02, 2006 15:04 MST", in UTC."""
    return _utc(when).strftime("%b %d, %Y %H:%M UTC")


def seconds_utc(when: datetime) -> str:
    """For tables and messages: "2006-01-02 15:04:05 UTC"."""
    return _utc(when).strftime("%Y-%m-%d %H:%M:%S UTC")
