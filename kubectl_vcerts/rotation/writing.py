"""Writing NAME-certs and its backups, always guarded: a backup Secret (a free name per second) before
every write, writes carrying the operation record and the resourceVersion they were planned from (a
concurrent writer is reported, never overwritten), and the record removed once the run is over.
After a successful run the oldest backups of the vCluster are pruned (never one still needed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import ConflictError, VcertsError
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.plan import select_prunable
from kubectl_vcerts.rotation.planner import fingerprint_or_none
from kubectl_vcerts.rotation.ports import BackupPort, BackupRecord, CertsPort, CertsState, Clock
from kubectl_vcerts.rotation.recovery import OperationRecord

BACKUP_NAME_ATTEMPTS = 5


class SecretWriter:
    """The workflow's writes to NAME-certs and its backups; `emit(step, message, done=...)` reports them."""

    def __init__(
        self, certs: CertsPort, backups: BackupPort, clock: Clock, emit: Callable[..., None]
    ) -> None:
        self.certs = certs
        self.backups = backups
        self.clock = clock
        self.emit = emit

    def create_backup(self, vcluster: VCluster, state: CertsState, operation: str) -> BackupRecord:
        start = int(self.clock.now().timestamp())
        fingerprint = fingerprint_or_none(state.data) or ""
        for offset in range(BACKUP_NAME_ATTEMPTS):
            name = contract.backup_secret_name(vcluster.name, start + offset)
            try:
                record = self.backups.create_backup(
                    vcluster,
                    name=name,
                    data=state.data,
                    operation=operation,
                    source_resource_version=state.resource_version,
                    ca_fingerprint=fingerprint,
                    created=self.clock.now(),
                    owners=state.owners,
                    identity=state.identity,
                )
            except ConflictError:
                continue  # a backup made in the same second (e.g. by a killed run): take the next second
            self.emit(
                "backup", f"backed up {contract.certs_secret_name(vcluster.name)} to {name}", done=True
            )
            return record
        raise ConflictError(
            f"could not find a free backup name for {vcluster.ref}", hint="run again in a few seconds"
        )

    def prune(
        self, vcluster: VCluster, *, keep: int, identity: str, protected: frozenset[str]
    ) -> tuple[str, ...]:
        """Delete this vCluster's backups beyond the newest `keep` (0: none), never a `protected` one.
        The operation has succeeded by now: a backup that cannot be deleted is reported, not raised."""
        if keep <= 0:
            return ()
        deleted: list[str] = []
        try:
            doomed = select_prunable(self.backups.list_backups(vcluster), keep=keep, identity=identity,
                                     protected=protected)
            for record in doomed:
                self.backups.delete_backup(vcluster, record.name)
                deleted.append(record.name)
        except VcertsError as exc:
            self.emit("prune", f"could not prune old backups: {exc}", done=True)
            return tuple(deleted)
        if deleted:
            self.emit("prune", f"deleted {len(deleted)} old backup(s), keeping the newest {keep}", done=True)
        return tuple(deleted)

    @staticmethod
    def conflict(vcluster: VCluster, backup: str) -> ConflictError:
        secret = contract.certs_secret_name(vcluster.name)
        return ConflictError(
            f"secret {vcluster.namespace}/{secret} changed since it was read (vCluster's cert watcher or "
            f"another client wrote it); it was left unchanged",
            hint=f"run the command again; the backup {backup} of the state we read is kept",
        )

    def check_unchanged(self, vcluster: VCluster, resource_version: str, backup: str) -> None:
        if self.certs.read_certs(vcluster).resource_version != resource_version:
            raise self.conflict(vcluster, backup)

    def write(
        self, vcluster: VCluster, data: Mapping[str, bytes], record: OperationRecord, resource_version: str
    ) -> CertsState:
        secret = contract.certs_secret_name(vcluster.name)
        try:
            written = self.certs.write_certs(
                vcluster,
                data=data,
                annotations={
                    contract.OPERATION_ANNOTATION: record.encode(),
                    contract.WRITTEN_AT_ANNOTATION: timefmt.rfc3339(self.clock.now()),
                },
                resource_version=resource_version,
            )
        except ConflictError as exc:
            raise self.conflict(vcluster, record.backup) from exc
        self.emit("write", f"wrote {secret} ({record.phase})", done=True)
        return written

    def clear_record(self, vcluster: VCluster, known: CertsState | None = None) -> None:
        """Remove the operation record (the only change; `known` is a state just read, else read now —
        the write is guarded, so a concurrent writer makes us read again)."""
        for _attempt in range(5):
            current, known = known or self.certs.read_certs(vcluster), None
            if contract.OPERATION_ANNOTATION not in current.annotations:
                return
            try:
                self.certs.write_certs(
                    vcluster,
                    data=current.data,
                    annotations={contract.OPERATION_ANNOTATION: None},
                    resource_version=current.resource_version,
                )
                return
            except ConflictError:
                continue
        raise ConflictError(
            f"could not remove {contract.OPERATION_ANNOTATION} from "
            f"{vcluster.namespace}/{contract.certs_secret_name(vcluster.name)}: it keeps changing",
            hint="run the same command again to finish",
        )
