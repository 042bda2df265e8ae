"""The plan of one operation: what rotate, rotate-ca or restore would write, restart and tell the user,
computed from the state read (and, for a resumed run, from its operation record). Nothing is written
here; the backups port is only read (restore's source), the hooks only preflight and describe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import (
    ConflictError,
    DataLossError,
    ExitCode,
    NotReadyError,
    UnsupportedError,
    UsageError,
    VcertsError,
)
from kubectl_vcerts.pki import EntryChange, ca_fingerprint, renew_leaves, rotate_ca
from kubectl_vcerts.pki.renew import not_after_of
from kubectl_vcerts.pki.sans import SanConfig, san_differences
from kubectl_vcerts.pki.staged import admin_on_new_ca
from kubectl_vcerts.rotation import plan as planning
from kubectl_vcerts.rotation import staging
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.operation import OperationRequest
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.ports import BackupPort, CaChange, CaChangeHook, CertsState
from kubectl_vcerts.rotation.records import SecretData
from kubectl_vcerts.rotation.recovery import Operation, OperationRecord, Phase, RestartMode, read_record
from kubectl_vcerts.rotation.unrestarted import unrestarted


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


def fingerprint_or_none(data: Mapping[str, bytes]) -> str | None:
    try:
        return ca_fingerprint(data)
    except VcertsError:  # missing or corrupt ca.crt: the plan shows "none"
        return None


def _ts(when: datetime) -> str:
    return timefmt.rfc3339(when)


def make_plan(
    vcluster: VCluster,
    state: CertsState,
    request: OperationRequest,
    *,
    now: datetime,
    backups: BackupPort,
    hooks: Sequence[CaChangeHook] = (),
) -> RotationPlan:
    """The plan for `request` on the state read; a resumable operation record makes it a resume plan.
    Raises the refusals (unusable PKI, an interrupted operation of another kind, a hook's preflight)."""
    where = f"secret {vcluster.namespace}/{contract.certs_secret_name(vcluster.name)}"
    record = read_record(state.annotations, where=where)
    finish = planning.interrupted_replicas(vcluster) if vcluster.restoring else None
    notes: list[str] = []
    if finish is not None:
        notes.append(
            f"finish the interrupted `vcluster certs rotate`: scale back to {finish} replica(s) "
            f"and remove the {contract.RESTORING_ANNOTATION} annotations"
        )
    current_fp = fingerprint_or_none(state.data)
    if record is not None and _resumable(record, request):
        _check_still_written(vcluster, record, current_fp, where=where)
        mode = record.restart if record.phase is Phase.RESTART else RestartMode.TOGETHER
        if record.phase is Phase.ROLLBACK:
            notes += _rollback_only_notes(record, request)
        else:
            notes.append(
                f"resume the interrupted {record.operation} started {_ts(record.started)} "
                f"(phase {record.phase}, backup {record.backup})"
            )
        steps = planning.plan_restart(vcluster, mode, ca_change=record.ca_change)
        return _guard_restart(RotationPlan(
            operation=request.operation,
            vcluster=vcluster,
            source_resource_version=state.resource_version,
            backup_name=record.backup,
            changes=(),
            old_ca_fingerprint=current_fp,
            new_ca_fingerprint=current_fp or "",
            restart_mode=mode,
            restart_steps=steps,
            # a rollback is always finished with a restart (see _stop_after_rollback)
            restart=request.restart or record.phase is Phase.ROLLBACK,
            # finishing a rollback keeps the CA of the state before the operation: no CA change
            ca_change=record.ca_change and record.phase is not Phase.ROLLBACK,
            new_data=SecretData(state.data),
            resume=record,
            finish_interrupted_replicas=finish,
            source=record.source,
            notes=tuple(notes),
            stage=record.stage,
        ), request, ca_change=record.ca_change)
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
    refresh = _san_notes(vcluster, state, request, notes)
    if request.operation is Operation.ROTATE:
        planning.check_pki_usable(state.data, now=now, operation=Operation.ROTATE, where=where)
        change = renew_leaves(state.data, now=now, validity=request.leaf_validity, refresh_sans=refresh)
        new_data = SecretData(admin_on_new_ca(change.data, now=now, validity=request.leaf_validity))
        changes = change.changes
    elif request.operation is Operation.ROTATE_CA and (request.stage is not None or request.stage_due):
        change, phase = staging.staged_change(vcluster, state.data, request, now=now, refresh=refresh,
                                              notes=notes)
        request = replace(request, stage=phase)
        new_data = SecretData(change.data)
        changes = change.changes
    elif request.operation is Operation.ROTATE_CA:
        staging.refuse_one_step(vcluster, state.data)
        change = rotate_ca(
            state.data,
            now=now,
            ca_validity=request.ca_validity,
            leaf_validity=request.leaf_validity,
            byo_ca=request.byo_ca,
            refresh_sans=refresh,
        )
        new_data = SecretData(change.data)
        changes = change.changes
    else:
        source, source_data = _restore_source(vcluster, request, backups, identity=state.identity,
                                              current=state.data)
        planning.check_restore_source(source_data, now=now, where=source)
        if request.renew:
            change = renew_leaves(source_data, now=now, validity=request.leaf_validity)
            new_data = SecretData(change.data)
            action = {c.secret_key: c.action for c in change.changes}
        else:
            new_data = SecretData(source_data)
    new_fp = ca_fingerprint(new_data)
    ca_change = new_fp != current_fp or request.operation is Operation.ROTATE_CA
    stage = str(request.stage or (planning.ROLLBACK_STAGE if request.undo_stage else ""))
    ca_change = ca_change or bool(stage)  # every phase changes what the control plane trusts
    # A staged phase (or its rollback) meets only peers that trust what it issues and are trusted by
    # it: its pods may be restarted one at a time like a leaf renewal's — unless the last run left pods
    # on an older PKI (--no-restart), which may not trust this one.
    pending = unrestarted(vcluster, state.annotations) if record is None else None
    compatible = bool(stage) and pending is None
    mode = planning.keep_data_mode(
        vcluster,
        planning.choose_restart_mode(vcluster, ca_change=ca_change and not compatible, resume=record),
        ca_change=ca_change)
    _check_no_restart(vcluster, request, ca_change=ca_change)
    if record is not None:
        notes.append(f"replaces the interrupted {record.operation} (backup {record.backup})")
    elif pending is not None:
        notes.append(pending.message(vcluster) + (" (this run restarts them)" if request.restart else ""))
        if stage:
            notes.append("so the restart is not one pod at a time: those pods may not trust this phase")
    plan = RotationPlan(
        operation=request.operation,
        vcluster=vcluster,
        source_resource_version=state.resource_version,
        backup_name=planning.backup_name(vcluster, now),
        changes=changes if changes is not None else _diff(state.data, new_data, action),
        old_ca_fingerprint=staging.old_fingerprint(state.data, request.stage) or current_fp,
        new_ca_fingerprint=new_fp,
        restart_mode=mode,
        restart_steps=planning.plan_restart(vcluster, mode, ca_change=ca_change),
        restart=request.restart,
        ca_change=ca_change,
        new_data=new_data,
        finish_interrupted_replicas=finish,
        source=source,
        notes=tuple(notes),
        stage=stage,
    )
    plan = _guard_restart(plan, request, ca_change=ca_change)
    if plan.runs_hooks and hooks:
        change_info = ca_change_of(plan, at=now)
        for hook in hooks:
            hook.preflight(change_info)
        lines = [line for hook in hooks for line in hook.describe(change_info)]
        plan = replace(plan, hook_lines=tuple(lines))
    return plan


def _guard_restart(plan: RotationPlan, request: OperationRequest, *, ca_change: bool) -> RotationPlan:
    """The refusals of a restart: one that rolls out a template change staged under OnDelete, one that
    deletes the virtual cluster's state (unless --allow-data-loss). With --no-restart the plan says
    instead which restart would do so. A restart that leaves etcd without a majority is said."""
    plan = _guard_data(_guard_staged(plan, request), request, ca_change=ca_change)
    gaps = planning.majority_gaps(plan.vcluster, plan.restart_steps) if plan.restart else ()
    return replace(plan, notes=(*plan.notes, *gaps)) if gaps else plan


def _guard_staged(plan: RotationPlan, request: OperationRequest) -> RotationPlan:
    staged = planning.staged_changes(plan.vcluster, plan.restart_steps)
    if not staged:
        return plan
    if not plan.restart:
        note = "restarting these pods yourself rolls out what is staged: " + "; ".join(staged)
        return replace(plan, notes=(*plan.notes, note))
    if request.roll_out_staged:
        return replace(plan, notes=(*plan.notes, "the restart rolls out what is staged (--roll-out-staged): "
                                    + "; ".join(staged)))
    raise NotReadyError(
        f"vCluster {plan.vcluster.ref}: {staged[0]}",
        hint="nothing was changed; roll the staged change out or revert it (`kubectl rollout undo`) "
        "first, pass --roll-out-staged if it may go out with the restart, or --no-restart to restart "
        "the pods yourself later",
    )


def _guard_data(plan: RotationPlan, request: OperationRequest, *, ca_change: bool) -> RotationPlan:
    losses = planning.data_losses(plan.vcluster, plan.restart_steps, ca_change=ca_change)
    if not losses:
        return plan
    if not plan.restart:
        note = ("restart these pods yourself only if the data may go: " + "; ".join(losses))
        return replace(plan, notes=(*plan.notes, note))
    if not request.allow_data_loss:
        raise DataLossError(
            f"vCluster {plan.vcluster.ref}: {losses[0]}",
            hint="nothing was changed; enable persistence for the vCluster's state (a volume claim), or "
            "pass --allow-data-loss if the virtual cluster may start empty",
        )
    return replace(plan, data_loss=losses)


def _check_no_restart(vcluster: VCluster, request: OperationRequest, *, ca_change: bool) -> None:
    """--no-restart with a CA change is refused where etcd members would turn on each other: the
    kubelet replaces their certificate files in place within about a minute, etcd presents the new
    CA's certificates at once, but keeps trusting the CA it read at start."""
    if request.restart or not ca_change or not any(p.status != "Terminating" for p in vcluster.etcd_pods):
        return
    raise UsageError(
        f"vCluster {vcluster.ref} runs deployed etcd ({len(vcluster.etcd_pods)} member(s)): --no-restart "
        "with a CA change would leave them presenting new-CA certificates to peers and an API server "
        "that trust only the old CA",
        hint="run without --no-restart: etcd and the control plane are restarted together right after "
        "the write",
    )


def _check_still_written(vcluster: VCluster, record: OperationRecord, current_fp: str | None, *,
                         where: str) -> None:
    """Refuse to finish an interrupted run over a PKI someone else wrote since: vCluster's cert watcher
    and `vcluster certs rotate` merge-patch the data from what they read (maybe before our write) and
    leave the record annotation, so finishing would restart on their PKI and report success."""
    if record.phase is not Phase.RESTART or not record.ca or current_fp == record.ca:
        return  # (finishing a rollback restarts on whatever is there: a restore can follow it)
    hint = (f"nothing was changed; put the PKI from before it back with `kubectl vcerts restore "
            f"{vcluster.name} -n {vcluster.namespace} --backup {record.backup}`, then run "
            f"{record.operation} again")
    raise ConflictError(
        f"{where} was written over after the interrupted {record.operation} wrote it (its CA is now "
        f"{current_fp or 'unreadable'}, the run wrote {record.ca}): vCluster's cert watcher or "
        "`vcluster certs rotate` may have put another PKI back",
        hint=hint,
    )


def _resumable(record: OperationRecord, request: OperationRequest) -> bool:
    if record.phase is Phase.ROLLBACK:
        return True  # finish putting the backup back before anything else
    if record.operation is not request.operation:
        return False
    if request.operation is Operation.RESTORE:
        wanted = request.restore_source or request.restore_backup or ""
        return wanted in ("", "latest", record.source) or record.source.endswith(f"-{wanted}")
    return True

def _san_notes(
    vcluster: VCluster, state: CertsState, request: OperationRequest, notes: list[str]
) -> SanConfig | None:
    """Say where the cloned SANs differ from what vCluster would issue today; with --refresh-sans
    return the inputs to take vCluster's set from (rotate and rotate-ca only)."""
    if request.operation is Operation.RESTORE:
        return None
    config = vcluster.san_config
    if config is None:
        if request.refresh_sans:
            raise UnsupportedError(
                f"vCluster {vcluster.ref}: the inputs vCluster computes SANs from are not known "
                "(standalone control plane)",
                hint="run without --refresh-sans: the SANs of the current certificates are kept",
            )
        return None
    for diff in san_differences(state.data, config):
        what = "; ".join(part for part in (
            f"vCluster would add {', '.join(diff.added)}" if diff.added else "",
            f"would not have {', '.join(diff.dropped)}" if diff.dropped else "",
        ) if part)
        notes.append(
            f"SANs of {diff.secret_key}: {what} "
            + ("(taking vCluster's set: --refresh-sans)" if request.refresh_sans
               else "(kept as they are; --refresh-sans takes vCluster's set)")
        )
    if request.refresh_sans and config.service_cidr is None:
        notes.append("apiserver.crt keeps its SANs: the service CIDR is not known (no serviceCIDR in "
                     f"vc-config-{vcluster.name}, no {contract.SERVICE_CIDR_ANNOTATION} on the Service)")
    return config if request.refresh_sans else None


def _restore_source(
    vcluster: VCluster, request: OperationRequest, backups: BackupPort, *, identity: str,
    current: Mapping[str, bytes],
) -> tuple[str, dict[str, bytes]]:
    if request.restore_data is not None:
        return request.restore_source or "directory", SecretData(request.restore_data)
    records = backups.list_backups(vcluster)
    if request.undo_stage:
        full = staging.rollback_backup(vcluster, current, backups, records, identity=identity)
        return full.name, SecretData(full.data or {})
    chosen = planning.resolve_backup(records, request.restore_backup or "latest", vcluster=vcluster,
                                     identity=identity)
    full = backups.read_backup(vcluster, chosen.name)
    return chosen.name, SecretData(full.data or {})

def ca_change_of(plan: RotationPlan, *, at: datetime) -> CaChange:
    """What the CaChangeHooks are told about a plan that changes the CA."""
    return CaChange(
        vcluster=plan.vcluster,
        operation=str(plan.operation),
        old_ca_fingerprint=plan.old_ca_fingerprint,
        new_ca_fingerprint=plan.new_ca_fingerprint,
        new_data=plan.new_data,
        at=at,
    )
