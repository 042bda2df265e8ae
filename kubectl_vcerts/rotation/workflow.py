"""rotate, rotate-ca and restore, in order: lock, plan, confirm, back up, write, restart, wait, verify.

The workflow talks to the cluster only through the ports (`Ports`), reads time only from the clock,
reports progress through the callback and returns an `OperationReport`; it never prints.

Safety, step by step (what rotate / rotate-ca / restore do, in order):
- refusals happen before anything is written (`plan.check_supported`, PKI checks, hook preflight);
- the lock Lease `vcerts-NAME` keeps a second operation out; vCluster's own rotation Lease keeps its
  cert watcher out while we write and restart;
- a backup Secret of the current data is created before the write; the write is guarded by the
  resourceVersion we planned from and carries the operation record (recovery.py), so a killed run is
  resumed by re-running the same command;
- pods are restarted (rolling for leaves, together for a CA change) and waited for; if they are not
  back within the timeout the backup is written back and the pods restarted again (unless
  --no-rollback);
- a run killed during that rollback is only finished by the next run (restart, wait), which then stops
  without running the operation it was asked for — that operation's plan was never confirmed — and
  says so (`stops_after_rollback`; the CLI exits ROLLED_BACK).

Imports pki, rotation modules, contract and errors only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import (
    AbortedError,
    ConflictError,
    ExitCode,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    OperationTimeoutError,
    RolledBackError,
    VcertsError,
)
from kubectl_vcerts.pki import (
    CaMaterial,
    EntryChange,
    Status,
    ca_fingerprint,
    inspect_pki,
    renew_leaves,
    rotate_ca,
)
from kubectl_vcerts.pki.renew import not_after_of
from kubectl_vcerts.rotation import plan as planning
from kubectl_vcerts.rotation.lock import HeldLease, HolderCheck, acquire_lock, acquire_vcluster_rotation_lease
from kubectl_vcerts.rotation.model import PodState, VCluster
from kubectl_vcerts.rotation.plan import RestartStep, RotationPlan
from kubectl_vcerts.rotation.ports import (
    BackupPort,
    BackupRecord,
    CaChange,
    CaChangeHook,
    CertsPort,
    CertsState,
    Clock,
    LeasePort,
    PodPort,
    Progress,
    ProgressEvent,
    WorkloadPort,
    no_progress,
)
from kubectl_vcerts.rotation.records import SecretData
from kubectl_vcerts.rotation.recovery import Operation, OperationRecord, Phase, RestartMode, read_record

DEFAULT_TIMEOUT = timedelta(minutes=5)
LEAF_VALIDITY = timedelta(days=365)
CA_VALIDITY = timedelta(days=3650)
BACKUP_NAME_ATTEMPTS = 5


@dataclass(frozen=True)
class Ports:
    """Everything the workflow needs from the host cluster."""

    certs: CertsPort
    backups: BackupPort
    leases: LeasePort
    pods: PodPort
    workloads: WorkloadPort


@dataclass(frozen=True)
class OperationRequest:
    operation: Operation
    holder: str  # lock holder identity: user@host:pid operation
    force: bool = False
    dry_run: bool = False
    restart: bool = True
    rollback: bool = True
    timeout: timedelta = DEFAULT_TIMEOUT
    leaf_validity: timedelta = LEAF_VALIDITY
    ca_validity: timedelta = CA_VALIDITY
    byo_ca: CaMaterial | None = field(default=None, repr=False)
    finish_interrupted: bool = False
    # restore: a backup (ID, name or "latest") or data read from a directory (`source` names it)
    restore_backup: str | None = None
    restore_data: Mapping[str, bytes] | None = field(default=None, repr=False)
    restore_source: str = ""
    renew: bool = True
    lock_seconds: int = 60
    poll_seconds: float = 1.0


@dataclass(frozen=True)
class OperationReport:
    """What happened; rendered by the CLI as text or JSON."""

    plan: RotationPlan
    applied: bool
    backup: str | None = None
    restarted: tuple[str, ...] = ()  # pods we deleted
    pods: tuple[PodState, ...] = ()  # control-plane and etcd pods at the end
    pending_restart: tuple[str, ...] = ()  # --no-restart: pods the user must restart
    regenerated: tuple[str, ...] = ()  # keys vCluster rewrote after the restart
    final_ca_fingerprint: str | None = None
    worst: Status | None = None
    hook_lines: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


Confirm = Callable[[RotationPlan], bool]


def _always(_plan: RotationPlan) -> bool:
    return True


@dataclass
class _Held:
    lock: HeldLease | None = None
    vcluster_lease: HeldLease | None = None

    def renew(self, now: datetime) -> None:
        for lease in (self.lock, self.vcluster_lease):
            if lease is not None:
                lease.renew(now)


class Workflow:
    """Runs one operation on one vCluster. Build once per command with the ports and a clock."""

    def __init__(
        self,
        ports: Ports,
        clock: Clock,
        *,
        progress: Progress = no_progress,
        hooks: Sequence[CaChangeHook] = (),
        holder_dead: HolderCheck | None = None,
    ) -> None:
        self.ports = ports
        self.clock = clock
        self.progress = progress
        self.hooks = tuple(hooks)
        self.holder_dead = holder_dead
        self._held = _Held()

    # ------------------------------------------------------------------------------------ public
    def run(
        self, vcluster: VCluster, request: OperationRequest, *, confirm: Confirm = _always
    ) -> OperationReport:
        self._poll = request.poll_seconds
        planning.check_supported(vcluster, force=request.force, finish_interrupted=request.finish_interrupted)
        if request.operation is not Operation.ROTATE_CA and request.byo_ca is not None:
            raise InvalidInputError("--ca-cert/--ca-key only apply to rotate-ca")
        if request.dry_run:
            state = self._read_first(vcluster)
            plan = self._plan(vcluster, state, request)
            self._emit("plan", "dry run: nothing changed", done=True)
            return OperationReport(plan=plan, applied=False)

        held = self._held = _Held()
        dead = self.holder_dead or (lambda _h: False)
        held.lock = acquire_lock(
            self.ports.leases,
            namespace=vcluster.namespace,
            vcluster=vcluster.name,
            holder=request.holder,
            clock=self.clock,
            duration_seconds=request.lock_seconds,
            holder_dead=dead,
        )
        self._emit("lock", f"holding lease {contract.lock_lease_name(vcluster.name)}", done=True)
        try:
            state = self._read_first(vcluster)
            plan = self._plan(vcluster, state, request)
            if not confirm(plan):
                raise AbortedError("aborted: nothing was changed")
            held.lock.renew(self.clock.now(), force=True)
            if plan.finish_interrupted_replicas is not None:
                vcluster = self._finish_interrupted(vcluster, plan.finish_interrupted_replicas, request)
                state = self.ports.certs.read_certs(vcluster)
                plan = self._plan(vcluster, state, replace(request, finish_interrupted=False))
            held.vcluster_lease = acquire_vcluster_rotation_lease(
                self.ports.leases,
                namespace=vcluster.namespace,
                vcluster=vcluster.name,
                holder=request.holder,
                clock=self.clock,
                holder_dead=dead,
            )
            try:
                return self._apply(vcluster, state, plan, request)
            finally:
                self._release(held.vcluster_lease)
        finally:
            self._release(held.lock)
            self._emit("release", "released the lock", done=True)

    def _release(self, lease: HeldLease) -> None:
        """Release without hiding the error that got us here: an unreleased lease just expires."""
        try:
            lease.release()
        except VcertsError as exc:
            self._emit("release", f"could not delete lease {lease.record.name} ({exc}); it expires by itself")

    def _read_first(self, vcluster: VCluster) -> CertsState:
        try:
            return self.ports.certs.read_certs(vcluster)
        except NotFoundError as exc:
            raise NotFoundError(
                f"vCluster {vcluster.ref} has no secret {contract.certs_secret_name(vcluster.name)}",
                hint="vCluster creates it on its first start; without it (custom certificates via "
                "experimental.virtualClusterKubeConfig, or not started yet) there is nothing to rotate",
            ) from exc

    # ---------------------------------------------------------------------------------- planning
    def _plan(self, vcluster: VCluster, state: CertsState, request: OperationRequest) -> RotationPlan:
        now = self.clock.now()
        where = f"secret {vcluster.namespace}/{contract.certs_secret_name(vcluster.name)}"
        record = read_record(state.annotations, where=where)
        finish = planning.interrupted_replicas(vcluster) if vcluster.restoring else None
        notes: list[str] = []
        if finish is not None:
            notes.append(
                f"finish the interrupted `vcluster certs rotate`: scale back to {finish} replica(s) "
                f"and remove the {contract.RESTORING_ANNOTATION} annotations"
            )
        current_fp = _fingerprint_or_none(state.data)
        if record is not None and self._resumable(record, request):
            mode = record.restart if record.phase is Phase.RESTART else RestartMode.TOGETHER
            if record.phase is Phase.ROLLBACK:
                notes += _rollback_only_notes(record, request)
            else:
                notes.append(
                    f"resume the interrupted {record.operation} started {_ts(record.started)} "
                    f"(phase {record.phase}, backup {record.backup})"
                )
            return RotationPlan(
                operation=request.operation,
                vcluster=vcluster,
                source_resource_version=state.resource_version,
                backup_name=record.backup,
                changes=(),
                old_ca_fingerprint=current_fp,
                new_ca_fingerprint=current_fp or "",
                restart_mode=mode,
                restart_steps=planning.plan_restart(vcluster, mode),
                # a rollback is always finished with a restart (see _stop_after_rollback)
                restart=request.restart or record.phase is Phase.ROLLBACK,
                # finishing a rollback keeps the CA of the state before the operation: no CA change
                ca_change=record.ca_change and record.phase is not Phase.ROLLBACK,
                new_data=SecretData(state.data),
                resume=record,
                finish_interrupted_replicas=finish,
                source=record.source,
                notes=tuple(notes),
            )
        if record is not None and request.operation is not Operation.RESTORE:
            raise NotReadyError(
                f"{where} records an interrupted {record.operation} (started {_ts(record.started)}, "
                f"backup {record.backup})",
                hint=f"run `kubectl vcerts {record.operation} {vcluster.name} -n {vcluster.namespace}` to "
                f"finish it, or `kubectl vcerts restore {vcluster.name} --backup {record.backup}` "
                f"to undo it",
            )

        source = ""
        action: dict[str, str] = {}
        changes: tuple[EntryChange, ...] | None = None
        if request.operation is Operation.ROTATE:
            planning.check_pki_usable(state.data, now=now, operation=Operation.ROTATE, where=where)
            change = renew_leaves(state.data, now=now, validity=request.leaf_validity)
            new_data = SecretData(change.data)
            changes = change.changes
        elif request.operation is Operation.ROTATE_CA:
            change = rotate_ca(
                state.data,
                now=now,
                ca_validity=request.ca_validity,
                leaf_validity=request.leaf_validity,
                byo_ca=request.byo_ca,
            )
            new_data = SecretData(change.data)
            changes = change.changes
        else:
            source, source_data = self._restore_source(vcluster, request)
            planning.check_restore_source(source_data, now=now, where=source)
            if request.renew:
                change = renew_leaves(source_data, now=now, validity=request.leaf_validity)
                new_data = SecretData(change.data)
                action = {c.secret_key: c.action for c in change.changes}
            else:
                new_data = SecretData(source_data)
        new_fp = ca_fingerprint(new_data)
        ca_change = new_fp != current_fp or request.operation is Operation.ROTATE_CA
        mode = planning.choose_restart_mode(vcluster, ca_change=ca_change, resume=record)
        if record is not None:
            notes.append(f"replaces the interrupted {record.operation} (backup {record.backup})")
        plan = RotationPlan(
            operation=request.operation,
            vcluster=vcluster,
            source_resource_version=state.resource_version,
            backup_name=planning.backup_name(vcluster, now),
            changes=changes if changes is not None else _diff(state.data, new_data, action),
            old_ca_fingerprint=current_fp,
            new_ca_fingerprint=new_fp,
            restart_mode=mode,
            restart_steps=planning.plan_restart(vcluster, mode),
            restart=request.restart,
            ca_change=ca_change,
            new_data=new_data,
            finish_interrupted_replicas=finish,
            source=source,
            notes=tuple(notes),
        )
        if ca_change and self.hooks:
            change_info = self._ca_change(plan)
            for hook in self.hooks:
                hook.preflight(change_info)
            lines = [line for hook in self.hooks for line in hook.describe(change_info)]
            plan = replace(plan, hook_lines=tuple(lines))
        return plan

    @staticmethod
    def _resumable(record: OperationRecord, request: OperationRequest) -> bool:
        if record.phase is Phase.ROLLBACK:
            return True  # finish putting the backup back before anything else
        if record.operation is not request.operation:
            return False
        if request.operation is Operation.RESTORE:
            wanted = request.restore_source or request.restore_backup or ""
            return wanted in ("", "latest", record.source) or record.source.endswith(f"-{wanted}")
        return True

    def _restore_source(self, vcluster: VCluster, request: OperationRequest) -> tuple[str, dict[str, bytes]]:
        if request.restore_data is not None:
            return request.restore_source or "directory", SecretData(request.restore_data)
        records = self.ports.backups.list_backups(vcluster)
        chosen = planning.resolve_backup(records, request.restore_backup or "latest", vcluster=vcluster)
        full = self.ports.backups.read_backup(vcluster, chosen.name)
        return chosen.name, SecretData(full.data or {})

    def _ca_change(self, plan: RotationPlan) -> CaChange:
        return CaChange(
            vcluster=plan.vcluster,
            operation=str(plan.operation),
            old_ca_fingerprint=plan.old_ca_fingerprint,
            new_ca_fingerprint=plan.new_ca_fingerprint,
            new_data=plan.new_data,
            at=self.clock.now(),
        )

    # ---------------------------------------------------------------------------------- applying
    def _apply(
        self, vcluster: VCluster, state: CertsState, plan: RotationPlan, request: OperationRequest
    ) -> OperationReport:
        notes: list[str] = list(plan.notes)
        if plan.resume is not None and plan.resume.phase is Phase.ROLLBACK:
            return self._stop_after_rollback(vcluster, plan, plan.resume, request)
        hook_lines: list[str] = []
        if plan.resume is not None:
            backup_name = plan.resume.backup
            record = plan.resume
            before_data = None  # read from the backup if a rollback is needed
            written = state
        else:
            backup = self._create_backup(vcluster, state, str(plan.operation))
            backup_name = backup.name
            record = OperationRecord(
                operation=plan.operation,
                id=secrets.token_hex(6),
                backup=backup_name,
                phase=Phase.RESTART,
                restart=plan.restart_mode,
                started=self.clock.now(),
                ca_change=plan.ca_change,
                holder=request.holder,
                source=plan.source,
            )
            if plan.ca_change:
                change_info = self._ca_change(plan)
                if self.hooks:
                    # Hooks may delete nodes: make sure the guarded write below will not fail on a
                    # secret someone changed since planning (e.g. during the prompt) before they act.
                    self._check_unchanged(vcluster, state.resource_version, backup_name)
                for hook in self.hooks:
                    hook_lines += hook.before(change_info)
            before_data = SecretData(state.data)
            written = self._write(vcluster, plan.new_data, record, state.resource_version)
        if not plan.restart:
            self._clear_record(vcluster)
            pending = plan.restart_pods
            self._emit("restart", "skipped (--no-restart)", done=True)
            return OperationReport(
                plan=plan,
                applied=True,
                backup=backup_name,
                pending_restart=pending,
                final_ca_fingerprint=plan.new_ca_fingerprint,
                hook_lines=tuple(hook_lines),
                notes=tuple(notes),
            )

        deadline = self.clock.now() + request.timeout
        restarted, ok = self._restart(vcluster, record.restart, deadline, request)
        failure = (
            ""
            if ok
            else (
                f"the control plane of {vcluster.ref} was not Running and Ready within "
                f"{_human(request.timeout)}"
            )
        )
        regenerated: tuple[str, ...] = ()
        worst: Status | None = None
        final_fp: str | None = None
        back: CertsState | None = None
        if ok:
            back = self.ports.certs.read_certs(vcluster)
            regenerated = tuple(
                sorted(
                    k for k in set(back.data) | set(written.data) if back.data.get(k) != written.data.get(k)
                )
            )
            report = inspect_pki(back.data, now=self.clock.now())
            worst = report.worst
            final_fp = report.ca_fingerprint
            renewed = plan.operation is not Operation.RESTORE or request.renew
            if final_fp != ca_fingerprint(written.data):
                failure = "the CA read back after the restart differs from the one written"
            elif worst is Status.INVALID or (renewed and worst is Status.EXPIRED):
                failure = f"the PKI read back after the restart is {worst}"
            self._emit(
                "verify",
                "verified "
                + contract.certs_secret_name(vcluster.name)
                + (f" (vCluster rewrote {', '.join(regenerated)})" if regenerated else ""),
                done=not failure,
            )
        if failure:
            if not request.rollback:
                self._clear_record(vcluster)
                raise OperationTimeoutError(
                    f"{failure}; kept the new PKI (--no-rollback)",
                    hint=f"inspect the pods; undo with `kubectl vcerts restore {vcluster.name} -n "
                    f"{vcluster.namespace} --backup {backup_name}`",
                )
            if before_data is None:
                before_data = SecretData(self.ports.backups.read_backup(vcluster, backup_name).data or {})
            self._rollback(vcluster, record, before_data, failure, request)
        if plan.ca_change:
            change_info = self._ca_change(plan)
            for hook in self.hooks:
                hook_lines += hook.after(change_info)
        self._clear_record(vcluster, back)
        cp, etcd = self.ports.pods.list_pods(vcluster)
        return OperationReport(
            plan=plan,
            applied=True,
            backup=backup_name,
            restarted=restarted,
            pods=cp + etcd,
            regenerated=regenerated,
            final_ca_fingerprint=final_fp,
            worst=worst,
            hook_lines=tuple(hook_lines),
            notes=tuple(notes),
        )

    def _finish_interrupted(self, vcluster: VCluster, replicas: int, request: OperationRequest) -> VCluster:
        self.ports.workloads.finish_interrupted_rotation(vcluster, replicas=replicas)
        self._emit("finish-interrupted", f"scaled {vcluster.ref} back to {replicas} replica(s)")
        deadline = self.clock.now() + request.timeout

        def running() -> tuple[bool, str]:
            cp, _etcd = self.ports.pods.list_pods(vcluster)
            up = [p for p in cp if p.status == "Running"]
            return len(up) >= replicas, f"{len(up)}/{replicas} control-plane pod(s) Running"

        if not self._wait(running, deadline):
            raise OperationTimeoutError(
                f"vCluster {vcluster.ref} was scaled back to {replicas} replica(s) but its pods are not "
                f"Running after {_human(request.timeout)}",
                hint="inspect the pods; run the command again once they are Running (or pass --force)",
            )
        refreshed = self.ports.workloads.refresh(vcluster)
        planning.check_supported(refreshed, force=request.force, finish_interrupted=False)
        self._emit("finish-interrupted", "interrupted `vcluster certs rotate` finished", done=True)
        return refreshed

    def _create_backup(self, vcluster: VCluster, state: CertsState, operation: str) -> BackupRecord:
        start = int(self.clock.now().timestamp())
        fingerprint = _fingerprint_or_none(state.data) or ""
        for offset in range(BACKUP_NAME_ATTEMPTS):
            name = contract.backup_secret_name(vcluster.name, start + offset)
            try:
                record = self.ports.backups.create_backup(
                    vcluster,
                    name=name,
                    data=state.data,
                    operation=operation,
                    source_resource_version=state.resource_version,
                    ca_fingerprint=fingerprint,
                    created=self.clock.now(),
                )
            except ConflictError:
                continue  # a backup made in the same second (e.g. by a killed run): take the next second
            self._emit(
                "backup", f"backed up {contract.certs_secret_name(vcluster.name)} to {name}", done=True
            )
            return record
        raise ConflictError(
            f"could not find a free backup name for {vcluster.ref}", hint="run again in a few seconds"
        )

    @staticmethod
    def _conflict(vcluster: VCluster, backup: str) -> ConflictError:
        secret = contract.certs_secret_name(vcluster.name)
        return ConflictError(
            f"secret {vcluster.namespace}/{secret} changed since it was read (vCluster's cert watcher or "
            f"another client wrote it); it was left unchanged",
            hint=f"run the command again; the backup {backup} of the state we read is kept",
        )

    def _check_unchanged(self, vcluster: VCluster, resource_version: str, backup: str) -> None:
        if self.ports.certs.read_certs(vcluster).resource_version != resource_version:
            raise self._conflict(vcluster, backup)

    def _write(
        self, vcluster: VCluster, data: Mapping[str, bytes], record: OperationRecord, resource_version: str
    ) -> CertsState:
        secret = contract.certs_secret_name(vcluster.name)
        try:
            written = self.ports.certs.write_certs(
                vcluster,
                data=data,
                annotations={contract.OPERATION_ANNOTATION: record.encode()},
                resource_version=resource_version,
            )
        except ConflictError as exc:
            raise self._conflict(vcluster, record.backup) from exc
        self._emit("write", f"wrote {secret} ({record.phase})", done=True)
        return written

    def _clear_record(self, vcluster: VCluster, known: CertsState | None = None) -> None:
        """Remove the operation record (the only change; `known` is a state just read, else read now —
        the write is guarded, so a concurrent writer makes us read again)."""
        for _attempt in range(5):
            current, known = known or self.ports.certs.read_certs(vcluster), None
            if contract.OPERATION_ANNOTATION not in current.annotations:
                return
            try:
                self.ports.certs.write_certs(
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

    def _rollback(
        self,
        vcluster: VCluster,
        record: OperationRecord,
        data: Mapping[str, bytes],
        failure: str,
        request: OperationRequest,
    ) -> None:
        """Write the backup back, restart everything together, wait, then raise RolledBackError."""
        current = self.ports.certs.read_certs(vcluster)
        rollback = replace(record, phase=Phase.ROLLBACK, restart=RestartMode.TOGETHER)
        # The PKI being replaced is ours, but vCluster may have rewritten parts of it: keep it too.
        failed = self._create_backup(vcluster, current, contract.ROLLED_BACK_OPERATION)
        self._emit(
            "rollback", f"{failure}; putting back {record.backup} (the new PKI is kept in {failed.name})"
        )
        self._write(vcluster, data, rollback, current.resource_version)
        # done: from here a killed run leaves the backup written back with a `rollback` record, which the
        # next run only finishes (crash tests pause here with VCERTS_TEST_PAUSE_AFTER=rollback)
        self._emit("rollback", f"wrote {record.backup} back", done=True)
        _restarted, back = self._finish_rollback(vcluster, request)
        self._clear_record(vcluster)
        state = (
            "it is Running and Ready again"
            if back
            else (f"but it is still not Ready after another {_human(request.timeout)}")
        )
        raise RolledBackError(
            f"{failure}; rolled back to {record.backup} and restarted the control plane — {state}",
            hint="inspect the pods (kubectl describe pod) and events, then run the command again "
            "(--timeout to wait longer, --no-rollback to keep the new PKI)",
        )

    def _finish_rollback(self, vcluster: VCluster, request: OperationRequest) -> tuple[tuple[str, ...], bool]:
        deadline = self.clock.now() + request.timeout
        return self._restart(vcluster, RestartMode.TOGETHER, deadline, request)

    def _stop_after_rollback(
        self, vcluster: VCluster, plan: RotationPlan, record: OperationRecord, request: OperationRequest
    ) -> OperationReport:
        """Finish an interrupted rollback (restart, wait), then stop without running the requested
        operation: its plan was never shown to the user, so running it now would be a change nobody
        confirmed. The caller reports it (`stops_after_rollback`) and the CLI exits ROLLED_BACK."""
        self._emit("rollback", f"finishing the interrupted rollback to {record.backup}")
        restarted, back = self._finish_rollback(vcluster, request)
        if not back:
            raise OperationTimeoutError(
                f"finished writing back {record.backup} but the control plane of {vcluster.ref} is not Ready "
                f"after {_human(request.timeout)}",
                hint="inspect the pods; run the command again to retry",
            )
        state = self.ports.certs.read_certs(vcluster)
        self._clear_record(vcluster, state)
        report = inspect_pki(state.data, now=self.clock.now())
        self._emit(
            "rolled-back", f"rolled back the interrupted {record.operation} to {record.backup}", done=True
        )
        cp, etcd = self.ports.pods.list_pods(vcluster)
        return OperationReport(
            plan=plan,
            applied=True,
            backup=record.backup,
            restarted=restarted,
            pods=cp + etcd,
            final_ca_fingerprint=report.ca_fingerprint,
            worst=report.worst,
        )

    # ------------------------------------------------------------------------ restart and waiting
    def _restart(
        self, vcluster: VCluster, mode: RestartMode, deadline: datetime, request: OperationRequest
    ) -> tuple[tuple[str, ...], bool]:
        """Delete the pods step by step and wait for replacements; (deleted pods, came back in time)."""
        cp, etcd = self.ports.pods.list_pods(vcluster)
        live = replace(vcluster, pods=cp, etcd_pods=etcd)
        if (
            mode is RestartMode.ROLLING
            and planning.choose_restart_mode(live, ca_change=False, resume=None) is RestartMode.TOGETHER
        ):
            mode = RestartMode.TOGETHER  # something is already down: nothing to keep available
        steps = planning.plan_restart(live, mode)
        expected_cp = max(vcluster.replicas, 1)
        expected_etcd = len([p for p in etcd if p.status != "Terminating"])
        uids = {p.name: p.uid for p in cp + etcd}
        deleted: set[str] = set()
        names: list[str] = []
        for step in steps:
            self._delete_step(vcluster, step, uids, deleted, names)

            def ready(deleted_now: frozenset[str] = frozenset(deleted)) -> tuple[bool, str]:
                return self._group_ready(vcluster, deleted_now, expected_cp, expected_etcd)

            if not self._wait(ready, deadline):
                return tuple(names), False
        if not steps and vcluster.replicas == 0:
            self._emit(
                "restart", "no pods (scaled to 0): the new certificates apply when it starts", done=True
            )
            return (), True
        if not steps:
            ok = self._wait(
                lambda: self._group_ready(vcluster, frozenset(), expected_cp, expected_etcd), deadline
            )
            return (), ok
        self._emit("wait", "every restarted pod is Running and Ready", done=True)
        return tuple(names), True

    def _delete_step(
        self, vcluster: VCluster, step: RestartStep, uids: dict[str, str], deleted: set[str], names: list[str]
    ) -> None:
        for pod in step.pods:
            self.ports.pods.delete_pod(vcluster.namespace, pod, uid=uids[pod])
            deleted.add(uids[pod])
            names.append(pod)
        self._emit("restart", f"deleted pod(s) {', '.join(step.pods)}", done=True)

    def _group_ready(
        self, vcluster: VCluster, deleted: frozenset[str], expected_cp: int, expected_etcd: int
    ) -> tuple[bool, str]:
        cp, etcd = self.ports.pods.list_pods(vcluster)

        def count(pods: tuple[PodState, ...]) -> int:
            return len([p for p in pods if p.uid not in deleted and p.ready and p.status == "Running"])

        ready_cp, ready_etcd = count(cp), count(etcd)
        message = f"{ready_cp}/{expected_cp} control-plane pod(s) Ready"
        if expected_etcd:
            message += f", {ready_etcd}/{expected_etcd} etcd pod(s) Ready"
        return ready_cp >= expected_cp and ready_etcd >= expected_etcd, message

    def _wait(self, condition: Callable[[], tuple[bool, str]], deadline: datetime) -> bool:
        # Pods usually come back within a second or two: look often at first, then every poll_seconds.
        poll = min(0.2, max(self._poll, 0.01))
        last = ""
        while True:
            ok, message = condition()
            if message != last:
                self._emit("wait", message)
                last = message
            if ok:
                return True
            now = self.clock.now()
            if now >= deadline:
                return False
            self._held.renew(now)
            self.clock.sleep(min(poll, (deadline - now).total_seconds()))
            poll = min(poll * 1.5, max(self._poll, 0.01))

    _poll = 1.0

    def _emit(self, step: str, message: str, *, done: bool = False) -> None:
        self.progress(ProgressEvent(step=step, message=message, done=done))


def stops_after_rollback(plan: RotationPlan) -> bool:
    """True when the run only finishes an interrupted rollback and then stops (the requested operation
    is not run: the user must run the command again, having seen its plan)."""
    return plan.resume is not None and plan.resume.phase is Phase.ROLLBACK


def _rollback_only_notes(record: OperationRecord, request: OperationRequest) -> list[str]:
    notes = [
        f"finish the interrupted rollback of the {record.operation} started {_ts(record.started)}: "
        f"the PKI from before it (backup {record.backup}) is already written back; restart the "
        f"control plane on it and wait until it is Ready",
        f"then stop: the {request.operation} you asked for is NOT run now (exit "
        f"{int(ExitCode.ROLLED_BACK)}); run the command again to run it (with --dry-run to see its plan)",
    ]
    if not request.restart:
        notes.append("--no-restart does not apply: finishing a rollback always restarts the control plane")
    return notes


def _diff(
    old: Mapping[str, bytes], new: Mapping[str, bytes], action: Mapping[str, str]
) -> tuple[EntryChange, ...]:
    """One EntryChange per key whose bytes change (restore), with old and new NotAfter where they parse."""
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        default = "restored" if key in new else "removed"
        out.append(
            EntryChange(
                secret_key=key,
                action=action.get(key, default),
                old_not_after=not_after_of(old, key),
                new_not_after=not_after_of(new, key),
            )
        )
    return tuple(out)


def _fingerprint_or_none(data: Mapping[str, bytes]) -> str | None:
    try:
        return ca_fingerprint(data)
    except VcertsError:  # missing or corrupt ca.crt: the plan shows "none"
        return None


def _ts(when: datetime) -> str:
    return timefmt.rfc3339(when)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
