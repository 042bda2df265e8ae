"""Leader election on a coordination.k8s.io Lease: of the replicas, only the holder acts.

The holder renews every `renew_seconds`; a replica takes the Lease over only when it expired
(renewTime + leaseDurationSeconds in the past). Takeovers and renewals are resourceVersion-guarded
replaces, so two replicas can never both win. A leader that fails to renew before its own lease would
expire stops acting at once (it cannot know whether someone else took over). On shutdown the leader
gives the Lease up (empty holder) so the other replica takes over without waiting for expiry.

Imports errors, rotation.ports and the standard library only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from kubectl_vcerts.errors import VcertsError
from kubectl_vcerts.rotation.ports import LeaseRecord

log = logging.getLogger("platform_hook.leader")


class LeaseGateway(Protocol):
    def read_lease(self, namespace: str, name: str) -> LeaseRecord | None: ...

    def create_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     now: datetime) -> LeaseRecord: ...

    def update_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     acquired: datetime, renewed: datetime, resource_version: str) -> LeaseRecord: ...


class LeaseMove(StrEnum):
    CREATE = "create"
    RENEW = "renew"
    TAKE = "take"
    WAIT = "wait"


def next_move(lease: LeaseRecord | None, identity: str, now: datetime) -> LeaseMove:
    """Pure: what to do with the Lease as read."""
    if lease is None:
        return LeaseMove.CREATE
    if lease.holder == identity:
        return LeaseMove.RENEW
    if lease.expired(now):
        return LeaseMove.TAKE
    return LeaseMove.WAIT


class LeaderElector:
    def __init__(self, gateway: LeaseGateway, *, namespace: str, name: str, identity: str,
                 duration_seconds: int, renew_seconds: float, now: Callable[[], datetime],
                 on_change: Callable[[bool], None] = lambda _leader: None) -> None:
        self.gateway = gateway
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration = duration_seconds
        self.renew_seconds = renew_seconds
        self.now = now
        self.on_change = on_change
        self._leader = False
        self._valid_until: datetime | None = None
        self._acquired: datetime | None = None

    def is_leader(self) -> bool:
        """True only while our last successful renewal is still within the lease duration."""
        return self._leader and self._valid_until is not None and self.now() < self._valid_until

    def _set(self, leader: bool) -> None:
        if leader != self._leader:
            self._leader = leader
            log.info("leadership changed", extra={"fields": {"leader": leader, "identity": self.identity,
                                                             "lease": f"{self.namespace}/{self.name}"}})
            self.on_change(leader)

    def try_once(self) -> bool:
        """Read the Lease and create, renew or take it when allowed. Returns whether we lead."""
        now = self.now()
        try:
            lease = self.gateway.read_lease(self.namespace, self.name)
            move = next_move(lease, self.identity, now)
            if move is LeaseMove.CREATE:
                self.gateway.create_lease(self.namespace, self.name, holder=self.identity,
                                          duration_seconds=self.duration, now=now)
                self._acquired = now
            elif move in (LeaseMove.RENEW, LeaseMove.TAKE) and lease is not None:
                acquired = (lease.acquired or now) if move is LeaseMove.RENEW else now
                self.gateway.update_lease(self.namespace, self.name, holder=self.identity,
                                          duration_seconds=self.duration, acquired=acquired, renewed=now,
                                          resource_version=lease.resource_version)
                self._acquired = acquired
            else:
                self._valid_until = None
                self._set(False)
                return False
        except VcertsError as exc:
            # Conflict: someone else renewed or took it first. Unreachable: we cannot prove we lead.
            log.info("lease not renewed", extra={"fields": {"error": str(exc)}})
            if self._valid_until is None or now >= self._valid_until:
                self._set(False)
            return self.is_leader()
        self._valid_until = now + timedelta(seconds=self.duration)
        self._set(True)
        return True

    def release(self) -> None:
        """Give the Lease up when we hold it (shutdown), so another replica need not wait."""
        if not self._leader:
            return
        self._set(False)
        self._valid_until = None
        try:
            lease = self.gateway.read_lease(self.namespace, self.name)
            if lease is not None and lease.holder == self.identity:
                now = self.now()
                self.gateway.update_lease(self.namespace, self.name, holder="", duration_seconds=1,
                                          acquired=lease.acquired or now, renewed=now,
                                          resource_version=lease.resource_version)
        except VcertsError as exc:
            log.warning("lease not released", extra={"fields": {"error": str(exc)}})

    def run(self, stop: threading.Event, beat: Callable[[], None] = lambda: None) -> None:
        while not stop.is_set():
            self.try_once()
            beat()
            stop.wait(self.renew_seconds)
