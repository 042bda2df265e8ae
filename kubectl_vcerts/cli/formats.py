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


class CheckFormat(StrEnum):
    """`check -o`: the formats of every command, plus the Prometheus text format."""

    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"
    PROMETHEUS = "prometheus"


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


# A Kubernetes label selector (apimachinery's labels.Parse): requirements separated by commas, each
# `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)` or `key notin (a,b)`.
_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = rf"\(\s*{_VALUE}(?:\s*,\s*{_VALUE})*\s*\)"
_REQUIREMENT = re.compile(
    rf"\s*(?:!\s*{_KEY}|{_KEY}(?:\s*(?:==|=|!=)\s*{_VALUE}|\s+(?:in|notin)\s*{_SET})?)\s*")


def check_selector(text: str, *, flag: str = "-l") -> str:
    """`text` when it is a label selector the API server parses, else UsageError (before any request:
    the server would answer 400 only after the first list)."""
    pos = 0
    while True:
        match = _REQUIREMENT.match(text, pos)
        if match is None or match.end() == pos:
            break
        pos = match.end()
        if pos == len(text):
            return text
        if text[pos] != ",":
            break
        pos += 1
    raise UsageError(f"{flag} {text!r}: not a label selector",
                     hint="use key=value, key!=value, key, !key, key in (a,b), key notin (a,b), "
                     "separated by commas")
