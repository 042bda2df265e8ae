"""The Prometheus text exposition format (version 0.0.4), the few pieces we write it with.

Shared by platform_hook's metrics and `kubectl vcerts check -o prometheus` / `exporter`, which write
it by hand: gauges and counters are all they export, and no client library is needed for that.
Imports the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """A label value as the format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{key}="{escape_label(value)}"' for key, value in pairs)
    return "{" + body + "}" if body else ""


def number(value: float) -> str:
    """A sample value: integers without a fraction (timestamps stay exact), NaN and infinities by name."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def header(name: str, help_text: str, kind: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def sample(name: str, pairs: Iterable[tuple[str, str]], value: float) -> str:
    return f"{name}{labels(pairs)} {number(value)}"
