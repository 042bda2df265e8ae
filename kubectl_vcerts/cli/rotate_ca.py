"""`kubectl vcerts rotate-ca NAME`: a new CA (generated, or --ca-cert/--ca-key) and new leaves.

After the change: optionally write a new admin kubeconfig (--kubeconfig-out), name the contexts of the
user's kubeconfig that still trust the old CA (and with --update-kubeconfig fix them, each entry in the
file kubectl reads it from, after backing that file up), and say what else must be done. The user's
kubeconfig is --kubeconfig alone, else every $KUBECONFIG file merged the way kubectl merges them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_vcerts import contract
from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.files import backup_file, write_private_file
from kubectl_vcerts.cli.operation import (
    DeleteManualNodesOption,
    FinishInterruptedOption,
    ForceOption,
    ManualSelectorOption,
    NameArgument,
    NoRestartOption,
    NoRollbackOption,
    PlatformContextOption,
    PlatformKubeconfigOption,
    PlatformVciOption,
    SkipPrivateNodesOption,
    TimeoutOption,
    ValidityOption,
    VclusterServerOption,
    operation_request,
    run_operation,
)
from kubectl_vcerts.cli.options import DryRunOption, OutputFormat, OutputOption, YesOption, parse_duration
from kubectl_vcerts.errors import InvalidInputError, UsageError
from kubectl_vcerts.pki import CaMaterial
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.operation import OperationReport
from kubectl_vcerts.rotation.ports import CaChangeHook
from kubectl_vcerts.rotation.recovery import Operation

if TYPE_CHECKING:
    from kubectl_vcerts.kube.kubeconfig import Kubeconfig
    from kubectl_vcerts.rotation.trust import TrustedContext


def user_kubeconfig(deps: Deps) -> Kubeconfig:
    """The user's kubeconfig files as kubectl reads and merges them (kube/kubeconfig.py): --kubeconfig
    alone, else the existing $KUBECONFIG entries, else ~/.kube/config."""
    from kubectl_vcerts.kube.kubeconfig import load_user_kubeconfig

    return load_user_kubeconfig(deps.target.kubeconfig)


def _documents(config: Kubeconfig) -> list[dict[str, Any]]:
    return [dict(doc) for doc in config.documents]


def _contexts_where(stale: Sequence[TrustedContext], paths: list[Path]) -> str:
    """`name` for one file, `name (in FILE)` when several files are merged."""
    if len(paths) == 1:
        return ", ".join(c.name for c in stale)
    return ", ".join(f"{c.name} (in {paths[c.context_file]})" for c in stale)


def _files_label(paths: list[Path]) -> str:
    return str(paths[0]) if len(paths) == 1 else "your kubeconfig (" + os.pathsep.join(map(str, paths)) + ")"


def kubeconfig_follow_up(
    deps: Deps,
    report: OperationReport,
    *,
    kubeconfig_out: Path | None,
    overwrite: bool,
    update_kubeconfig: bool,
) -> list[str]:
    """Write --kubeconfig-out, find (and optionally fix) stale contexts; return lines for the user.

    The old CA and admin certificate come from the backup made before the write (also right when the
    run finished an interrupted one)."""
    from kubectl_vcerts.kube.backups import read_backup
    from kubectl_vcerts.rotation import trust

    plan = report.plan
    vc = plan.vcluster
    new = plan.new_data
    if not report.applied:  # --dry-run: name what would be affected, change nothing
        return _dry_run_follow_up(
            deps, report, kubeconfig_out=kubeconfig_out, update_kubeconfig=update_kubeconfig
        )
    lines: list[str] = ["", "What else to do after a CA change:"]
    if kubeconfig_out is not None:
        server = _vcluster_server(deps, vc)
        write_private_file(kubeconfig_out, trust.admin_kubeconfig(new, server=server), overwrite=overwrite)
        lines.append(
            f"  - wrote a new admin kubeconfig to {kubeconfig_out} "
            f"(mode 0600, server {server or 'from admin.conf'})"
        )
    config = user_kubeconfig(deps)
    paths = list(config.files)
    old_data = None
    if report.backup:
        old_data = read_backup(deps.session(), namespace=vc.namespace, name=report.backup).data
    if old_data and paths:
        changes = trust.kubeconfig_changes(_documents(config), old_data, new, update=update_kubeconfig)
        stale = changes.stale
        if changes.updated:
            lines.append(
                f"  - updated {len(stale)} context(s) of {_files_label(paths)}: "
                + ", ".join(
                    c.name + (" (CA + admin credentials)" if c.uses_old_admin_cert else " (CA)")
                    for c in stale
                )
            )
            lines += _write_kubeconfigs(deps, paths, changes.updated, stale)
        elif stale:
            lines.append(
                f"  - these contexts of {_files_label(paths)} still trust the old CA: "
                f"{_contexts_where(stale, paths)} (fix with --update-kubeconfig, or reconnect)"
            )
    lines.append(
        f"  - reconnect: `vcluster connect {vc.name} -n {vc.namespace}` (kubeconfigs from before "
        f"the change fail with a certificate error)"
    )
    if vc.private_nodes:
        lines.append(
            "  - private nodes: re-join every node with a token from `vcluster token create` and "
            "`--force-join`; auto nodes: delete their NodeClaims on the Platform"
        )
    lines.append(
        "  - if vCluster Platform manages it: recreate the kubeconfigs and access keys it issued from the "
        "old CA"
    )
    lines.append(
        f"  - service-account tokens keep working (sa.key is kept); "
        f"{contract.kubeconfig_secret_name(vc.name)} is rewritten by vCluster on start"
    )
    return lines


def _write_kubeconfigs(
    deps: Deps, paths: list[Path], updated: Mapping[int, dict[str, Any]], stale: Sequence[TrustedContext]
) -> list[str]:
    """Back up, then write, each file that defines a stale entry (and only those); one line per file.
    Every backup is made before the first write, so a failed backup leaves all files as they were."""
    from kubectl_vcerts import kubeyaml

    lines: list[str] = []
    now = int(deps.now().timestamp())
    saved = {index: backup_file(paths[index], now) for index in sorted(updated)}
    for index, doc in sorted(updated.items()):
        path = paths[index]
        text = kubeyaml.dump(doc)
        write_private_file(path, text, overwrite=True, keep_mode=True)
        clusters = sorted({c.cluster for c in stale if c.cluster_file == index})
        users = sorted({c.user for c in stale if c.uses_old_admin_cert and c.user_file == index})
        what = [f"cluster {name} (CA)" for name in clusters] + [
            f"user {name} (admin credentials)" for name in users
        ]
        lines.append(f"    {path} (backup {saved[index]}): {', '.join(what)}")
    return lines


def _dry_run_follow_up(
    deps: Deps, report: OperationReport, *, kubeconfig_out: Path | None, update_kubeconfig: bool
) -> list[str]:
    from kubectl_vcerts.kube.backups import read_certs
    from kubectl_vcerts.rotation import trust

    vc = report.plan.vcluster
    lines: list[str] = []
    if kubeconfig_out is not None:
        lines.append(f"  would write a new admin kubeconfig to {kubeconfig_out} (mode 0600)")
    config = user_kubeconfig(deps)
    paths = list(config.files)
    if paths:
        current = read_certs(deps.session(), namespace=vc.namespace, vcluster=vc.name).data
        stale = trust.kubeconfig_changes(_documents(config), current, current, update=False).stale
        if stale:
            verb = "would update" if update_kubeconfig else "would stop working"
            lines.append(
                f"  contexts of {_files_label(paths)} that trust the current CA ({verb}): "
                + _contexts_where(stale, paths)
            )
    return lines


def _vcluster_server(deps: Deps, vc: VCluster) -> str | None:
    from kubectl_vcerts.kube.backups import read_secret_value
    from kubectl_vcerts.rotation import trust

    config = read_secret_value(
        deps.session(), namespace=vc.namespace, name=contract.kubeconfig_secret_name(vc.name), key="config"
    )
    return trust.server_of(config) if config else None


def build_hooks(
    *,
    delete_manual_nodes: bool,
    manual_selector: str | None,
    vcluster_server: str | None,
    platform_context: str | None,
    platform_kubeconfig: str | None,
    platform_vci: str | None,
    skip_private_nodes: bool = False,
) -> Callable[[Deps, VCluster], list[CaChangeHook]]:
    """A factory the workflow runner calls with (deps, vcluster) once the vCluster is found."""

    def factory(deps: Deps, vcluster: VCluster) -> list[CaChangeHook]:
        from kubectl_vcerts.cli.hooks import build_ca_change_hooks

        return build_ca_change_hooks(
            deps,
            vcluster,
            delete_manual_nodes=delete_manual_nodes,
            manual_selector=manual_selector,
            vcluster_server=vcluster_server,
            platform_context=platform_context,
            platform_kubeconfig=platform_kubeconfig,
            platform_vci=platform_vci,
            skip_private_nodes=skip_private_nodes,
        )

    return factory


def command(
    ctx: typer.Context,
    name: NameArgument,
    ca_cert: Annotated[
        Path | None, typer.Option("--ca-cert", help="Bring your own CA: certificate (PEM).", dir_okay=False)
    ] = None,
    ca_key: Annotated[
        Path | None, typer.Option("--ca-key", help="Bring your own CA: private key (PEM).", dir_okay=False)
    ] = None,
    ca_validity: Annotated[str, typer.Option("--ca-validity", help="Validity of a generated CA.")] = "3650d",
    kubeconfig_out: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig-out",
            help="Write a new admin kubeconfig (mode 0600) for the new CA.",
            dir_okay=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Let --kubeconfig-out replace an existing file.")
    ] = False,
    update_kubeconfig: Annotated[
        bool,
        typer.Option(
            "--update-kubeconfig",
            help="Replace the old CA (and old admin credentials) in your kubeconfig (backed up first).",
        ),
    ] = False,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    force: ForceOption = False,
    no_restart: NoRestartOption = False,
    no_rollback: NoRollbackOption = False,
    timeout: TimeoutOption = "5m",
    validity: ValidityOption = "365d",
    finish_interrupted: FinishInterruptedOption = False,
    delete_manual_nodes: DeleteManualNodesOption = False,
    manual_selector: ManualSelectorOption = None,
    vcluster_server: VclusterServerOption = None,
    platform_context: PlatformContextOption = None,
    platform_kubeconfig: PlatformKubeconfigOption = None,
    platform_vci: PlatformVciOption = None,
    skip_private_nodes: SkipPrivateNodesOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Replace the CA of a vCluster (and every leaf). Existing kubeconfigs stop working."""
    byo = load_byo_ca(ca_cert, ca_key, now=get_deps(ctx).now())
    if kubeconfig_out is not None and kubeconfig_out.exists() and not overwrite and not dry_run:
        raise UsageError(
            f"{kubeconfig_out} exists", hint="pass --overwrite to replace it, or choose another file"
        )
    request = operation_request(
        Operation.ROTATE_CA,
        force=force,
        dry_run=dry_run,
        no_restart=no_restart,
        no_rollback=no_rollback,
        timeout=timeout,
        validity=validity,
        finish_interrupted=finish_interrupted,
        ca_validity=parse_duration(ca_validity, flag="--ca-validity"),
        byo_ca=byo,
    )
    hooks = build_hooks(
        delete_manual_nodes=delete_manual_nodes,
        manual_selector=manual_selector,
        vcluster_server=vcluster_server,
        platform_context=platform_context,
        platform_kubeconfig=platform_kubeconfig,
        platform_vci=platform_vci,
        skip_private_nodes=skip_private_nodes,
    )

    def after(deps: Deps, report: OperationReport) -> list[str]:
        return kubeconfig_follow_up(
            deps,
            report,
            kubeconfig_out=kubeconfig_out,
            overwrite=overwrite,
            update_kubeconfig=update_kubeconfig,
        )

    run_operation(ctx, name, request, output=output, yes=yes, hooks=hooks, after=after)


def load_byo_ca(cert: Path | None, key: Path | None, *, now: datetime) -> CaMaterial | None:
    """Validate --ca-cert/--ca-key before anything is read from the cluster."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--ca-cert and --ca-key go together", hint="pass both files")
    from kubectl_vcerts.pki import load_ca_material

    try:
        cert_pem, key_pem = cert.read_bytes(), key.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {exc.filename}: {exc.strerror}", hint="check the path") from exc
    return load_ca_material(cert_pem, key_pem, now=now)
