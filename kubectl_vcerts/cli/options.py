"""Option types shared by the commands, and pure validation of option values.

kubectl's global flags (--kubeconfig, --context, -n/--namespace, --request-timeout, -v) are defined
once on the app callback; `app.main` moves them in front of the sub-command so that users can write
them anywhere, as with kubectl. Per-command options that recur (-o/--output, --yes, --dry-run) are
the Annotated aliases below.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

import typer

from kubectl_vcerts.errors import UsageError


class OutputFormat(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="Output format: table, wide, json or yaml.", case_sensitive=False),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the exact plan and change nothing.")]

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
