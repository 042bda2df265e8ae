"""`kubectl vcerts rotate NAME`: renew the leaf certificates (CA kept), plus what rotate-ca and restore share.

Shared here: the options every mutating command has, building the workflow (ports, clock, progress,
hooks), the confirmation, and rendering plans and reports as text or JSON/YAML (a stable schema,
`report_document`).

Debug hook (documented in the README): with VCERTS_TEST_PAUSE_AFTER=<step> the progress callback
blocks forever after the workflow reports that step done (lock, backup, write, restart, wait, verify,
release; rollback: the backup was written back during a rollback) so that a test can SIGKILL the
process at that exact point. It lives in the progress renderer, not in the workflow.

Exit codes beyond the errors: a run that only finished an interrupted rollback (and so did not run the
requested operation) renders its report and exits ROLLED_BACK (19), see `run_operation`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.cli.complete import complete_vcluster_name
from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.options import (
    DryRunOption,
    OutputFormat,
    OutputOption,
    YesOption,
    parse_duration,
)
from kubectl_vcerts.errors import ExitCode, UsageError
from kubectl_vcerts.pki.renew import RENEWAL_THRESHOLD
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.plan import RotationPlan, leaf_validity_ok
from kubectl_vcerts.rotation.ports import CaChangeHook, ProgressEvent
from kubectl_vcerts.rotation.recovery import Operation
from kubectl_vcerts.rotation.workflow import OperationReport, OperationRequest, stops_after_rollback

PAUSE_ENV = "VCERTS_TEST_PAUSE_AFTER"
LOCK_SECONDS_ENV = "VCERTS_LOCK_SECONDS"  # lease duration of our lock (default 60 s)

NameArgument = Annotated[
    str,
    typer.Argument(
        help="Name of the vCluster (its Helm release).",
        show_default=False,
        autocompletion=complete_vcluster_name,
    ),
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Proceed although the control plane is not Running (e.g. crash-looping on expired certs).",
    ),
]
NoRestartOption = Annotated[
    bool,
    typer.Option("--no-restart", help="Write the new certificates and stop; print which pods to restart."),
]
NoRollbackOption = Annotated[
    bool,
    typer.Option(
        "--no-rollback", help="Keep the new certificates if the control plane does not come back in time."
    ),
]
TimeoutOption = Annotated[
    str,
    typer.Option(
        "--timeout", help="How long to wait for the restarted pods to be Running and Ready (e.g. 5m, 90s)."
    ),
]
ValidityOption = Annotated[
    str,
    typer.Option(
        "--validity",
        help="Validity of the new leaf certificates (more than 90d: vCluster renews shorter ones).",
    ),
]
FinishInterruptedOption = Annotated[
    bool,
    typer.Option(
        "--finish-interrupted",
        help="First undo what an interrupted `vcluster certs rotate` left (0 replicas, loft.sh/restoring).",
    ),
]

# CA-change hook options (rotate-ca, restore): passed through to cli.hooks.build_ca_change_hooks.
DeleteManualNodesOption = Annotated[
    bool,
    typer.Option(
        "--delete-manual-nodes", help="Private nodes: delete manually joined nodes before the CA change."
    ),
]
ManualSelectorOption = Annotated[
    str | None,
    typer.Option("--manual-selector", help="Private nodes: label selector of the manually joined nodes."),
]
VclusterServerOption = Annotated[
    str | None,
    typer.Option("--vcluster-server", help="Private nodes: API server URL of the virtual cluster."),
]
PlatformContextOption = Annotated[
    str | None,
    typer.Option("--platform-context", help="vCluster Platform: kubeconfig context of the platform cluster."),
]
PlatformKubeconfigOption = Annotated[
    str | None,
    typer.Option("--platform-kubeconfig", help="vCluster Platform: kubeconfig file of the platform cluster."),
]
PlatformVciOption = Annotated[
    str | None,
    typer.Option("--platform-vci", help="vCluster Platform: VirtualClusterInstance as NAMESPACE/NAME."),
]
SkipPrivateNodesOption = Annotated[
    bool,
    typer.Option(
        "--skip-private-nodes",
        help="Private nodes: leave them alone (e.g. the virtual API cannot be reached because its CA "
        "expired) and print how to re-join them by hand.",
    ),
]


# ------------------------------------------------------------------------------------------ wiring
def check_can_confirm(deps: Deps, *, yes: bool, dry_run: bool) -> None:
    """Refuse before touching anything when a confirmation is needed but cannot be asked."""
    if not yes and not dry_run and not deps.interactive:
        raise UsageError(
            "refusing to change the cluster without --yes when not on a terminal",
            hint="pass --yes to confirm (or --dry-run to see the plan)",
        )


def parse_timeout(text: str) -> timedelta:
    value = parse_duration(text, flag="--timeout")
    if value <= timedelta(0):
        raise UsageError("--timeout must be positive", hint="e.g. --timeout 5m")
    return value


def parse_validity(text: str) -> timedelta:
    value = parse_duration(text, flag="--validity")
    if not leaf_validity_ok(value):
        raise UsageError(
            f"--validity {text} is not more than {RENEWAL_THRESHOLD.days} days",
            hint=f"vCluster >= 0.33 replaces leaves with {RENEWAL_THRESHOLD.days} days or less left at "
            "start-up; use e.g. 365d",
        )
    return value


def lock_seconds() -> int:
    text = os.environ.get(LOCK_SECONDS_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else 60


def operation_request(
    operation: Operation,
    *,
    force: bool,
    dry_run: bool,
    no_restart: bool,
    no_rollback: bool,
    timeout: str,
    validity: str,
    finish_interrupted: bool,
    **extra: Any,
) -> OperationRequest:
    """The request every mutating command builds from its shared options (plus command-specific fields)."""
    from kubectl_vcerts.rotation.lock import holder_identity

    return OperationRequest(
        operation=operation,
        holder=holder_identity(str(operation)),
        force=force,
        dry_run=dry_run,
        restart=not no_restart,
        rollback=not no_rollback,
        timeout=parse_timeout(timeout),
        leaf_validity=parse_validity(validity),
        finish_interrupted=finish_interrupted,
        lock_seconds=lock_seconds(),
        **extra,
    )


def find(deps: Deps, name: str) -> VCluster:
    from kubectl_vcerts.kube.discovery import KubeReader
    from kubectl_vcerts.rotation.discovery import find_vcluster

    session = deps.session()
    return find_vcluster(KubeReader(session), name=name, namespace=session.namespace)


def make_progress(deps: Deps) -> Callable[[ProgressEvent], None]:
    """The shared progress display (cli.render.progress) plus the documented crash-test pause."""
    from kubectl_vcerts.cli.render import progress as shared_progress

    show = shared_progress(deps)
    pause_after = os.environ.get(PAUSE_ENV, "")

    def progress(event: ProgressEvent) -> None:
        show(event)
        if pause_after and event.done and event.step == pause_after:
            print(f"kubectl vcerts: paused after {event.step} ({PAUSE_ENV})", file=sys.stderr, flush=True)
            while True:  # until killed: the crash tests SIGKILL us here
                time.sleep(3600)

    return progress


def run_operation(
    ctx: typer.Context,
    name: str,
    request: OperationRequest,
    *,
    output: OutputFormat,
    yes: bool,
    hooks: Callable[[Deps, VCluster], Sequence[CaChangeHook]] | None = None,
    after: Callable[[Deps, OperationReport], list[str]] | None = None,
) -> OperationReport:
    """Find the vCluster, run the workflow with confirmation, render the result; return the report."""
    from kubectl_vcerts.kube.rotation import KubeRotationPorts
    from kubectl_vcerts.rotation.clock import SystemClock
    from kubectl_vcerts.rotation.lock import local_holder_dead
    from kubectl_vcerts.rotation.workflow import Ports, Workflow

    deps = get_deps(ctx)
    check_can_confirm(deps, yes=yes, dry_run=request.dry_run)
    vcluster = find(deps, name)
    if (
        vcluster.restoring
        and not request.finish_interrupted
        and not request.dry_run
        and not yes
        and deps.interactive
    ):
        replicas = vcluster.annotations.get(contract.PAUSED_REPLICAS_ANNOTATION, "?")
        deps.err.print(
            f"vCluster {vcluster.ref} was left at 0 replicas by an interrupted "
            f"`vcluster certs rotate` (paused replicas: {replicas}).",
            highlight=False,
        )
        if _ask(deps, "Scale it back and remove the pause annotations first?"):
            request = _with(request, finish_interrupted=True)
    session = deps.session()
    ports = KubeRotationPorts(session, refresh=lambda vc: find(deps, vc.name))
    workflow = Workflow(
        Ports(ports, ports, ports, ports, ports),
        SystemClock(deps.now),
        progress=make_progress(deps),
        hooks=hooks(deps, vcluster) if hooks else (),
        holder_dead=local_holder_dead,
    )

    def confirm(plan: RotationPlan) -> bool:
        if yes:
            return True
        for line in plan_lines(plan):
            deps.err.print(line, highlight=False, markup=False)
        return _ask(deps, "Proceed?")

    report = workflow.run(vcluster, request, confirm=confirm)
    rollback_only = stops_after_rollback(report.plan)
    # after a rollback-only run the requested operation did not happen: no kubeconfig follow-up
    extra = after(deps, report) if after is not None and not rollback_only else []
    render_report(deps, report, output=output, extra=extra)
    if report.applied and rollback_only:
        # Not 0: what was asked for did not happen. ROLLED_BACK because that is exactly the outcome —
        # the interrupted operation was rolled back and the previous PKI is in place — the same code a
        # run that rolls back by itself ends with, so scripts need one case for "PKI unchanged, retry".
        raise typer.Exit(int(ExitCode.ROLLED_BACK))
    return report


def _with(request: OperationRequest, **changes: Any) -> OperationRequest:
    from dataclasses import replace

    return replace(request, **changes)


def _ask(deps: Deps, question: str) -> bool:
    from kubectl_vcerts.cli.render import confirm as ask

    return ask(deps, question, yes=False)


# ---------------------------------------------------------------------------------------- rendering
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
    lines = [
        f"Plan: {title} of vCluster {vc.ref} (version {vc.version or 'unknown'}, {vc.kind}, "
        f"{vc.replicas} replica(s){', deployed etcd' if vc.etcd_pods else ''})"
    ]
    lines += [f"  - {note}" for note in plan.notes]
    if plan.resume is None:
        lines.append(f"  backup:  {plan.backup_name} (immutable Secret in {vc.namespace}; never deleted)")
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
    if plan.ca_change:
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
        order = " -> ".join(p for step in plan.restart_steps for p in step.pods)
        lines.append(f"  restart: one pod at a time, each Ready before the next: {order or '-'}")
    else:
        lines.append(f"  restart: all together: {', '.join(plan.restart_pods) or '(pods that come up)'}")
    lines += [f"  {line}" for line in plan.hook_lines]
    return lines


def report_document(report: OperationReport, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The stable JSON/YAML schema of rotate, rotate-ca and restore (README: "Output schema")."""
    plan = report.plan
    return {
        "operation": str(plan.operation),
        "vcluster": {"name": plan.vcluster.name, "namespace": plan.vcluster.namespace},
        "dryRun": not report.applied,
        "applied": report.applied,
        "resumed": plan.resume is not None,
        "rollbackOnly": stops_after_rollback(plan),
        "source": plan.source or None,
        "backup": report.backup if report.applied else plan.backup_name,
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
    if report.pending_restart:
        lines.append("  not restarted (--no-restart): restart these pods for the change to take effect:")
        lines += [f"    kubectl -n {vc.namespace} delete pod {pod}" for pod in report.pending_restart]
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


# ---------------------------------------------------------------------------------------- command
def command(
    ctx: typer.Context,
    name: NameArgument,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    force: ForceOption = False,
    no_restart: NoRestartOption = False,
    no_rollback: NoRollbackOption = False,
    timeout: TimeoutOption = "5m",
    validity: ValidityOption = "365d",
    finish_interrupted: FinishInterruptedOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Renew the leaf certificates of a vCluster; the CA is kept, so existing kubeconfigs keep working."""
    request = operation_request(
        Operation.ROTATE,
        force=force,
        dry_run=dry_run,
        no_restart=no_restart,
        no_rollback=no_rollback,
        timeout=timeout,
        validity=validity,
        finish_interrupted=finish_interrupted,
    )
    run_operation(ctx, name, request, output=output, yes=yes)
