"""The options and wiring every mutating command shares (rotate, rotate-ca, restore; backups and the
private-node commands reuse a few): option types, parsing them into an `OperationRequest`, finding the
vCluster, building the workflow (ports, clock, progress, hooks) behind one confirmation, and the exit
code of a run that only finished an interrupted rollback (ROLLED_BACK, 19: see `run_operation`).
Plans and reports are rendered by cli/report.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Annotated, Any

import typer

from kubectl_vcerts import contract
from kubectl_vcerts.cli.complete import complete_vcluster_name
from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.options import OutputFormat, parse_duration
from kubectl_vcerts.cli.pause import make_progress
from kubectl_vcerts.cli.report import plan_lines, render_report
from kubectl_vcerts.errors import ExitCode, UsageError
from kubectl_vcerts.pki.renew import MIN_VALIDITY, RENEWAL_THRESHOLD
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.operation import OperationReport, OperationRequest, stops_after_rollback
from kubectl_vcerts.rotation.plan import RotationPlan, leaf_validity_ok
from kubectl_vcerts.rotation.ports import CaChangeHook
from kubectl_vcerts.rotation.recovery import Operation

LOCK_SECONDS_ENV = "VCERTS_LOCK_SECONDS"  # lease duration of our lock (default 60 s)


NameArgument = Annotated[
    str,
    typer.Argument(
        help="Name of the vCluster (its Helm release).",
        show_default=False,
        autocompletion=complete_vcluster_name,
    ),
]


FleetNamesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="vCluster name(s) (Helm releases); none: every vCluster in the namespace (with -A: in every "
        "namespace). More than one, none, -A, -l or --expiring-within: a fleet run.",
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


AllowDataLossOption = Annotated[
    bool,
    typer.Option(
        "--allow-data-loss",
        help="Restart even where that deletes the virtual cluster's data (state on an emptyDir).",
    ),
]


RollOutStagedOption = Annotated[
    bool,
    typer.Option(
        "--roll-out-staged",
        help="Restart even where that rolls out a pod-template change staged under updateStrategy OnDelete.",
    ),
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


RefreshSansOption = Annotated[
    bool,
    typer.Option(
        "--refresh-sans",
        help="Give the leaves the SANs vCluster would compute now (vc-config, service CIDR).",
    ),
]
KeepBackupsOption = Annotated[
    int,
    typer.Option(
        "--keep-backups",
        min=0,
        help="After success, delete this vCluster's backups beyond the newest N (0 keeps all).",
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
    typer.Option("--vcluster-server",
                 help="API server URL of the virtual cluster: for private nodes, and the server "
                 "--kubeconfig-out writes (default: the one in vc-NAME)."),
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
            f"--validity {text} is less than {MIN_VALIDITY.days} days",
            hint=f"vCluster >= 0.33 replaces leaves with {RENEWAL_THRESHOLD.days} days or less left at "
            f"start-up, and ours stay {MIN_VALIDITY.days - RENEWAL_THRESHOLD.days} days clear of that; "
            "use e.g. 365d",
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
    keep_backups: int = 10,
    allow_data_loss: bool = False,
    roll_out_staged: bool = False,
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
        keep_backups=keep_backups,
        allow_data_loss=allow_data_loss,
        roll_out_staged=roll_out_staged,
        **extra,
    )


def find(deps: Deps, name: str) -> VCluster:
    from kubectl_vcerts.kube.discovery import KubeReader
    from kubectl_vcerts.rotation.discovery import find_vcluster

    session = deps.session()
    return find_vcluster(KubeReader(session), name=name, namespace=session.namespace, for_rotation=True)


def run_operation(
    ctx: typer.Context,
    name: str,
    request: OperationRequest,
    *,
    output: OutputFormat,
    yes: bool,
    hooks: Callable[[Deps, VCluster], Sequence[CaChangeHook]] | None = None,
    after: Callable[[Deps, OperationReport], list[str]] | None = None,
    preview: Callable[[Deps, RotationPlan], list[str]] | None = None,
) -> OperationReport:
    """Find the vCluster, run the workflow with confirmation, render the result; return the report.
    `preview` adds lines to the plan shown before the question (what the change means locally)."""
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
        for line in [*plan_lines(plan), *(preview(deps, plan) if preview else [])]:
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
