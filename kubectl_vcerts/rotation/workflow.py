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

The parts: rotation/operation.py (request and report), rotation/planner.py (the plan of each
operation), rotation/writing.py (guarded writes and backups), rotation/restart.py (restarts and waits);
this module runs them in order and rolls back. Imports pki, rotation modules, contract and errors only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NoReturn

from kubectl_vcerts import contract
from kubectl_vcerts.errors import (
    AbortedError,
    InvalidInputError,
    NotFoundError,
    OperationTimeoutError,
    RolledBackError,
    VcertsError,
)
from kubectl_vcerts.pki import (
    PkiReport,
    Status,
    ca_fingerprint,
    inspect_pki,
)
from kubectl_vcerts.rotation import plan as planning
from kubectl_vcerts.rotation.lock import HeldLease, HolderCheck, acquire_lock, acquire_vcluster_rotation_lease
from kubectl_vcerts.rotation.model import PodState, VCluster
from kubectl_vcerts.rotation.operation import OperationReport, OperationRequest, human
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.planner import ca_change_of, fingerprint_or_none, make_plan
from kubectl_vcerts.rotation.ports import (
    BackupPort,
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
from kubectl_vcerts.rotation.recovery import Operation, OperationRecord, Phase, RestartMode
from kubectl_vcerts.rotation.restart import Restarter
from kubectl_vcerts.rotation.writing import SecretWriter


@dataclass(frozen=True)
class Ports:
    """Everything the workflow needs from the host cluster."""

    certs: CertsPort
    backups: BackupPort
    leases: LeasePort
    pods: PodPort
    workloads: WorkloadPort






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


@dataclass
class _Written:
    """What the write step left: the backup, the record written with the data, the data before (None
    when resumed: read from the backup if it is needed), the secret as written, the hooks' lines."""

    backup: str
    record: OperationRecord
    before: Mapping[str, bytes] | None
    state: CertsState
    hook_lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    """What the restart and the read-back found; `failure` is empty when all is well."""

    restarted: tuple[str, ...] = ()
    regenerated: tuple[str, ...] = ()
    worst: Status | None = None
    final_fp: str | None = None
    back: CertsState | None = None
    failure: str = ""


def _invalid(report: PkiReport) -> set[str]:
    return {f"{f.secret_key} {f.reason}" for f in report.findings if f.status is Status.INVALID}


def _report(
    plan: RotationPlan, written: _Written, outcome: _Outcome, *, pods: tuple[PodState, ...] = (),
    pending_restart: tuple[str, ...] = (),
    pruned: tuple[str, ...] = (),
) -> OperationReport:
    """The one place the report of an applied operation is built."""
    return OperationReport(
        plan=plan, applied=True, backup=written.backup, restarted=outcome.restarted, pods=pods,
        regenerated=outcome.regenerated, pending_restart=pending_restart,
        final_ca_fingerprint=outcome.final_fp, worst=outcome.worst, hook_lines=tuple(written.hook_lines),
        notes=tuple(plan.notes), pruned=pruned,
    )


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
        self.writer = SecretWriter(ports.certs, ports.backups, clock, self._emit)

    # ------------------------------------------------------------------------------------ public
    def run(
        self, vcluster: VCluster, request: OperationRequest, *, confirm: Confirm = _always
    ) -> OperationReport:
        planning.check_supported(vcluster, force=request.force, finish_interrupted=request.finish_interrupted)
        if request.operation is not Operation.ROTATE_CA and request.byo_ca is not None:
            raise InvalidInputError("--ca-cert/--ca-key only apply to rotate-ca")
        if request.dry_run:
            state = self._read_first(vcluster)
            plan = self._plan(vcluster, state, request)
            self._emit("plan", "dry run: nothing changed", done=True)
            return OperationReport(plan=plan, applied=False)

        held = _Held()  # this run's leases, renewed while it waits
        restarter = Restarter(self.ports.pods, self.clock, self._emit, poll_seconds=request.poll_seconds,
                              keep_alive=held.renew)
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
                vcluster = self._finish_interrupted(vcluster, plan.finish_interrupted_replicas, request,
                                                    restarter)
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
                return self._apply(vcluster, state, plan, request, restarter)
            finally:
                self._release(held.vcluster_lease)
        finally:
            self._release(held.lock)
            self._emit("release", "released the lock", done=True)

    def _plan(self, vcluster: VCluster, state: CertsState, request: OperationRequest) -> RotationPlan:
        return make_plan(vcluster, state, request, now=self.clock.now(), backups=self.ports.backups,
                         hooks=self.hooks)

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

    # ---------------------------------------------------------------------------------- applying
    def _apply(
        self, vcluster: VCluster, state: CertsState, plan: RotationPlan, request: OperationRequest,
        restarter: Restarter,
    ) -> OperationReport:
        if plan.resume is not None and plan.resume.phase is Phase.ROLLBACK:
            return self._stop_after_rollback(vcluster, plan, plan.resume, request, restarter)
        written = self._write(vcluster, state, plan, request)
        if not plan.restart:
            self.writer.clear_record(vcluster)
            self._emit("restart", "skipped (--no-restart)", done=True)
            return _report(plan, written, _Outcome(final_fp=plan.new_ca_fingerprint),
                           pending_restart=plan.restart_pods,
                           pruned=self._prune(vcluster, state, written, request))
        outcome = self._restart_and_verify(vcluster, plan, request, restarter, written)
        if outcome.failure:
            self._fail(vcluster, written, outcome.failure, request, restarter)
        if plan.runs_hooks:
            change_info = ca_change_of(plan, at=self.clock.now())
            for hook in self.hooks:
                written.hook_lines.extend(hook.after(change_info))
        self.writer.clear_record(vcluster, outcome.back)
        cp, etcd = self.ports.pods.list_pods(vcluster)
        return _report(plan, written, outcome, pods=cp + etcd,
                       pruned=self._prune(vcluster, state, written, request))

    def _prune(
        self, vcluster: VCluster, state: CertsState, written: _Written, request: OperationRequest
    ) -> tuple[str, ...]:
        return self.writer.prune(vcluster, keep=request.keep_backups, identity=state.identity,
                                 protected=frozenset({written.backup}))

    def _write(
        self, vcluster: VCluster, state: CertsState, plan: RotationPlan, request: OperationRequest
    ) -> _Written:
        """Back up, run the hooks' `before`, then write the new data with the operation record. A
        resumed run has written already: it carries on with the record and the backup it left."""
        if plan.resume is not None:
            return _Written(backup=plan.resume.backup, record=plan.resume, before=None, state=state)
        backup = self.writer.create_backup(vcluster, state, plan.backup_operation)
        record = OperationRecord(
            operation=plan.operation, id=secrets.token_hex(6), backup=backup.name, phase=Phase.RESTART,
            restart=plan.restart_mode, started=self.clock.now(), ca_change=plan.ca_change,
            holder=request.holder, source=plan.source, ca=plan.new_ca_fingerprint, stage=plan.stage,
        )
        hook_lines: list[str] = []
        if plan.runs_hooks:
            change_info = ca_change_of(plan, at=self.clock.now())
            if self.hooks:
                # Hooks may delete nodes: make sure the guarded write below will not fail on a
                # secret someone changed since planning (e.g. during the prompt) before they act.
                self.writer.check_unchanged(vcluster, state.resource_version, backup.name)
            for hook in self.hooks:
                hook_lines += hook.before(change_info)
        before = SecretData(state.data)
        written = self.writer.write(vcluster, plan.new_data, record, state.resource_version)
        return _Written(backup=backup.name, record=record, before=before, state=written,
                        hook_lines=hook_lines)

    def _restart_and_verify(
        self, vcluster: VCluster, plan: RotationPlan, request: OperationRequest, restarter: Restarter,
        written: _Written,
    ) -> _Outcome:
        """Restart as the record says, wait, then read the secret back and judge what vCluster made of
        it: the CA must be the one written, and the PKI neither invalid nor (when renewed) expired."""
        deadline = self.clock.now() + request.timeout
        restarted, ok = restarter.restart(vcluster, written.record.restart, deadline,
                                          ca_change=written.record.ca_change,
                                          keep_data=not request.allow_data_loss)
        if not ok:
            return _Outcome(restarted=restarted, failure=f"the control plane of {vcluster.ref} was not "
                            f"Running and Ready within {human(request.timeout)}")
        back = self.ports.certs.read_certs(vcluster)
        ours = written.state.data
        regenerated = tuple(sorted(k for k in set(back.data) | set(ours) if back.data.get(k) != ours.get(k)))
        report = inspect_pki(back.data, now=self.clock.now())
        renewed = plan.operation is not Operation.RESTORE or request.renew
        # vCluster's result is judged against what we wrote: a restore --no-renew may put back a PKI
        # with findings of its own (a migrated vCluster's kubelet client), which are not a failure.
        had = _invalid(inspect_pki(ours, now=self.clock.now())) if report.worst is Status.INVALID else set()
        new_invalid = _invalid(report) - had
        failure = ""
        if report.ca_fingerprint != ca_fingerprint(ours):
            failure = "the CA read back after the restart differs from the one written"
        elif new_invalid:
            failure = f"the PKI read back after the restart is INVALID ({', '.join(sorted(new_invalid))})"
        elif renewed and report.worst is Status.EXPIRED:
            failure = f"the PKI read back after the restart is {report.worst}"
        self._emit(
            "verify",
            "verified " + contract.certs_secret_name(vcluster.name)
            + (f" (vCluster rewrote {', '.join(regenerated)})" if regenerated else ""),
            done=not failure,
        )
        return _Outcome(restarted=restarted, regenerated=regenerated, worst=report.worst,
                        final_fp=report.ca_fingerprint, back=back, failure=failure)

    def _fail(
        self, vcluster: VCluster, written: _Written, failure: str, request: OperationRequest,
        restarter: Restarter,
    ) -> NoReturn:
        """Keep the new PKI (--no-rollback) or roll back to the backup; either way raise."""
        if not request.rollback:
            self.writer.clear_record(vcluster)
            raise OperationTimeoutError(
                f"{failure}; kept the new PKI (--no-rollback)",
                hint=f"inspect the pods; undo with `kubectl vcerts restore {vcluster.name} -n "
                f"{vcluster.namespace} --backup {written.backup}`",
            )
        before = written.before
        if before is None:
            before = SecretData(self.ports.backups.read_backup(vcluster, written.backup).data or {})
        self._rollback(vcluster, written.record, before, failure, request, restarter)

    def _finish_interrupted(
        self, vcluster: VCluster, replicas: int, request: OperationRequest, restarter: Restarter
    ) -> VCluster:
        self.ports.workloads.finish_interrupted_rotation(vcluster, replicas=replicas)
        self._emit("finish-interrupted", f"scaled {vcluster.ref} back to {replicas} replica(s)")
        deadline = self.clock.now() + request.timeout

        def running() -> tuple[bool, str]:
            cp, _etcd = self.ports.pods.list_pods(vcluster)
            up = [p for p in cp if p.status == "Running"]
            return len(up) >= replicas, f"{len(up)}/{replicas} control-plane pod(s) Running"

        if not restarter.wait(running, deadline):
            raise OperationTimeoutError(
                f"vCluster {vcluster.ref} was scaled back to {replicas} replica(s) but its pods are not "
                f"Running after {human(request.timeout)}",
                hint="inspect the pods; run the command again once they are Running (or pass --force)",
            )
        refreshed = self.ports.workloads.refresh(vcluster)
        planning.check_supported(refreshed, force=request.force, finish_interrupted=False)
        self._emit("finish-interrupted", "interrupted `vcluster certs rotate` finished", done=True)
        return refreshed

    def _rollback(
        self,
        vcluster: VCluster,
        record: OperationRecord,
        data: Mapping[str, bytes],
        failure: str,
        request: OperationRequest,
        restarter: Restarter,
    ) -> NoReturn:
        """Write the backup back, restart everything together, wait, then raise RolledBackError."""
        current = self.ports.certs.read_certs(vcluster)
        rollback = replace(record, phase=Phase.ROLLBACK, restart=RestartMode.TOGETHER,
                           ca=fingerprint_or_none(data) or "")
        # The PKI being replaced is ours, but vCluster may have rewritten parts of it: keep it too.
        failed = self.writer.create_backup(vcluster, current, contract.ROLLED_BACK_OPERATION)
        self._emit(
            "rollback", f"{failure}; putting back {record.backup} (the new PKI is kept in {failed.name})"
        )
        self.writer.write(vcluster, data, rollback, current.resource_version)
        # done: from here a killed run leaves the backup written back with a `rollback` record, which the
        # next run only finishes (crash tests pause here with VCERTS_TEST_PAUSE_AFTER=rollback)
        self._emit("rollback", f"wrote {record.backup} back", done=True)
        _restarted, back = self._finish_rollback(vcluster, rollback, request, restarter)
        self.writer.clear_record(vcluster)
        state = (
            "it is Running and Ready again"
            if back
            else (f"but it is still not Ready after another {human(request.timeout)}")
        )
        raise RolledBackError(
            f"{failure}; rolled back to {record.backup} and restarted the control plane — {state}",
            hint="inspect the pods (kubectl describe pod) and events, then run the command again "
            "(--timeout to wait longer, --no-rollback to keep the new PKI)",
        )

    def _finish_rollback(
        self, vcluster: VCluster, record: OperationRecord, request: OperationRequest, restarter: Restarter
    ) -> tuple[tuple[str, ...], bool]:
        # The backup has the CA from before the operation: etcd restarts exactly when that one changed it.
        return restarter.restart(vcluster, RestartMode.TOGETHER, self.clock.now() + request.timeout,
                                 ca_change=record.ca_change, keep_data=not request.allow_data_loss)

    def _stop_after_rollback(
        self, vcluster: VCluster, plan: RotationPlan, record: OperationRecord, request: OperationRequest,
        restarter: Restarter,
    ) -> OperationReport:
        """Finish an interrupted rollback (restart, wait), then stop without running the requested
        operation: its plan was never shown to the user, so running it now would be a change nobody
        confirmed. The caller reports it (`stops_after_rollback`) and the CLI exits ROLLED_BACK."""
        self._emit("rollback", f"finishing the interrupted rollback to {record.backup}")
        restarted, back = self._finish_rollback(vcluster, record, request, restarter)
        if not back:
            raise OperationTimeoutError(
                f"finished writing back {record.backup} but the control plane of {vcluster.ref} is not Ready "
                f"after {human(request.timeout)}",
                hint="inspect the pods; run the command again to retry",
            )
        state = self.ports.certs.read_certs(vcluster)
        self.writer.clear_record(vcluster, state)
        report = inspect_pki(state.data, now=self.clock.now())
        self._emit(
            "rolled-back", f"rolled back the interrupted {record.operation} to {record.backup}", done=True
        )
        cp, etcd = self.ports.pods.list_pods(vcluster)
        resumed = _Written(backup=record.backup, record=record, before=None, state=state)
        outcome = _Outcome(restarted=restarted, worst=report.worst, final_fp=report.ca_fingerprint)
        return _report(plan, resumed, outcome, pods=cp + etcd)

    def _emit(self, step: str, message: str, *, done: bool = False) -> None:
        self.progress(ProgressEvent(step=step, message=message, done=done))

