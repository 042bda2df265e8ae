"""In-memory fakes of the recycle's port (rotation.recycle.RecyclePort) for unit tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ConflictError, NotFoundError
from kubectl_vcerts.rotation.recycle import Settings
from kubectl_vcerts.rotation.recycle_record import Claim, Instance, RecreatePolicy

T0 = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
NS = "p-default"
MARK = "2026-11-29T03:59:00Z"


class Crash(Exception):
    """Stands for the process dying at a chosen request."""


class FakePlatform:
    """RecyclePort in memory, with finalizers, resourceVersions and an optional crash point."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.claims: dict[str, Claim] = {}  # uid -> claim
        self.events: list[tuple[str, str]] = []
        self.calls: list[str] = []
        self.crash_at: int | None = None
        self._uids = itertools.count(1)
        self._rv = itertools.count(100)

    def _tick(self, what: str) -> None:
        self.calls.append(what)
        if self.crash_at is not None and len(self.calls) >= self.crash_at:
            self.crash_at = None
            raise Crash(what)

    def add_instance(self, name: str, annotations: Mapping[str, str] | None = None) -> None:
        self.instances[name] = Instance(NS, name, f"vci-{name}", str(next(self._rv)), dict(annotations or {}))

    def add_claim(self, vcluster: str, name: str, *, finalizers: tuple[str, ...] = (),
                  spec: Mapping[str, Any] | None = None,
                  annotations: Mapping[str, str] | None = None) -> Claim:
        uid = f"uid-{next(self._uids)}"
        claim = Claim(NS, name, uid, dict(spec or {"providerRef": "aws", "vClusterRef": vcluster,
                                                    "typeRef": "medium", "requirements": [{"key": "a"}]}),
                      labels={"pool": "a"}, annotations=dict(annotations or {"note": name}),
                      finalizers=finalizers)
        self.claims[uid] = claim
        return claim

    def names(self, vcluster: str) -> list[str]:
        return sorted(c.name for c in self.claims.values() if c.vcluster == vcluster)

    def release(self, name: str) -> None:
        """A finalizer holder lets go: the terminating claim disappears."""
        for uid, claim in list(self.claims.items()):
            if claim.name == name and claim.deleting:
                del self.claims[uid]

    # --- RecyclePort ---
    def read_instance(self, namespace: str, name: str) -> Instance:
        self._tick("read")
        if name not in self.instances:
            raise NotFoundError(name)
        return self.instances[name]

    def list_claims(self, namespace: str, vcluster: str) -> list[Claim]:
        self._tick("list")
        return [c for c in self.claims.values() if c.vcluster == vcluster]

    def annotate_instance(self, instance: Instance, changes: Mapping[str, str | None], *,
                          dry_run: bool = False) -> Instance:
        self._tick("annotate")
        current = self.instances[instance.name]
        if current.resource_version != instance.resource_version:
            raise ConflictError("changed")
        annotations = dict(current.annotations)
        for key, value in changes.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        if dry_run:
            return current
        updated = replace(current, annotations=annotations, resource_version=str(next(self._rv)))
        self.instances[instance.name] = updated
        return updated

    def delete_claim(self, namespace: str, name: str, *, uid: str) -> None:
        self._tick("delete")
        claim = self.claims.get(uid)
        if claim is None:
            return
        if claim.finalizers:
            self.claims[uid] = replace(claim, deleting=True)
        else:
            del self.claims[uid]

    def create_claim(self, namespace: str, *, name: str | None, generate_name: str | None,
                     spec: Mapping[str, Any], labels: Mapping[str, str],
                     annotations: Mapping[str, str]) -> Claim:
        self._tick("create")
        final = name or f"{generate_name}{next(self._uids)}"
        if any(c.name == final for c in self.claims.values()):
            raise ConflictError(final)
        uid = f"uid-{next(self._uids)}"
        claim = Claim(NS, final, uid, dict(spec), dict(labels), dict(annotations))
        self.claims[uid] = claim
        return claim

    def record_event(self, instance: Instance, *, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((reason, message))


class FakeClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def platform_with(n: int, **kw: Any) -> FakePlatform:
    fake = FakePlatform()
    fake.add_instance("vc", {contract.CA_ROTATED_ANNOTATION: MARK})
    for i in range(n):
        fake.add_claim("vc", f"vc-{i}", **kw)
    fake.add_claim("other", "other-0")  # another vCluster's claim: never touched
    return fake


GRACE = Settings(policy=RecreatePolicy.MISSING, grace=timedelta(seconds=30), poll=1.0)
