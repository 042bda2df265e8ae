"""`kubectl vcerts rotate NAME`: renew the leaf certificates (CA kept). Options and wiring shared with
rotate-ca and restore: cli/operation.py; rendering: cli/report.py.
"""

from __future__ import annotations

import typer

from kubectl_vcerts.cli.operation import (
    AllowDataLossOption,
    FinishInterruptedOption,
    ForceOption,
    KeepBackupsOption,
    NameArgument,
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
from kubectl_vcerts.rotation.recovery import Operation


def command(
    ctx: typer.Context,
    name: NameArgument,
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
    """Renew the leaf certificates of a vCluster; the CA is kept, so existing kubeconfigs keep working."""
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
    run_operation(ctx, name, request, output=output, yes=yes)
