"""The list-then-watch loop against an in-memory gateway: resume, relist on 410, resync."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

from kubectl_vcerts.errors import UnreachableError
from kubectl_vcerts.kube.platform import WatchEvent, WatchExpiredError
from kubectl_vcerts.rotation.recycle_record import Instance
from platform_hook.settings import Settings
from platform_hook.watch import InstanceWatcher

A = Instance("p", "a", "u-a", "5")
B = Instance("p", "b", "u-b", "6")


class ScriptedGateway:
    """Answers list/watch from a script; records what was asked. The last watch stops the loop."""

    def __init__(self, watches: list[list[WatchEvent | Exception]], stop: threading.Event) -> None:
        self.watches = watches
        self.stop = stop
        self.asked: list[str] = []
        self.lists = 0

    def list_instances(self, *, namespace: str | None = None,
                       label_selector: str | None = None) -> tuple[list[Instance], str]:
        self.lists += 1
        self.asked.append(f"list -> {10 * self.lists}")
        return [A], str(10 * self.lists)

    def watch_instances(self, *, namespace: str | None, label_selector: str | None, resource_version: str,
                        timeout_seconds: int) -> Iterator[WatchEvent]:
        self.asked.append(f"watch from {resource_version}")
        script = self.watches.pop(0) if self.watches else []
        if not self.watches:
            self.stop.set()
        for item in script:
            if isinstance(item, Exception):
                raise item
            yield item


def run(watches: list[list[WatchEvent | Exception]], **settings: float) -> tuple[ScriptedGateway, list[str]]:
    stop = threading.Event()
    gateway = ScriptedGateway(watches, stop)
    queued: list[str] = []
    base = replace(Settings(), resync_seconds=settings.get("resync", 300.0))
    watcher = InstanceWatcher(gateway, base, queued.append, monotonic=lambda: 0.0, backoff_base=0.001)
    watcher.run(stop)
    return gateway, queued


def test_a_broken_watch_resumes_from_the_last_resource_version_without_listing() -> None:
    gateway, queued = run([
        [WatchEvent("MODIFIED", "11", B), UnreachableError("connection reset")],
        [],
    ])
    assert gateway.asked == ["list -> 10", "watch from 10", "watch from 11"]
    assert queued == ["p/a", "p/b"]


def test_410_gone_lists_again_and_watches_from_the_new_list() -> None:
    gateway, _ = run([[WatchExpiredError("too old")], []])
    assert gateway.asked == ["list -> 10", "watch from 10", "list -> 20", "watch from 20"]


def test_bookmarks_move_the_resource_version_without_queueing() -> None:
    gateway, queued = run([[WatchEvent("BOOKMARK", "15", None), UnreachableError("eof")], []])
    assert gateway.asked[-1] == "watch from 15"
    assert queued == ["p/a"]


def test_deleted_instances_are_not_queued() -> None:
    _, queued = run([[WatchEvent("DELETED", "12", B)], []])
    assert queued == ["p/a"]


def test_the_resync_period_lists_again() -> None:
    gateway, _ = run([[], []], resync=0.0)  # due at every turn
    assert gateway.asked == ["list -> 10", "watch from 10", "list -> 20", "watch from 20"]
