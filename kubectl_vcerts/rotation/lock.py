"""The per-vCluster lock (Lease `vcerts-NAME`) and vCluster's own cert-rotation Lease.

Two operators, or one operator twice, must not interleave on one vCluster: every mutating workflow
holds the Lease `vcerts-NAME` (create wins; a 409 means someone holds it). A holder that stopped
renewing loses it when the lease expires; a holder on this host whose process is gone (SIGKILL) can be
taken over at once — `HolderCheck` tells, so a re-run after a crash does not wait for the expiry.
Takeovers are resourceVersion-guarded updates, so two takers cannot both win.

While rotating we also hold vCluster's `vcluster-NAME-cert-rotation` Lease (loft-sh/vcluster
`pkg/certs/watcher.go`) so that
its runtime cert watcher (which acquires it before rotating) waits for us.

Imports only rotation ports/model, contract and errors: no kubernetes, typer or rich.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import ConflictError, LockHeldError
from kubectl_vcerts.rotation.ports import Clock, LeasePort, LeaseRecord

# vCluster's watcher uses 300 s for its own Lease; we hold it for the same span and renew it.
VCLUSTER_LEASE_SECONDS = 300
DEFAULT_LOCK_SECONDS = 60

# "user@host:pid operation": parsed back to decide whether a holder on this host is still alive.
_HOLDER = re.compile(r"^(?P<user>[^@\s]*)@(?P<host>[^:\s]+):(?P<pid>\d+)(?:\s+(?P<op>\S+))?$")

HolderCheck = Callable[[str], bool]
"""Returns True when the holder identity is known to be dead (same host, process gone)."""


def never_dead(_holder: str) -> bool:
    """A HolderCheck that knows nothing: only expiry frees a lock."""
    return False


def holder_identity(
    operation: str, *, user: str | None = None, host: str | None = None, pid: int | None = None
) -> str:
    """`user@host:pid operation`, as shown to whoever finds the lock held."""
    try:
        who = user if user is not None else getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    where = host if host is not None else socket.gethostname()
    return f"{who}@{where}:{pid if pid is not None else os.getpid()} {operation}"


def local_holder_dead(holder: str) -> bool:
    """HolderCheck for this machine: the holder ran here and its process no longer exists."""
    match = _HOLDER.match(holder)
    if match is None or match.group("host") != socket.gethostname():
        return False
    pid = int(match.group("pid"))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by someone else
    return False


@dataclass
class HeldLease:
    """A Lease we hold; `renew` before it expires, `release` at the end."""

    leases: LeasePort
    namespace: str
    record: LeaseRecord
    holder: str
    duration_seconds: int
    released: bool = field(default=False)

    def due(self, now: datetime) -> bool:
        renewed = self.record.renewed or self.record.acquired or now
        return now - renewed >= timedelta(seconds=self.duration_seconds / 3)

    def renew(self, now: datetime, *, force: bool = False) -> None:
        """Extend the lease; losing it to someone else raises LockHeldError (we must stop)."""
        if self.released or not (force or self.due(now)):
            return
        try:
            self.record = self.leases.update_lease(
                self.namespace,
                self.record.name,
                holder=self.holder,
                duration_seconds=self.duration_seconds,
                acquired=self.record.acquired or now,
                renewed=now,
                resource_version=self.record.resource_version,
            )
        except ConflictError as exc:
            current = self.leases.read_lease(self.namespace, self.record.name)
            who = current.holder if current else "nobody"
            raise LockHeldError(
                f"lost lease {self.namespace}/{self.record.name}: now held by {who}",
                hint="another operation took over after our lease expired; check the vCluster and re-run",
            ) from exc

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        # Someone took it over after it expired (ConflictError): theirs now, not ours to delete.
        with contextlib.suppress(ConflictError):
            self.leases.delete_lease(
                self.namespace, self.record.name, resource_version=self.record.resource_version
            )


def _describe_expiry(record: LeaseRecord) -> str:
    end = record.expires()
    return "never renewed" if end is None else f"expires {timefmt.rfc3339(end)}"


def acquire_lease(
    leases: LeasePort,
    *,
    namespace: str,
    name: str,
    holder: str,
    duration_seconds: int,
    clock: Clock,
    holder_dead: HolderCheck = never_dead,
    what: str = "lock",
) -> HeldLease:
    """Create the Lease, or take it over when it is free, expired or held by a dead local process."""
    now = clock.now()
    try:
        record = leases.create_lease(
            namespace, name, holder=holder, duration_seconds=duration_seconds, now=now
        )
        return HeldLease(leases, namespace, record, holder, duration_seconds)
    except ConflictError:
        pass
    current = leases.read_lease(namespace, name)
    if current is None:  # deleted between our create and read: try once more
        record = leases.create_lease(
            namespace, name, holder=holder, duration_seconds=duration_seconds, now=now
        )
        return HeldLease(leases, namespace, record, holder, duration_seconds)
    if (
        current.holder
        and current.holder != holder
        and not current.expired(now)
        and not holder_dead(current.holder)
    ):
        raise LockHeldError(
            f"{what} lease {namespace}/{name} is held by {current.holder} ({_describe_expiry(current)})",
            hint="another operation is running on this vCluster; wait for it to finish "
            "(a lease that is not renewed expires) and run again",
        )
    try:
        record = leases.update_lease(
            namespace,
            name,
            holder=holder,
            duration_seconds=duration_seconds,
            acquired=now,
            renewed=now,
            resource_version=current.resource_version,
        )
    except ConflictError as exc:
        raise LockHeldError(
            f"{what} lease {namespace}/{name} was taken by someone else while we took it over",
            hint="another operation is running on this vCluster; run again later",
        ) from exc
    return HeldLease(leases, namespace, record, holder, duration_seconds)


def acquire_lock(
    leases: LeasePort,
    *,
    namespace: str,
    vcluster: str,
    holder: str,
    clock: Clock,
    duration_seconds: int = DEFAULT_LOCK_SECONDS,
    holder_dead: HolderCheck = never_dead,
) -> HeldLease:
    return acquire_lease(
        leases,
        namespace=namespace,
        name=contract.lock_lease_name(vcluster),
        holder=holder,
        duration_seconds=duration_seconds,
        clock=clock,
        holder_dead=holder_dead,
        what="kubectl vcerts lock",
    )


def acquire_vcluster_rotation_lease(
    leases: LeasePort,
    *,
    namespace: str,
    vcluster: str,
    holder: str,
    clock: Clock,
    holder_dead: HolderCheck = never_dead,
) -> HeldLease:
    """Hold vCluster's watcher Lease; held by a live replica means vCluster is rotating right now."""
    try:
        return acquire_lease(
            leases,
            namespace=namespace,
            name=contract.vcluster_rotation_lease_name(vcluster),
            holder=holder,
            duration_seconds=VCLUSTER_LEASE_SECONDS,
            clock=clock,
            holder_dead=holder_dead,
            what="vCluster cert-rotation",
        )
    except LockHeldError as exc:
        raise LockHeldError(
            exc.message + " — vCluster's own cert watcher is rotating",
            hint="wait until vCluster's rotation has finished and its lease expired, then run again",
        ) from exc
