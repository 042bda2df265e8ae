"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

Counters, gauges and one histogram are enough here, so no client library. Thread-safe.
Imports the standard library and kubectl_vcerts.exposition only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kubectl_vcerts.exposition import labels as _labels

LabelKey = tuple[tuple[str, str], ...]


class Counter:
    def __init__(self, name: str, help_text: str, kind: str = "counter") -> None:
        self.name, self.help, self.kind = name, help_text, kind
        self._values: dict[LabelKey, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = value

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted(self._values.items()) or [((), 0.0)]
        lines += [f"{self.name}{_labels(k)} {v:g}" for k, v in items]
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self._counts = [0] * len(buckets)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            for bound, count in zip(self.buckets, self._counts, strict=True):
                lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {count}')
            lines.append(f'{self.name}_bucket{{le="+Inf"}} {self._count}')
            lines.append(f"{self.name}_sum {self._sum:g}")
            lines.append(f"{self.name}_count {self._count}")
        return lines


class Metrics:
    """Everything the hook exports on /metrics."""

    def __init__(self, api_calls: Callable[[], int] = lambda: 0) -> None:
        self.recycles = Counter("vcerts_hook_recycles_total", "NodeClaim recycles completed.")
        self.claims_deleted = Counter("vcerts_hook_claims_deleted_total", "NodeClaims deleted by recycles.")
        self.claims_recreated = Counter("vcerts_hook_claims_recreated_total",
                                        "NodeClaims recreated from a recycle record.")
        self.errors = Counter("vcerts_hook_errors_total", "Reconcile failures by kind.")
        self.is_leader = Counter("vcerts_hook_leader", "1 while this replica holds the Lease.", kind="gauge")
        self.reconcile_seconds = Histogram(
            "vcerts_hook_reconcile_seconds", "Time of one reconcile pass.",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self._api_calls = api_calls

    def render(self) -> str:
        lines: list[str] = []
        counters = (self.recycles, self.claims_deleted, self.claims_recreated, self.errors, self.is_leader)
        for metric in counters:
            lines += metric.render()
        lines += self.reconcile_seconds.render()
        lines += ["# HELP vcerts_hook_api_requests_total Requests sent to the API server.",
                  "# TYPE vcerts_hook_api_requests_total counter",
                  f"vcerts_hook_api_requests_total {self._api_calls()}"]
        return "\n".join(lines) + "\n"
