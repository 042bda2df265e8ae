"""A pytest assertion-report hook that never shows key material: when either side of a failing
comparison holds secret data (`SecretData`, PEM private keys, kubeconfigs with client keys), the
report shows sha256 digests instead of values. pytest's default diff of two dicts prints the
differing values with a plain repr, bypassing `SecretData.__repr__`, so it needs this.

Imports only stdlib, pytest types and rotation.ports; no cluster access."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from kubectl_vcerts.rotation.records import SecretData

_MARKERS = ("PRIVATE KEY", "client-key-data")


def _sensitive(value: object) -> bool:
    if isinstance(value, SecretData):
        return True
    if isinstance(value, bytes):
        return any(m.encode() in value for m in _MARKERS)
    if isinstance(value, str):
        return any(m in value for m in _MARKERS)
    if isinstance(value, Mapping):
        return any(_sensitive(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_sensitive(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_sensitive(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def _digest(value: object) -> str:
    if isinstance(value, bytes | str):
        if not _sensitive(value):
            return repr(value)
        raw = value.encode() if isinstance(value, str) else value
        return f"<{len(raw)} bytes sha256:{hashlib.sha256(raw).hexdigest()[:16]}>"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_digest(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(_digest(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ", ".join(f"{f.name}={_digest(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{type(value).__name__}({fields})"
    return repr(value)


def redacted_compare(op: str, left: Any, right: Any) -> list[str] | None:
    """The explanation pytest shows for `left op right`, or None to keep pytest's own."""
    if not (_sensitive(left) or _sensitive(right)):
        return None
    lines = [f"(secret data shown as digests) {op}", f"left:  {_digest(left)}", f"right: {_digest(right)}"]
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        keys = sorted(set(left) | set(right), key=str)
        differing = [k for k in keys if left.get(k) != right.get(k)]
        lines.append(f"differing keys: {differing!r}")
    return lines
