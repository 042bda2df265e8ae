"""`kubectl vcerts rotate-ca NAME`: a new CA (generated, or --ca-cert/--ca-key) and new leaves.

After the change: optionally write a new admin kubeconfig (--kubeconfig-out), name the contexts of the
user's kubeconfig that still trust the old CA (and with --update-kubeconfig fix them, each entry in the
file kubectl reads it from, after backing that file up), and say what else must be done. The user's
kubeconfig is --kubeconfig alone, else every $KUBECONFIG file merged the way kubectl merges them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.fleet import (
    AllNamespacesOption,
    ExpiringWithinOption,
    KeepGoingOption,
    MaxParallelOption,
    Selection,
    SelectorOption,
    refuse_single_only,
    run_fleet,
)
from kubectl_vcerts.cli.follow_up import finish_preview, kubeconfig_follow_up
from kubectl_vcerts.cli.hooks import build_hooks
from kubectl_vcerts.cli.operation import (
    AllowDataLossOption,
    DeleteManualNodesOption,
    FinishInterruptedOption,
    FleetNamesArgument,
    ForceOption,
    KeepBackupsOption,
    ManualSelectorOption,
    NoRestartOption,
    NoRollbackOption,
    PlatformContextOption,
    PlatformKubeconfigOption,
    PlatformVciOption,
    RefreshSansOption,
    RollOutStagedOption,
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
from kubectl_vcerts.pki.stage_state import Stage
from kubectl_vcerts.rotation.fleet import DEFAULT_MAX_PARALLEL
from kubectl_vcerts.rotation.operation import OperationReport
from kubectl_vcerts.rotation.recovery import Operation


def command(
    ctx: typer.Context,
    names: FleetNamesArgument = None,
    all_namespaces: AllNamespacesOption = False,
    selector: SelectorOption = None,
    expiring_within: ExpiringWithinOption = None,
    max_parallel: MaxParallelOption = DEFAULT_MAX_PARALLEL,
    keep_going: KeepGoingOption = False,
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
    allow_data_loss: AllowDataLossOption = False,
    roll_out_staged: RollOutStagedOption = False,
    timeout: TimeoutOption = "5m",
    validity: ValidityOption = "365d",
    finish_interrupted: FinishInterruptedOption = False,
    keep_backups: KeepBackupsOption = 10,
    refresh_sans: RefreshSansOption = False,
    delete_manual_nodes: DeleteManualNodesOption = False,
    manual_selector: ManualSelectorOption = None,
    vcluster_server: VclusterServerOption = None,
    platform_context: PlatformContextOption = None,
    platform_kubeconfig: PlatformKubeconfigOption = None,
    platform_vci: PlatformVciOption = None,
    skip_private_nodes: SkipPrivateNodesOption = False,
    output: OutputOption = OutputFormat.TABLE,
    phase: Annotated[
        PhaseChoice | None,
        typer.Option(
            "--phase",
            help="Staged rotation, old and new CA trusted side by side: trust (start), switch (the new CA "
            "signs), finish (drop the old CA: only now do old kubeconfigs stop working), or rollback (undo "
            "the last phase). `check` shows the phase due.",
            case_sensitive=False,
        ),
    ] = None,
    staged: Annotated[
        bool,
        typer.Option("--staged", help="Run the staged rotation's phase due: trust to start, then switch. "
                     "Finish is never implied: name it with --phase finish."),
    ] = False,
) -> None:
    """Replace the CA of a vCluster (and every leaf). Existing kubeconfigs stop working, unless staged
    (--staged, or --phase trust, then switch, then finish). Several names, none, -A, -l or
    --expiring-within: every one of them (a fleet run)."""
    selection = Selection(names=tuple(names or ()), all_namespaces=all_namespaces, selector=selector,
                          expiring_within=expiring_within, max_parallel=max_parallel, keep_going=keep_going)
    if selection.is_fleet:
        # each of these names one vCluster's file, server or Platform instance
        refuse_single_only({"--ca-cert/--ca-key": ca_cert is not None or ca_key is not None,
                            "--kubeconfig-out": kubeconfig_out is not None,
                            "--update-kubeconfig": update_kubeconfig,
                            "--vcluster-server": vcluster_server is not None,
                            "--platform-vci": platform_vci is not None})
    byo = load_byo_ca(ca_cert, ca_key, now=get_deps(ctx).now())
    if kubeconfig_out is not None and kubeconfig_out.exists() and not overwrite and not dry_run:
        raise UsageError(
            f"{kubeconfig_out} exists", hint="pass --overwrite to replace it, or choose another file"
        )
    if staged and phase is not None:
        raise UsageError("--staged and --phase go separately",
                         hint="--staged runs the phase due; --phase names one")
    _check_phase_flags(phase, byo=byo is not None, ca_validity=ca_validity, refresh_sans=refresh_sans)
    stage: dict[str, Any] = {"stage_due": True} if staged else {}
    if phase is not None and phase is not PhaseChoice.ROLLBACK:
        stage = {"stage": Stage(phase.value)}
    operation = Operation.RESTORE if phase is PhaseChoice.ROLLBACK else Operation.ROTATE_CA
    extra: dict[str, Any] = (
        {"undo_stage": True, "renew": False} if phase is PhaseChoice.ROLLBACK
        else {"refresh_sans": refresh_sans, "ca_validity": parse_duration(ca_validity, flag="--ca-validity"),
              "byo_ca": byo, **stage}
    )
    request = operation_request(
        operation,
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
        **extra,
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
            server=vcluster_server,
        )

    if selection.is_fleet:
        run_fleet(ctx, selection, request, output=output, yes=yes, hooks=hooks)
        return
    run_operation(ctx, selection.names[0], request, output=output, yes=yes, hooks=hooks, after=after,
                  preview=finish_preview)


class PhaseChoice(StrEnum):
    TRUST = "trust"
    SWITCH = "switch"
    FINISH = "finish"
    ROLLBACK = "rollback"


def _check_phase_flags(phase: PhaseChoice | None, *, byo: bool, ca_validity: str, refresh_sans: bool) -> None:
    """The new CA is made (or brought) in trust only; a rollback puts a backup back as it was."""
    if phase is None or phase is PhaseChoice.TRUST:
        return
    if byo or ca_validity != "3650d":
        raise UsageError(
            f"--ca-cert/--ca-key and --ca-validity choose the new CA, made in trust: not for --phase {phase}",
            hint="run that phase without them",
        )
    if refresh_sans and phase is not PhaseChoice.SWITCH:
        raise UsageError(f"--refresh-sans re-issues leaves: --phase {phase} issues none",
                         hint="pass it to --phase trust or switch")


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
