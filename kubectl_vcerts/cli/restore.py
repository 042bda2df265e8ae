"""`kubectl vcerts restore NAME`: put a backup (or a /data/pki.bak/<ts> directory) back, then renew leaves.

The current state is backed up first (like every operation). A restore that changes the CA restarts
everything together and runs the CA-change hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.follow_up import kubeconfig_follow_up
from kubectl_vcerts.cli.hooks import build_hooks
from kubectl_vcerts.cli.operation import (
    AllowDataLossOption,
    DeleteManualNodesOption,
    FinishInterruptedOption,
    ForceOption,
    KeepBackupsOption,
    ManualSelectorOption,
    NameArgument,
    NoRestartOption,
    NoRollbackOption,
    PlatformContextOption,
    PlatformKubeconfigOption,
    PlatformVciOption,
    RollOutStagedOption,
    SkipPrivateNodesOption,
    TimeoutOption,
    ValidityOption,
    VclusterServerOption,
    operation_request,
    run_operation,
)
from kubectl_vcerts.cli.options import DryRunOption, OutputFormat, OutputOption, YesOption
from kubectl_vcerts.errors import InvalidInputError, UsageError
from kubectl_vcerts.rotation.operation import OperationReport
from kubectl_vcerts.rotation.recovery import Operation


def read_pki_dir(directory: Path) -> dict[str, bytes]:
    """A PKI directory (vCluster's /data/pki layout) as NAME-certs data, via pki.from_files."""
    from kubectl_vcerts.pki import from_files

    if not directory.is_dir():
        raise InvalidInputError(
            f"{directory} is not a directory", hint="pass a copy of /data/pki.bak/<timestamp>"
        )
    files: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            try:
                files[path.relative_to(directory).as_posix()] = path.read_bytes()
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot read {path}: {exc.strerror}", hint="check permissions"
                ) from exc
    if not files:
        raise InvalidInputError(f"{directory} is empty", hint="pass a copy of /data/pki.bak/<timestamp>")
    return from_files(files)


def command(
    ctx: typer.Context,
    name: NameArgument,
    backup: Annotated[
        str | None,
        typer.Option(
            "--backup", help="Backup to restore: its unix-time ID, its Secret name, or 'latest' (default)."
        ),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from-dir",
            help="Restore a PKI directory copied out of /data/pki.bak/<timestamp>.",
            file_okay=False,
        ),
    ] = None,
    no_renew: Annotated[
        bool,
        typer.Option(
            "--no-renew", help="Put the backup back as it is (by default the leaves are renewed right after)."
        ),
    ] = False,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    force: ForceOption = False,
    no_restart: NoRestartOption = False,
    no_rollback: NoRollbackOption = False,
    allow_data_loss: AllowDataLossOption = False,
    roll_out_staged: RollOutStagedOption = False,
    timeout: TimeoutOption = "5m",
    validity: ValidityOption = "365d",
    finish_interrupted: FinishInterruptedOption = False,
    keep_backups: KeepBackupsOption = 10,
    delete_manual_nodes: DeleteManualNodesOption = False,
    manual_selector: ManualSelectorOption = None,
    vcluster_server: VclusterServerOption = None,
    platform_context: PlatformContextOption = None,
    platform_kubeconfig: PlatformKubeconfigOption = None,
    platform_vci: PlatformVciOption = None,
    skip_private_nodes: SkipPrivateNodesOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Put a backup of NAME-certs back (backing up the current state first), then renew the leaves."""
    if backup is not None and from_dir is not None:
        raise UsageError("--backup and --from-dir exclude each other", hint="pass one of them")
    data = read_pki_dir(from_dir) if from_dir is not None else None
    request = operation_request(
        Operation.RESTORE,
        force=force,
        dry_run=dry_run,
        no_restart=no_restart,
        no_rollback=no_rollback,
        allow_data_loss=allow_data_loss,
        roll_out_staged=roll_out_staged,
        timeout=timeout,
        validity=validity,
        finish_interrupted=finish_interrupted,
        keep_backups=keep_backups,
        restore_backup=None if from_dir is not None else (backup or "latest"),
        restore_data=data,
        restore_source=str(from_dir) if from_dir is not None else "",
        renew=not no_renew,
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
        if not report.plan.ca_change:
            return []
        return kubeconfig_follow_up(
            deps, report, kubeconfig_out=None, overwrite=False, update_kubeconfig=False
        )

    run_operation(ctx, name, request, output=output, yes=yes, hooks=hooks, after=after)
