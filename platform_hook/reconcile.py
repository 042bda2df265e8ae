"""One idempotent reconcile of one VirtualClusterInstance: observe, `decide`, run a recycle pass.

Everything durable lives on the instance (the record annotation), so a reconcile may run again at
any point, in this replica or another. The reconciler returns when to look again; failures back off
exponentially per instance and surface as Warning Events and the errors metric.
Imports kube.platform, rotation.recycle (the driver), errors, contract and the hook's own modules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kubectl_vcerts.errors import ConflictError, InvalidInputError, NotFoundError, VcertsError
from kubectl_vcerts.rotation.recycle import RecyclePort, recycle_pass
from kubectl_vcerts.rotation.recycle_record import Instance
from platform_hook.decide import Action, ActionKind, decide
from platform_hook.metrics import Metrics
from platform_hook.settings import Settings

log = logging.getLogger("platform_hook.reconcile")


@dataclass(frozen=True)
class Outcome:
    action: Action
    requeue_after: float | None  # None: nothing more until the instance changes (or resync)
    error: str = ""


class Reconciler:
    def __init__(self, port: RecyclePort, settings: Settings, metrics: Metrics, *,
                 now: Callable[[], datetime], monotonic: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.settings = settings
        self.metrics = metrics
        self.now = now
        self.monotonic = monotonic
        self._failures: dict[str, int] = {}
        self._reported: dict[str, str] = {}  # key -> resourceVersion whose invalidity was reported
        self._lock = threading.Lock()

    def _read(self, key: str) -> Instance | None:
        namespace, _, name = key.partition("/")
        try:
            return self.port.read_instance(namespace, name)
        except NotFoundError:
            return None

    def _backoff(self, key: str) -> float:
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        return float(min(self.settings.max_backoff_seconds, self.settings.poll_seconds * 2 ** (failures - 1)))

    def _ok(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def reconcile(self, key: str) -> Outcome:
        started = self.monotonic()
        try:
            return self._reconcile(key)
        finally:
            self.metrics.reconcile_seconds.observe(self.monotonic() - started)

    def _invalid(self, instance: Instance, message: str) -> None:
        """Report an invalid object once per version of it: Warning Event, metric, log."""
        with self._lock:
            if self._reported.get(instance.key) == instance.resource_version:
                return
            self._reported[instance.key] = instance.resource_version
        self.metrics.errors.inc(kind="invalid")
        log.warning("invalid object; no action",
                    extra={"fields": {"instance": instance.key, "error": message}})
        if not self.settings.dry_run:
            self._warn(instance, "InvalidObject", f"{message}; no action taken")

    def _warn(self, instance: Instance, reason: str, message: str) -> None:
        """A Warning Event, best effort: when the API is away the Event fails too, and that must not
        turn a counted, backed-off failure into a crash of the pass (logged and counted instead)."""
        try:
            self.port.record_event(instance, reason=reason, message=message, warning=True)
        except VcertsError as exc:
            self.metrics.errors.inc(kind="event")
            log.warning("event not recorded", extra={"fields": {
                "instance": instance.key, "reason": reason, "error": str(exc)}})

    def _reconcile(self, key: str) -> Outcome:
        try:
            instance = self._read(key)
        except VcertsError as exc:
            self.metrics.errors.inc(kind=type(exc).__name__)
            return Outcome(decide(None), self._backoff(key), str(exc))
        action = decide(instance)
        if instance is None or action.kind is ActionKind.SKIP:
            self._ok(key)
            return Outcome(action, None)
        if action.kind is ActionKind.INVALID:
            self._invalid(instance, action.reason)
            return Outcome(action, None, action.reason)
        fields = {"instance": key, "action": action.kind.value, "marker": action.marker}
        try:
            result = recycle_pass(self.port, instance.namespace, instance.name, marker=action.marker,
                                  settings=self.settings.recycle(), now=self.now(),
                                  dry_run=self.settings.dry_run)
        except InvalidInputError as exc:
            self._invalid(instance, exc.message)
            return Outcome(action, None, exc.message)
        except ConflictError as exc:
            # The instance changed between our read and write: simply look again.
            log.info("conflict; retrying", extra={"fields": {**fields, "error": str(exc)}})
            return Outcome(action, 0.1, str(exc))
        except VcertsError as exc:
            self.metrics.errors.inc(kind=type(exc).__name__)
            delay = self._backoff(key)
            log.warning("recycle pass failed",
                        extra={"fields": {**fields, "error": str(exc), "retry_in": delay}})
            if not self.settings.dry_run:
                self._warn(instance, "RecycleFailed", f"{exc}; retrying in {delay:g}s")
            return Outcome(action, delay, str(exc))
        self._ok(key)
        self.metrics.claims_deleted.inc(len(result.deleted))
        self.metrics.claims_recreated.inc(len(result.recreated))
        if result.plan:
            log.info("dry run: would recycle", extra={"fields": {**fields, "plan": list(result.plan)}})
            return Outcome(action, None)
        if result.deleted or result.recreated or result.started:
            log.info("recycle progressed", extra={"fields": {
                **fields, "deleted": list(result.deleted), "recreated": list(result.recreated)}})
        if result.done:
            self.metrics.recycles.inc()
            log.info("recycle done", extra={"fields": fields})
            return Outcome(action, None)
        return Outcome(action, result.requeue_after)
