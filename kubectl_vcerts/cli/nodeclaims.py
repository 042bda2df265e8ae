"""`kubectl vcerts nodeclaims list|recycle`: the Platform's NodeClaims, and a one-shot recycle.

`recycle` runs the very engine the platform hook runs (`rotation.recycle`), to completion: record the
claims on the VirtualClusterInstance, delete them, wait, recreate what the Platform did not, mark the
instance. An interrupted run (or one the hook started) is resumed from the record.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
import yaml

from kubectl_vcerts import contract
from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.options import DryRunOption, OutputFormat, OutputOption, YesOption, parse_duration
from kubectl_vcerts.errors import AbortedError, UsageError
from kubectl_vcerts.rotation.clock import SystemClock
from kubectl_vcerts.rotation.ports import ProgressEvent
from kubectl_vcerts.rotation.recycle import RecycleReport, Settings, recycle_pass, run_recycle
from kubectl_vcerts.rotation.recycle_record import Claim, RecreatePolicy, pending_marker

app = typer.Typer(help="NodeClaims of vCluster Platform instances (run against the Platform cluster).",
                  no_args_is_help=True)

PlatformContextOption = Annotated[
    str | None, typer.Option("--platform-context", help="kubeconfig context of the Platform cluster.")]
PlatformKubeconfigOption = Annotated[
    str | None, typer.Option("--platform-kubeconfig", help="kubeconfig file of the Platform cluster.")]
InstanceArgument = Annotated[
    str, typer.Argument(help="VirtualClusterInstance as NAMESPACE/NAME (or NAME in the context's namespace).",
                        show_default=False)]


def _gateway(deps: Deps, context: str | None, kubeconfig: str | None) -> Any:
    from kubectl_vcerts.kube.client import KubeTarget, connect
    from kubectl_vcerts.kube.platform import PlatformGateway

    target = KubeTarget(kubeconfig=kubeconfig or deps.target.kubeconfig,
                        context=context if (context or kubeconfig) else deps.target.context,
                        request_timeout=deps.target.request_timeout)
    session = (deps.connect or connect)(target)
    return PlatformGateway(session, identity=f"{contract.TOOL_NAME} nodeclaims")


def _split(ref: str, default_namespace: str) -> tuple[str, str]:
    namespace, sep, name = ref.partition("/")
    if not sep:
        return default_namespace, ref
    if not namespace or not name or "/" in name:
        raise UsageError(f"{ref!r} is not NAMESPACE/NAME", hint="e.g. p-default/my-vcluster")
    return namespace, name


def claim_row(claim: Claim) -> dict[str, Any]:
    return {"namespace": claim.namespace, "name": claim.name, "status": claim.phase,
            "vcluster": claim.vcluster or "", "nodeType": str(claim.spec.get("typeRef") or ""),
            "deleting": claim.deleting,
            "recreatedFrom": claim.annotations.get(contract.RECREATED_FROM_ANNOTATION)}


def _emit(deps: Deps, output: OutputFormat, doc: Any) -> None:
    if output is OutputFormat.JSON:
        deps.out.print_json(json.dumps(doc))
    else:
        deps.out.print(yaml.safe_dump(doc, sort_keys=False), end="", markup=False, highlight=False)


@app.command("list")
def list_claims(
    ctx: typer.Context,
    instance: Annotated[str | None, typer.Argument(
        help="Only the claims of this VirtualClusterInstance (NAMESPACE/NAME).", show_default=False)] = None,
    platform_context: PlatformContextOption = None,
    platform_kubeconfig: PlatformKubeconfigOption = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List NodeClaims (all namespaces, or those of one instance)."""
    deps = get_deps(ctx)
    gateway = _gateway(deps, platform_context, platform_kubeconfig)
    if instance:
        namespace, name = _split(instance, gateway.session.namespace)
        claims = gateway.list_claims(namespace, name)
    else:
        claims = gateway.list_all_claims()
    rows = [claim_row(c) for c in sorted(claims, key=lambda c: (c.namespace, c.name))]
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        _emit(deps, output, {"nodeclaims": rows})
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAMESPACE", "NAME", "STATUS", "VCLUSTER", "NODETYPE"):
        table.add_column(column)
    for row in rows:
        status = "Terminating" if row["deleting"] else row["status"]
        table.add_row(row["namespace"], row["name"], status, row["vcluster"], row["nodeType"])
    deps.out.print(table)


@app.command("recycle")
def recycle(
    ctx: typer.Context,
    instance: InstanceArgument,
    recreate: Annotated[RecreatePolicy, typer.Option(
        "--recreate", case_sensitive=False,
        help="missing: recreate after the grace period what the Platform did not; always: at once; "
             "never: leave it to the Platform.")] = RecreatePolicy.MISSING,
    grace: Annotated[str, typer.Option("--grace", help="Time the Platform gets to recreate claims.")] = "5m",
    timeout: Annotated[str, typer.Option("--timeout", help="Give up waiting after this long.")] = "30m",
    platform_context: PlatformContextOption = None,
    platform_kubeconfig: PlatformKubeconfigOption = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Delete and recreate the NodeClaims of one instance, as the platform hook does, and mark it."""
    deps = get_deps(ctx)
    settings = Settings(policy=recreate, grace=parse_duration(grace, flag="--grace"), poll=1.0)
    limit = parse_duration(timeout, flag="--timeout")
    gateway = _gateway(deps, platform_context, platform_kubeconfig)
    namespace, name = _split(instance, gateway.session.namespace)
    marker = pending_marker(gateway.read_instance(namespace, name))
    plan = recycle_pass(gateway, namespace, name, marker=marker, settings=settings, now=deps.now(),
                        dry_run=True)
    if dry_run:
        if output in (OutputFormat.JSON, OutputFormat.YAML):
            _emit(deps, output, {"instance": plan.instance, "dryRun": True, "plan": list(plan.plan)})
        else:
            for line in plan.plan:
                deps.out.print(f"- {line}", markup=False, highlight=False)
        return
    if not yes:
        if not deps.interactive:
            raise UsageError("recycle deletes NodeClaims; confirm with --yes when not on a terminal",
                             hint="look at the plan with --dry-run first")
        for line in plan.plan:
            deps.err.print(f"- {line}", markup=False, highlight=False)
        if not typer.confirm(f"Recycle the NodeClaims of {namespace}/{name}?", err=True):
            raise AbortedError("aborted; nothing was changed")

    def progress(event: ProgressEvent) -> None:
        if deps.interactive or deps.verbose:
            deps.err.print(f"{event.step}: {event.message}", markup=False, highlight=False)

    report: RecycleReport = run_recycle(gateway, namespace, name, marker=marker, settings=settings,
                                        clock=SystemClock(now=deps.now), timeout=limit, progress=progress)
    doc = {"instance": report.instance, "marker": report.marker, "deleted": list(report.deleted),
           "recreated": list(report.recreated)}
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        _emit(deps, output, doc)
        return
    marked = f"; {contract.NODECLAIMS_RECYCLED_ANNOTATION}={report.marker}" if report.marker else ""
    deps.out.print(f"recycled {report.instance}: deleted {len(report.deleted)}, recreated "
                   f"{len(report.recreated)}{marked}", markup=False, highlight=False)
