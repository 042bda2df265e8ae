"""Plans and reports of rotate, rotate-ca and restore, as text for people and as the stable JSON/YAML
schema (`report_document`). Pure rendering: no requests, no prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.options import OutputFormat
from kubectl_vcerts.rotation.operation import OperationReport, stops_after_rollback
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.recovery import Operation


def _when(value: datetime | None) -> str:
    return "-" if value is None else timefmt.expiry(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else timefmt.rfc3339(value)


TITLES = {
    Operation.ROTATE: "renew the leaf certificates",
    Operation.ROTATE_CA: "replace the CA",
    Operation.RESTORE: "restore",
}


def _rollback_only_plan_lines(plan: RotationPlan) -> list[str]:
    vc = plan.vcluster
    record = plan.resume
    assert record is not None  # stops_after_rollback(plan)
    lines = [
        f"Plan: finish rolling back the interrupted {record.operation} of vCluster {vc.ref}, then stop "
        f"(the {plan.operation} you asked for is not run)"
    ]
    lines += [f"  - {note}" for note in plan.notes]
    secret = contract.certs_secret_name(vc.name)
    lines.append(f"  backup:  {record.backup} (already written back to {secret})")
    lines.append("  changes: none (no new backup; only the operation record is removed at the end)")
    ca = plan.new_ca_fingerprint or "none"
    lines.append(f"  CA:      {ca} (of the PKI from before the {record.operation})")
    lines.append(f"  restart: all together: {', '.join(plan.restart_pods) or '(pods that come up)'}")
    return lines


def plan_lines(plan: RotationPlan) -> list[str]:
    if stops_after_rollback(plan):
        return _rollback_only_plan_lines(plan)
    vc = plan.vcluster
    title = TITLES[plan.operation] + (f" from {plan.source}" if plan.source else "")
    if plan.stage:
        title = (f"staged CA rotation, rollback of the last phase ({title})" if plan.stage == "rollback"
                 else f"staged CA rotation, phase {plan.stage}")
    lines = [
        f"Plan: {title} of vCluster {vc.ref} (version {vc.version or 'unknown'}, {vc.kind}, "
        f"{vc.replicas} replica(s){', deployed etcd' if vc.etcd_pods else ''})"
    ]
    lines += [f"  - {note}" for note in plan.notes]
    if plan.resume is None:
        lines.append(
            f"  backup:  {plan.backup_name} (immutable Secret in {vc.namespace}, owned as NAME-certs is)"
        )
        lines.append(
            f"  changes: {len(plan.changes)} entr{'y' if len(plan.changes) == 1 else 'ies'} of "
            f"{contract.certs_secret_name(vc.name)}"
        )
        dated = [c for c in plan.changes if c.old_not_after is not None or c.new_not_after is not None]
        width = max([len(c.secret_key) for c in dated] + [10])
        for change in dated:
            lines.append(
                f"    {change.secret_key:<{width}}  {change.action:<9}  {_when(change.old_not_after)}"
                f"  ->  {_when(change.new_not_after)}"
            )
        keys = [c.secret_key for c in plan.changes if c not in dated]
        if keys:
            lines.append(f"    + {len(keys)} private key(s) / other entries: {', '.join(keys)}")
    if plan.stage and plan.stage != "finish":
        lines.append(f"  CA:      first certificate {plan.old_ca_fingerprint or 'none'} -> "
                     f"{plan.new_ca_fingerprint} (staged: existing kubeconfigs keep working)")
    elif plan.ca_change:
        lines.append(
            f"  CA:      {plan.old_ca_fingerprint or 'none'} -> {plan.new_ca_fingerprint} (CHANGES: "
            f"existing kubeconfigs stop working)"
        )
    else:
        lines.append(f"  CA:      kept ({plan.new_ca_fingerprint})")
    if not plan.restart:
        lines.append(
            f"  restart: none (--no-restart); restart yourself: {', '.join(plan.restart_pods) or '-'}"
        )
    elif plan.restart_mode == "rolling":
        order = " -> ".join(p for step in plan.restart_steps if not step.rollout for p in step.pods)
        if order:
            lines.append(f"  restart: one pod at a time, each Ready before the next: {order}")
        for step in (s for s in plan.restart_steps if s.rollout):
            lines.append(
                f"  restart: rolling update of Deployment {vc.name} (pod-template annotation "
                f"{contract.CERT_ROTATION_AT_ANNOTATION}): new pod(s) Ready before {', '.join(step.pods)} "
                "stop"
            )
        if not plan.restart_steps:
            lines.append("  restart: one pod at a time, each Ready before the next: -")
    else:
        lines.append(f"  restart: all together: {', '.join(plan.restart_pods) or '(pods that come up)'}")
    if vc.etcd_pods and not plan.ca_change:
        lines.append("  etcd:    members keep running (etcd loads a renewed key pair at each handshake)")
    lines += [f"  DATA LOSS (--allow-data-loss): {loss}" for loss in plan.data_loss]
    lines += [f"  {line}" for line in plan.hook_lines]
    return lines


def report_document(report: OperationReport, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The stable JSON/YAML schema of rotate, rotate-ca and restore (README: "Output schema")."""
    plan = report.plan
    return {
        "operation": str(plan.operation),
        "stage": plan.stage or None,
        "vcluster": {"name": plan.vcluster.name, "namespace": plan.vcluster.namespace},
        "dryRun": not report.applied,
        "applied": report.applied,
        "resumed": plan.resume is not None,
        "rollbackOnly": stops_after_rollback(plan),
        "source": plan.source or None,
        "backup": report.backup if report.applied else plan.backup_name,
        "prunedBackups": list(report.pruned),
        "changes": [
            {
                "key": c.secret_key,
                "action": c.action,
                "oldNotAfter": _iso(c.old_not_after),
                "newNotAfter": _iso(c.new_not_after),
            }
            for c in plan.changes
        ],
        "ca": {
            "changed": plan.ca_change,
            "oldFingerprint": plan.old_ca_fingerprint,
            "newFingerprint": plan.new_ca_fingerprint,
            "finalFingerprint": report.final_ca_fingerprint,
        },
        "restart": {
            "mode": str(plan.restart_mode),
            "skipped": not plan.restart,
            "steps": [{"group": s.group, "pods": list(s.pods)} for s in plan.restart_steps],
            "restarted": list(report.restarted),
            "pending": list(report.pending_restart),
            "dataLoss": list(plan.data_loss),
        },
        "pods": [{"name": p.name, "uid": p.uid, "status": p.status, "ready": p.ready} for p in report.pods],
        "regenerated": list(report.regenerated),
        "worst": str(report.worst) if report.worst is not None else None,
        "notes": list(plan.notes + report.notes),
        "hooks": list(plan.hook_lines if not report.applied else report.hook_lines),
        "nextSteps": list(extra),
    }


def render_report(
    deps: Deps, report: OperationReport, *, output: OutputFormat, extra: Sequence[str] = ()
) -> None:
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        from kubectl_vcerts.cli.render import emit_document

        emit_document(deps, report_document(report, extra), output)
        return
    plan = report.plan
    if not report.applied:
        for line in [*plan_lines(plan), *extra]:
            deps.out.print(line, markup=False, highlight=False)
        deps.out.print("Dry run: nothing was changed.", markup=False, highlight=False)
        return
    vc = plan.vcluster
    if stops_after_rollback(plan):
        for line in _rollback_only_report_lines(report):
            deps.out.print(line, markup=False, highlight=False)
        return
    done = {
        Operation.ROTATE: "Renewed the leaf certificates",
        Operation.ROTATE_CA: "Replaced the CA",
        Operation.RESTORE: f"Restored {plan.source or 'the backup'}",
    }[plan.operation]
    lines = [f"{done} of vCluster {vc.ref}" + (" (finished an interrupted run)" if plan.resume else "") + "."]
    lines.append(f"  backup of the previous certificates: {report.backup}")
    if report.pruned:
        lines.append(f"  deleted {len(report.pruned)} old backup(s): {', '.join(report.pruned)}")
    if report.pending_restart:
        lines.append("  not restarted (--no-restart): restart these pods for the change to take effect:")
        lines += [f"    kubectl -n {vc.namespace} delete pod {pod}" for pod in report.pending_restart]
        lines.append(
            "  until then do not run vCluster's own `vcluster certs rotate`/`rotate-ca`: it renews from the "
            "running pod's /data/pki, not from the secret, and would write the old certificates back"
        )
    elif report.restarted:
        lines.append(f"  restarted: {', '.join(report.restarted)} (all Running and Ready)")
    if report.regenerated:
        lines.append(f"  vCluster rewrote after the restart: {', '.join(report.regenerated)}")
    if report.final_ca_fingerprint:
        lines.append(f"  CA fingerprint: {report.final_ca_fingerprint}")
    if report.worst is not None:
        lines.append(
            f"  certificates now: {report.worst} (see `kubectl vcerts check {vc.name} -n {vc.namespace}`)"
        )
    lines += [f"  - {note}" for note in report.notes if note not in plan.notes]
    lines += [f"  {line}" for line in report.hook_lines]
    lines += list(extra)
    for line in lines:
        deps.out.print(line, markup=False, highlight=False)


def _rollback_only_report_lines(report: OperationReport) -> list[str]:
    plan = report.plan
    vc = plan.vcluster
    record = plan.resume
    assert record is not None  # stops_after_rollback(plan)
    lines = [
        f"Rolled back the interrupted {record.operation} of vCluster {vc.ref} (started "
        f"{_iso(record.started)}): it runs its previous PKI again, from backup {record.backup}.",
        f"  The {plan.operation} you asked for was NOT run: run the same command again to run it "
        f"(add --dry-run first to see its plan).",
    ]
    if report.restarted:
        lines.append(f"  restarted: {', '.join(report.restarted)} (all Running and Ready)")
    if report.final_ca_fingerprint:
        lines.append(f"  CA fingerprint: {report.final_ca_fingerprint}")
    if report.worst is not None:
        lines.append(
            f"  certificates now: {report.worst} (see `kubectl vcerts check {vc.name} -n {vc.namespace}`)"
        )
    return lines
