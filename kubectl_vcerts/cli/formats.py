"""Option values shared by the commands, and their pure validation: output formats, durations.

Imports no typer: the quick path of `check` (cli/quick.py) parses these too. The typer aliases that
declare the options are in cli/options.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from kubectl_vcerts.errors import UsageError


class OutputFormat(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"


_DURATION = re.compile(r"(\d+)(d|h|m|s)")


def parse_duration(text: str, *, flag: str) -> timedelta:
    """Parse '90d', '12h', '1d12h', '30m', '45s' (also a bare number of days)."""
    value = text.strip().lower()
    if value.isdigit():
        return timedelta(days=int(value))
    pos, total = 0, timedelta()
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        amount, unit = int(match.group(1)), match.group(2)
        total += {"d": timedelta(days=amount), "h": timedelta(hours=amount),
                  "m": timedelta(minutes=amount), "s": timedelta(seconds=amount)}[unit]
        pos = match.end()
    if pos != len(value) or not value:
        raise UsageError(
            f"{flag}: cannot parse duration {text!r}", hint="use forms like 90d, 12h, 1d12h, 30m"
        )
    return total
