"""Leader election against an in-memory Lease with resourceVersion checks: one leader at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubectl_vcerts.errors import ConflictError, UnreachableError
from kubectl_vcerts.rotation.ports import LeaseRecord
from platform_hook.leader import LeaderElector

T0 = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


class MemoryLeases:
    def __init__(self) -> None:
        self.lease: LeaseRecord | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise UnreachableError("api down")

    def read_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self._check()
        return self.lease

    def create_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     now: datetime) -> LeaseRecord:
        self._check()
        if self.lease is not None:
            raise ConflictError("exists")
        self.version += 1
        self.lease = LeaseRecord(name, holder, duration_seconds, now, now, str(self.version))
        return self.lease

    def update_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     acquired: datetime, renewed: datetime, resource_version: str) -> LeaseRecord:
        self._check()
        if self.lease is None or self.lease.resource_version != resource_version:
            raise ConflictError("changed")
        self.version += 1
        self.lease = LeaseRecord(name, holder, duration_seconds, acquired, renewed, str(self.version))
        return self.lease


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


Changes = list[tuple[str, bool]]


def elector(leases: MemoryLeases, clock: Clock, identity: str, changes: Changes) -> LeaderElector:
    return LeaderElector(leases, namespace="ns", name="lease", identity=identity, duration_seconds=15,
                         renew_seconds=5, now=clock, on_change=lambda lead: changes.append((identity, lead)))


def test_only_one_of_two_replicas_leads_and_the_other_takes_over_after_a_release() -> None:
    leases, clock, changes = MemoryLeases(), Clock(), Changes()
    a, b = elector(leases, clock, "a", changes), elector(leases, clock, "b", changes)
    assert a.try_once() and not b.try_once()
    clock.at += timedelta(seconds=5)
    assert a.try_once() and not b.try_once()  # renewed: still a's
    a.release()
    assert not a.is_leader() and b.try_once()
    assert changes == [("a", True), ("a", False), ("b", True)]


def test_a_holder_that_stops_renewing_is_replaced_after_the_lease_expires() -> None:
    leases, clock, changes = MemoryLeases(), Clock(), Changes()
    a, b = elector(leases, clock, "a", changes), elector(leases, clock, "b", changes)
    a.try_once()
    clock.at += timedelta(seconds=14)
    assert not b.try_once()
    clock.at += timedelta(seconds=2)
    assert b.try_once()
    assert not a.is_leader()  # its own view expired too: it stops acting without asking


def test_a_leader_that_cannot_reach_the_api_stops_acting_when_its_lease_would_expire() -> None:
    leases, clock, changes = MemoryLeases(), Clock(), Changes()
    a = elector(leases, clock, "a", changes)
    a.try_once()
    leases.down = True
    clock.at += timedelta(seconds=10)
    assert a.try_once()  # still within its lease
    clock.at += timedelta(seconds=6)
    assert not a.try_once() and changes[-1] == ("a", False)
