"""The Protocols through which the workflow talks to the outside world.

The plain records the read side exchanges (`SecretObject`, `WorkloadRecord`, `ListedPod`, `SecretData`)
live in rotation/records.py, so that `check` can use them without defining everything here.

`kubectl_vcerts.kube` implements them against the API server; unit tests implement them in memory.
Imports nothing from kube/, cli/, kubernetes, typer or rich.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from kubectl_vcerts.rotation.model import PodState, Rollout, VCluster
from kubectl_vcerts.rotation.records import ListedPod, SecretObject, WorkloadRecord


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a workflow, for the progress display (stderr) and -v logs."""

    step: str  # stable short name: "lock", "backup", "write", "restart", "wait", "verify", ...
    message: str
    done: bool = False


Progress = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """A Progress that drops events (the default)."""


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class CaChange:
    """What a CA-changing operation (rotate-ca, or a restore that changes the CA) is about to do."""

    vcluster: VCluster
    operation: str  # "rotate-ca" | "restore"
    old_ca_fingerprint: str | None
    new_ca_fingerprint: str
    new_data: Mapping[str, bytes] = field(repr=False)  # the complete new NAME-certs data (holds keys)
    at: datetime


class CaChangeHook(Protocol):
    """Extra work around a CA change (private nodes, Platform marking).

    The workflow calls `preflight` before taking any action (raise a VcertsError to refuse; nothing has
    been changed yet), `before` after the backup and before NAME-certs is written, and `after` once the
    new control plane is Ready. `after` returns lines telling the user what happened or what is left
    to do; it must not raise for things the user can finish by hand (return the instructions instead).
    `describe` returns the plan lines shown by --dry-run.
    """

    name: str

    def describe(self, change: CaChange) -> list[str]: ...

    def preflight(self, change: CaChange) -> None: ...

    def before(self, change: CaChange) -> list[str]: ...

    def after(self, change: CaChange) -> list[str]: ...


# --- rotate / rotate-ca / restore / backups ---------------------------------------------------------
# The records below are what the workflow needs to know about host objects; kube/ fills them in.


@dataclass(frozen=True)
class OwnerRef:
    """An ownerReference of NAME-certs (vCluster sets the Service NAME), copied onto every backup so
    that deleting the vCluster deletes the private keys its backups hold."""

    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True)
class CertsState:
    """`NAME-certs` as read: its data, the resourceVersion every write is guarded by, annotations,
    its owners and uid."""

    data: dict[str, bytes] = field(repr=False)
    resource_version: str
    annotations: dict[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()
    uid: str = ""

    @property
    def identity(self) -> str:
        """Which vCluster this is, beyond its name: the Service owner's uid, else any owner's, else
        the secret's own ("" when unknown)."""
        services = [o.uid for o in self.owners if o.kind == "Service"]
        return (services or [o.uid for o in self.owners] or [self.uid])[0]


@dataclass(frozen=True)
class BackupRecord:
    """One backup Secret `NAME-certs-backup-<unix>` (data only when read one by one)."""

    name: str
    namespace: str
    vcluster: str
    created: datetime
    operation: str
    ca_fingerprint: str
    source_resource_version: str
    data: dict[str, bytes] | None = field(default=None, repr=False)
    identity: str = ""  # contract.BACKUP_IDENTITY_ANNOTATION; "" for backups made before it existed


@dataclass(frozen=True)
class LeaseRecord:
    """A coordination.k8s.io Lease as the lock logic sees it."""

    name: str
    holder: str
    duration_seconds: int
    acquired: datetime | None
    renewed: datetime | None
    resource_version: str

    def expires(self) -> datetime | None:
        base = self.renewed or self.acquired
        return None if base is None else base + timedelta(seconds=self.duration_seconds)

    def expired(self, now: datetime) -> bool:
        end = self.expires()
        return end is None or end <= now or not self.holder


class CertsPort(Protocol):
    def read_certs(self, vcluster: VCluster) -> CertsState: ...

    def write_certs(self, vcluster: VCluster, *, data: Mapping[str, bytes],
                    annotations: Mapping[str, str | None], resource_version: str) -> CertsState:
        """Replace the data (exactly `data`) and merge `annotations` (None removes a key), guarded by
        `resource_version`; labels, other annotations, ownerReferences and type are kept. A changed
        secret raises ConflictError and nothing is written."""
        ...


class BackupPort(Protocol):
    def create_backup(self, vcluster: VCluster, *, name: str, data: Mapping[str, bytes], operation: str,
                      source_resource_version: str, ca_fingerprint: str, created: datetime,
                      owners: Sequence[OwnerRef] = (), identity: str = "") -> BackupRecord:
        """Create an immutable backup Secret owned by `owners`; an existing name raises ConflictError."""
        ...

    def list_backups(self, vcluster: VCluster) -> list[BackupRecord]: ...

    def read_backup(self, vcluster: VCluster, name: str) -> BackupRecord: ...

    def delete_backup(self, vcluster: VCluster, name: str) -> None: ...


class LeasePort(Protocol):
    def read_lease(self, namespace: str, name: str) -> LeaseRecord | None: ...

    def create_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     now: datetime) -> LeaseRecord:
        """Create; an existing Lease raises ConflictError."""
        ...

    def update_lease(self, namespace: str, name: str, *, holder: str, duration_seconds: int,
                     acquired: datetime, renewed: datetime, resource_version: str) -> LeaseRecord:
        """Replace guarded by resource_version (ConflictError when someone else changed it)."""
        ...

    def delete_lease(self, namespace: str, name: str, *, resource_version: str) -> None:
        """Delete guarded by resource_version; already gone is fine."""
        ...


class PodPort(Protocol):
    def list_pods(self, vcluster: VCluster) -> tuple[tuple[PodState, ...], tuple[PodState, ...]]:
        """(control-plane pods `app=vcluster,release=NAME`, deployed-etcd pods `app=vcluster-etcd`)."""
        ...

    def delete_pod(self, namespace: str, name: str, *, uid: str) -> None:
        """Delete guarded by uid (a replacement with the same name is left alone); gone is fine."""
        ...

    def roll_out(self, vcluster: VCluster, *, at: datetime) -> None:
        """Start a rolling update of the control-plane Deployment: set the pod-template annotation
        vcluster.loft.sh/cert-rotation-at to `at` (what vCluster's cert watcher does)."""
        ...


class WorkloadPort(Protocol):
    def refresh(self, vcluster: VCluster) -> VCluster:
        """Discover the same vCluster again (status, replicas, pods, annotations)."""
        ...

    def finish_interrupted_rotation(self, vcluster: VCluster, *, replicas: int) -> None:
        """Undo what an interrupted `vcluster certs rotate` left: scale the control plane back to
        `replicas` and remove loft.sh/restoring, loft.sh/paused-replicas and loft.sh/paused-date."""
        ...


class VClusterReader(Protocol):
    """Read-only access discovery and `check` need. `namespace=None` means all namespaces.

    Every method raises ForbiddenError (naming verb and resource) when RBAC denies it and
    UnreachableError after bounded retries; nothing else escapes.
    """

    @property
    def default_namespace(self) -> str:
        """The kubeconfig context's namespace (kubectl's default; vCluster's Forbidden fallback)."""
        ...

    def list_workloads(self, *, namespace: str | None, release: str | None = None,
                       selector: str = "") -> list[WorkloadRecord]:
        """StatefulSets, then Deployments, labelled app=vcluster (and release=`release` when given, and
        matching the label selector `selector`: -l)."""
        ...

    def list_pods(self, *, namespace: str | None, selector: str) -> list[ListedPod]:
        """Pods matching the label selector, in API list order."""
        ...

    def read_secret(self, *, namespace: str, name: str) -> SecretObject | None:
        """One Secret, or None when it does not exist."""
        ...

    def list_secrets(self, *, namespace: str | None, selector: str,
                     keep: Callable[[str], bool] | None = None) -> list[SecretObject]:
        """Secrets matching the label selector, in one list (read in chunks); with `keep`, only those
        whose name it accepts are decoded and returned."""
        ...

    def iter_secrets(self, *, namespace: str | None, selector: str,
                     keep: Callable[[str], bool] | None = None) -> Iterator[SecretObject]:
        """`list_secrets` chunk by chunk: a caller that reduces each Secret as it comes holds one chunk."""
        ...

    def read_service_annotations(self, *, namespace: str, name: str) -> dict[str, str] | None:
        """The annotations of one Service; None when it is absent or may not be read."""
        ...

    def read_rollout(self, *, namespace: str, name: str) -> Rollout | None:
        """How the StatefulSet `name` replaces pods; None when it does not exist."""
        ...


@dataclass(frozen=True)
class EventSubject:
    """The object an Event is about (its involvedObject)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str = ""


class EventRecorder(Protocol):
    """Records Warning Events, each at most once: `name` identifies the Event (subject, condition and
    day), and recording a name that exists already does nothing."""

    def record_once(self, subject: EventSubject, *, name: str, reason: str, message: str,
                    now: datetime) -> bool:
        """True when recorded now; False when an Event of that name exists. Raises ForbiddenError,
        UnreachableError."""
        ...
