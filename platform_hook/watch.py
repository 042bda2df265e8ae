"""List-then-watch of VirtualClusterInstances, feeding instance keys into the work queue.

List once (every key queued), then watch from the list's resourceVersion; on a broken connection
(API restart) watch again from the last resourceVersion seen, after a capped backoff; on 410 Gone
list again; every `resync_seconds` list again anyway (so a missed event costs at most one period).
Imports kube.platform (its event types), rotation.recycle_record, errors and the standard library.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from kubectl_vcerts.errors import VcertsError
from kubectl_vcerts.kube.platform import WatchEvent, WatchExpiredError
from kubectl_vcerts.rotation.recycle_record import Instance
from platform_hook.settings import Settings

log = logging.getLogger("platform_hook.watch")


class WatchGateway(Protocol):
    """What the watcher needs (kube.platform.PlatformGateway)."""

    def list_instances(self, *, namespace: str | None = None,
                       label_selector: str | None = None) -> tuple[list[Instance], str]: ...

    def watch_instances(self, *, namespace: str | None, label_selector: str | None, resource_version: str,
                        timeout_seconds: int) -> Iterator[WatchEvent]: ...


class InstanceWatcher:
    def __init__(self, gateway: WatchGateway, settings: Settings, enqueue: Callable[[str], None],
                 *, on_listed: Callable[[], None] = lambda: None,
                 monotonic: Callable[[], float] = time.monotonic, backoff_base: float = 0.5) -> None:
        self.gateway = gateway
        self.backoff_base = backoff_base
        self.settings = settings
        self.enqueue = enqueue
        self.on_listed = on_listed
        self.monotonic = monotonic
        self._resync = threading.Event()
        self._known: dict[str | None, set[str]] = {}  # scope -> instance keys seen
        self._lock = threading.Lock()
        self.lists = 0
        self.watches = 0

    def request_resync(self) -> None:
        """Queue every known instance now and list again at the next chance (after winning the
        leadership: a standby drops work, so the new leader must look at everything)."""
        with self._lock:
            keys = sorted(k for scope in self._known.values() for k in scope)
        for key in keys:
            self.enqueue(key)
        self._resync.set()

    def _scopes(self) -> list[str | None]:
        return list(self.settings.namespaces) or [None]

    def run(self, stop: threading.Event, beat: Callable[[], None] = lambda: None) -> None:
        """One watch per namespace in scope (or one cluster-wide), each on its own thread."""
        threads = [threading.Thread(target=self._run_scope, args=(scope, stop, beat), daemon=True,
                                    name=f"watch-{scope or 'all'}") for scope in self._scopes()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _run_scope(self, namespace: str | None, stop: threading.Event, beat: Callable[[], None]) -> None:
        selector = self.settings.label_selector or None
        resource_version: str | None = None
        listed_at = 0.0
        failures = 0
        while not stop.is_set():
            beat()
            try:
                due = self.monotonic() - listed_at >= self.settings.resync_seconds
                if resource_version is None or due or self._resync.is_set():
                    self._resync.clear()
                    items, resource_version = self.gateway.list_instances(namespace=namespace,
                                                                          label_selector=selector)
                    listed_at = self.monotonic()
                    self.lists += 1
                    with self._lock:
                        self._known[namespace] = {item.key for item in items}
                    for item in items:
                        self.enqueue(item.key)
                    self.on_listed()
                    log.debug("listed instances", extra={"fields": {"count": len(items),
                                                                    "namespace": namespace or "*"}})
                left = max(1, int(self.settings.resync_seconds - (self.monotonic() - listed_at)))
                self.watches += 1
                for event in self.gateway.watch_instances(
                        namespace=namespace, label_selector=selector, resource_version=resource_version,
                        timeout_seconds=min(self.settings.watch_seconds, left)):
                    resource_version = event.resource_version
                    failures = 0
                    beat()
                    if event.instance is not None:
                        with self._lock:
                            known = self._known.setdefault(namespace, set())
                            if event.type == "DELETED":
                                known.discard(event.instance.key)
                            else:
                                known.add(event.instance.key)
                        if event.type != "DELETED":
                            self.enqueue(event.instance.key)
                    if stop.is_set() or self._resync.is_set():
                        break
            except WatchExpiredError:
                log.info("watch expired (410 Gone); listing again")
                resource_version = None
            except VcertsError as exc:
                failures += 1
                delay = min(30.0, self.backoff_base * 2 ** min(failures, 6))
                log.warning("watch failed; resuming", extra={"fields": {
                    "error": str(exc), "retry_in": delay, "resource_version": resource_version}})
                stop.wait(delay)
