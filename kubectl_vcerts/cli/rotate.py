"""`kubectl vcerts rotate NAME`: renew the leaf certificates (CA kept). Options and wiring shared with
rotate-ca and restore: cli/operation.py; rendering: cli/report.py. Several names, none, -A, -l or
--expiring-within: a fleet run (cli/fleet.py).
"""

from __future__ import annotations

import typer

from kubectl_vcerts.cli.fleet import (
    AllNamespacesOption,
    ExpiringWithinOption,
    KeepGoingOption,
    MaxParallelOption,
    Selection,
    SelectorOption,
    run_fleet,
)
from kubectl_vcerts.cli.operation import (
    AllowDataLossOption,
    FinishInterruptedOption,
    FleetNamesArgument,
    ForceOption,
    KeepBackupsOption,
    NoRestartOption,
    NoRollbackOption,
    RefreshSansOption,
    RollOutStagedOption,
    TimeoutOption,
    ValidityOption,
    operation_request,
    run_operation,
)
from kubectl_vcerts.cli.options import DryRunOption, OutputFormat, OutputOption, YesOption
from kubectl_vcerts.rotation.fleet import DEFAULT_MAX_PARALLEL
from kubectl_vcerts.rotation.recovery import Operation


def command(
    ctx: typer.Context,
    names: FleetNamesArgument = None,
    all_namespaces: AllNamespacesOption = False,
    selector: SelectorOption = None,
    expiring_within: ExpiringWithinOption = None,
    max_parallel: MaxParallelOption = DEFAULT_MAX_PARALLEL,
    keep_going: KeepGoingOption = False,
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
    refresh_sans: RefreshSansOption = False,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Renew the leaf certificates of a vCluster (or of many: names, none, -A, -l, --expiring-within); the
    CA is kept, so existing kubeconfigs keep working."""
    selection = Selection(names=tuple(names or ()), all_namespaces=all_namespaces, selector=selector,
                          expiring_within=expiring_within, max_parallel=max_parallel, keep_going=keep_going)
    request = operation_request(
        Operation.ROTATE,
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
        refresh_sans=refresh_sans,
    )
    if selection.is_fleet:
        run_fleet(ctx, selection, request, output=output, yes=yes)
    else:
        run_operation(ctx, selection.names[0], request, output=output, yes=yes)
