"""In-memory fakes of the rotation ports and a fixed clock, for the workflow unit tests.

`FakeCluster` keeps NAME-certs, backups, leases and pods in dicts, records every mutation in `events`,
and behaves like the host cluster where it matters: guarded writes (resourceVersion), create conflicts,
uid-guarded pod deletes, and StatefulSet-like recreation of deleted pods (same name, new uid, Ready
after `ready_after` clock ticks, or never with `come_back=False`). `kill()` makes every later call of
the old run raise `Killed` without effect — a SIGKILL that runs no `finally` against the cluster.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache

from kubectl_vcerts.errors import ConflictError, NotFoundError
from kubectl_vcerts.rotation.model import BackingStore, Distro, PodState, Rollout, VCluster, WorkloadKind
from kubectl_vcerts.rotation.ports import BackupRecord, CertsState, LeaseRecord, OwnerRef
from kubectl_vcerts.rotation.records import SecretData


@cache
def pki_start() -> datetime:
    """A fixed instant one day after the generated PKI began to be valid: the tests' `now`."""
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(pki_data()["ca.crt"])
    return ca.not_valid_before_utc + timedelta(days=1)


class Killed(BaseException):
    """The simulated SIGKILL: not an Exception, so nothing in the workflow catches it."""


class FakeClock:
    def __init__(self, start: datetime | None = None, on_sleep: Callable[[], None] | None = None) -> None:
        self.t = start or pki_start()
        self.on_sleep = on_sleep

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            self.on_sleep()


@dataclass
class _Pending:
    name: str
    group: str
    ticks: int
    replaces: str = ""  # a rolling update: the old pod goes once this one is Ready


@dataclass
class FakeCluster:
    vcluster: VCluster
    data: dict[str, bytes] = field(repr=False)
    ready_after: int = 1
    come_back: bool = True
    annotations: dict[str, str] = field(default_factory=dict)
    backups: dict[str, BackupRecord] = field(default_factory=dict, repr=False)
    leases: dict[str, LeaseRecord] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    conflict_next_write: bool = False
    after_restart_rewrite: dict[str, bytes] = field(
        default_factory=dict, repr=False
    )  # vCluster regenerating leaves
    max_control_plane_down: int = 0
    workload_replicas: int | None = None
    dead: bool = False
    uid: str = "uid-certs-1"  # NAME-certs' uid, the identity its backups record
    _rv: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _uid: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: list[_Pending] = field(default_factory=list)
    rolled_out: list[datetime] = field(default_factory=list)  # roll_out calls
    linger: int = 0  # clock ticks a deleted pod stays, Terminating, before it is gone
    _lingering: dict[str, tuple[str, PodState, int]] = field(default_factory=dict)
    terminating_at_read: list[int] = field(default_factory=list)  # pods still stopping at each read

    def __post_init__(self) -> None:
        self.data = SecretData(self.data)
        self.resource_version = str(next(self._rv))
        self.pods: dict[str, tuple[str, PodState]] = {}
        for pod in self.vcluster.pods:
            self.pods[pod.name] = ("cp", pod)
        for pod in self.vcluster.etcd_pods:
            self.pods[pod.name] = ("etcd", pod)

    # ---------------------------------------------------------------- helpers for tests
    def kill(self) -> None:
        self.dead = True

    def revive(self) -> FakeCluster:
        self.dead = False
        return self

    def _alive(self) -> None:
        if self.dead:
            raise Killed

    def snapshot(self) -> SecretData:
        return SecretData(self.data)

    def pod_uids(self) -> dict[str, str]:
        return {name: pod.uid for name, (_g, pod) in self.pods.items()}

    def tick(self) -> None:
        """One clock sleep: pending pods come closer to Ready, lingering ones closer to gone."""
        for key, (group, pod, ticks) in list(self._lingering.items()):
            if ticks <= 1:
                del self._lingering[key]
            else:
                self._lingering[key] = (group, pod, ticks - 1)
        for pending in list(self._pending):
            pending.ticks -= 1
            if pending.ticks <= 0:
                self._pending.remove(pending)
                uid = f"uid-{next(self._uid)}-new"
                status = "Running" if self.come_back else "CrashLoopBackOff"
                self.pods[pending.name] = (
                    pending.group,
                    PodState(
                        name=pending.name, uid=uid, status=status, ready=self.come_back, phase="Running"
                    ),
                )
                if pending.replaces and self.come_back:
                    self.pods.pop(pending.replaces, None)
                if self.after_restart_rewrite:
                    self.data.update(self.after_restart_rewrite)
                    self.after_restart_rewrite = {}
                    self.resource_version = str(next(self._rv))
        self._track_down()

    def _track_down(self) -> None:
        ready = [p for g, p in self.pods.values() if g == "cp" and p.ready]
        down = max(self.vcluster.replicas, 1) - len(ready)
        self.max_control_plane_down = max(self.max_control_plane_down, down)

    # ---------------------------------------------------------------- CertsPort
    def read_certs(self, vcluster: VCluster) -> CertsState:
        self._alive()
        self.terminating_at_read.append(len(self._lingering))
        return CertsState(
            data=SecretData(self.data),
            resource_version=self.resource_version,
            annotations=dict(self.annotations),
            uid=self.uid,
        )

    def write_certs(
        self,
        vcluster: VCluster,
        *,
        data: Mapping[str, bytes],
        annotations: Mapping[str, str | None],
        resource_version: str,
    ) -> CertsState:
        self._alive()
        if self.conflict_next_write:
            self.conflict_next_write = False
            self.resource_version = str(next(self._rv))  # someone else wrote
            raise ConflictError("secret changed")
        if resource_version != self.resource_version:
            raise ConflictError("secret changed")
        self.data = SecretData(data)
        for key, value in annotations.items():
            if value is None:
                self.annotations.pop(key, None)
            else:
                self.annotations[key] = value
        self.resource_version = str(next(self._rv))
        self.events.append("write")
        return self.read_certs(vcluster)

    # ---------------------------------------------------------------- BackupPort
    def create_backup(
        self,
        vcluster: VCluster,
        *,
        name: str,
        data: Mapping[str, bytes],
        operation: str,
        source_resource_version: str,
        ca_fingerprint: str,
        created: datetime,
        owners: Sequence[OwnerRef] = (),
        identity: str = "",
    ) -> BackupRecord:
        self._alive()
        if name in self.backups:
            raise ConflictError(f"{name} exists")
        record = BackupRecord(
            name=name,
            namespace=vcluster.namespace,
            vcluster=vcluster.name,
            created=created,
            operation=operation,
            ca_fingerprint=ca_fingerprint,
            source_resource_version=source_resource_version,
            data=SecretData(data),
            identity=identity,
        )
        self.backups[name] = record
        self.events.append(f"backup:{name}")
        return replace(record, data=None)

    def list_backups(self, vcluster: VCluster) -> list[BackupRecord]:
        self._alive()
        return sorted(
            (replace(r, data=None) for r in self.backups.values()),
            key=lambda r: (r.created, r.name),
            reverse=True,
        )

    def read_backup(self, vcluster: VCluster, name: str) -> BackupRecord:
        self._alive()
        if name not in self.backups:
            raise NotFoundError(f"secret {name} not found")
        return self.backups[name]

    def delete_backup(self, vcluster: VCluster, name: str) -> None:
        self._alive()
        self.backups.pop(name, None)
        self.events.append(f"delete-backup:{name}")

    # ---------------------------------------------------------------- LeasePort
    def read_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self._alive()
        return self.leases.get(name)

    def create_lease(
        self, namespace: str, name: str, *, holder: str, duration_seconds: int, now: datetime
    ) -> LeaseRecord:
        self._alive()
        if name in self.leases:
            raise ConflictError(f"lease {name} exists")
        record = LeaseRecord(
            name=name,
            holder=holder,
            duration_seconds=duration_seconds,
            acquired=now,
            renewed=now,
            resource_version=str(next(self._rv)),
        )
        self.leases[name] = record
        self.events.append(f"lease:{name}")
        return record

    def update_lease(
        self,
        namespace: str,
        name: str,
        *,
        holder: str,
        duration_seconds: int,
        acquired: datetime,
        renewed: datetime,
        resource_version: str,
    ) -> LeaseRecord:
        self._alive()
        current = self.leases.get(name)
        if current is None:
            raise NotFoundError(f"lease {name} not found")
        if current.resource_version != resource_version:
            raise ConflictError(f"lease {name} changed")
        record = LeaseRecord(
            name=name,
            holder=holder,
            duration_seconds=duration_seconds,
            acquired=acquired,
            renewed=renewed,
            resource_version=str(next(self._rv)),
        )
        self.leases[name] = record
        return record

    def delete_lease(self, namespace: str, name: str, *, resource_version: str) -> None:
        self._alive()
        current = self.leases.get(name)
        if current is None:
            return
        if current.resource_version != resource_version:
            raise ConflictError(f"lease {name} changed")
        del self.leases[name]
        self.events.append(f"unlease:{name}")

    # ---------------------------------------------------------------- PodPort
    def list_pods(self, vcluster: VCluster) -> tuple[tuple[PodState, ...], tuple[PodState, ...]]:
        self._alive()
        listed = [*self.pods.values(), *((g, p) for g, p, _t in self._lingering.values())]
        cp = tuple(sorted((p for g, p in listed if g == "cp"), key=lambda p: p.name))
        etcd = tuple(sorted((p for g, p in listed if g == "etcd"), key=lambda p: p.name))
        return cp, etcd

    def delete_pod(self, namespace: str, name: str, *, uid: str) -> None:
        self._alive()
        if name not in self.pods or self.pods[name][1].uid != uid:
            return
        group, gone = self.pods.pop(name)
        if self.linger:
            self._lingering[f"{name}/{uid}"] = (group, replace(gone, status="Terminating"), self.linger)
        self._pending.append(_Pending(name, group, self.ready_after))
        self.events.append(f"delete:{name}")
        self._track_down()

    def roll_out(self, vcluster: VCluster, *, at: datetime) -> None:
        """A surge rolling update: a new pod per control-plane pod, the old one removed once it is Ready."""
        self._alive()
        self.rolled_out.append(at)
        self.events.append("rollout")
        for name, (group, _pod) in sorted(self.pods.items()):
            if group == "cp":
                self._pending.append(_Pending(f"{name}-r{len(self.rolled_out)}", "cp", self.ready_after,
                                              replaces=name))

    # ---------------------------------------------------------------- WorkloadPort
    def refresh(self, vcluster: VCluster) -> VCluster:
        self._alive()
        cp, etcd = self.list_pods(vcluster)
        status = cp[-1].status if cp else ("ScaledDown" if self.workload_replicas == 0 else "")
        restoring = self.vcluster.restoring if self.workload_replicas == 0 else False
        return replace(self.vcluster, pods=cp, etcd_pods=etcd, status=status, restoring=restoring)

    def finish_interrupted_rotation(self, vcluster: VCluster, *, replicas: int) -> None:
        self._alive()
        self.workload_replicas = replicas
        self.events.append(f"scale:{replicas}")
        for index in range(replicas):
            self._pending.append(_Pending(f"{vcluster.name}-{index}", "cp", self.ready_after))


def pki_data() -> SecretData:
    """A complete 29-key vCluster PKI (tests/support/pki_builder, ECDSA for speed), as NAME-certs data."""
    from tests.support.pki_builder import Options, cached_pki

    return SecretData(cached_pki(Options(key_type="ecdsa")))


def make_vcluster(
    *,
    replicas: int = 1,
    etcd: int = 0,
    status: str = "Running",
    ready: bool = True,
    distro: Distro = Distro.K8S,
    restoring: bool = False,
    annotations: dict[str, str] | None = None,
    ephemeral: bool = False,
    etcd_ephemeral: bool = False,
    backing_store: BackingStore | None = None,
    kind: WorkloadKind = WorkloadKind.STATEFULSET,
    rollout: Rollout | None = None,
) -> VCluster:
    """`ephemeral`/`etcd_ephemeral`: the control-plane/etcd pods keep `data` on an emptyDir; the backing
    store is deployed etcd with `etcd` pods, else the embedded database unless given."""
    pods = tuple(
        PodState(name=f"vc-{i}", uid=f"uid-vc-{i}", status=status, ready=ready, phase="Running",
                 ephemeral=ephemeral)
        for i in range(replicas if not restoring else 0)
    )
    etcd_pods = tuple(
        PodState(name=f"vc-etcd-{i}", uid=f"uid-etcd-{i}", status="Running", ready=True, phase="Running",
                 ephemeral=etcd_ephemeral)
        for i in range(etcd)
    )
    if backing_store is None:
        backing_store = BackingStore.DEPLOYED_ETCD if etcd > 0 else BackingStore.EMBEDDED_DATABASE
    return VCluster(
        name="vc",
        namespace="team-a",
        kind=kind,
        version="0.36.1",
        status="ScaledDown" if restoring else status,
        replicas=0 if restoring else replicas,
        persistence=not ephemeral,
        distro=distro,
        backing_store=backing_store,
        restoring=restoring,
        pods=pods,
        etcd_pods=etcd_pods,
        annotations=dict(annotations or {}),
        rollout=rollout or Rollout(),
    )
