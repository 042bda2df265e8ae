"""The planning side of a staged CA rotation (rotate-ca --phase): which phase may run, its PKI change,
what the plan tells the user, and the backup a rollback of the last phase puts back.

The phase is read from the PKI (pki/staged.py), never from a local file, so a second user on another
machine continues where the first stopped, and restoring any backup restores its phase with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from kubectl_vcerts import contract
from kubectl_vcerts.errors import InvalidPkiError, NotFoundError, StageOrderError, UsageError
from kubectl_vcerts.pki import PkiChange, ca_fingerprint
from kubectl_vcerts.pki.layout import ca_certificate
from kubectl_vcerts.pki.sans import SanConfig
from kubectl_vcerts.pki.staged import (
    Stage,
    StagedState,
    stage_finish,
    stage_switch,
    stage_trust,
    staged_state,
)
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.operation import CA_VALIDITY, OperationRequest
from kubectl_vcerts.rotation.ports import BackupPort, BackupRecord

# the old CA must outlive the window between trust and finish by this much, or the plan says so
SHORT_WINDOW = timedelta(days=30)


def _command(vcluster: VCluster, phase: str) -> str:
    return f"kubectl vcerts rotate-ca {vcluster.name} -n {vcluster.namespace} --phase {phase}"


def due(data: Mapping[str, bytes]) -> tuple[Stage, StagedState | None]:
    """The phase that runs next on this PKI, with the state it continues (None: none under way)."""
    state = staged_state(data)
    return (Stage.TRUST if state is None else state.next), state


def staged_change(vcluster: VCluster, data: Mapping[str, bytes], request: OperationRequest, *,
                  now: datetime, refresh: SanConfig | None, notes: list[str]) -> tuple[PkiChange, Stage]:
    """The PKI change of `request.stage` (with `stage_due`: of the phase due), and that phase;
    StageOrderError when it is not the phase due, or when the phase due is finish and was not named (it
    stops old kubeconfigs). Adds the notes that say what works after this phase and what comes next."""
    where = f"secret {vcluster.namespace}/{contract.certs_secret_name(vcluster.name)}"
    wanted, state = due(data)
    if request.stage is None and wanted is Stage.FINISH:
        raise StageOrderError(
            f"{where}: the phase due is finish, which drops the old CA and stops every kubeconfig that "
            "trusts only it; --staged never runs it",
            hint=f"nothing was changed; `{_command(vcluster, Stage.FINISH)} --dry-run` names what stops "
            "working, then run it without --dry-run",
        )
    request = replace(request, stage=request.stage or wanted)
    assert request.stage is not None
    chooses_ca = request.byo_ca is not None or request.ca_validity != CA_VALIDITY
    if request.stage is not Stage.TRUST and chooses_ca:
        raise UsageError(
            f"--ca-cert/--ca-key and --ca-validity choose the new CA, made in trust: not for the "
            f"{request.stage} phase",
            hint="run it without them",
        )
    if request.stage is not wanted:
        done = ("no staged CA rotation is under way" if state is None
                else f"its last phase done is {state.phase}")
        raise StageOrderError(
            f"{where}: the {request.stage} phase of a staged CA rotation cannot run now: {done}",
            hint=f"nothing was changed; the phase due is {wanted}: `{_command(vcluster, wanted)}`",
        )
    if request.stage is Stage.TRUST:
        old = ca_certificate(data)
        if old.not_valid_after_utc <= now:
            raise InvalidPkiError(
                f"{where}: the CA expired on {old.not_valid_after_utc:%Y-%m-%d}; a staged rotation keeps "
                "trusting it until finish, and nothing it signs verifies any more",
                hint="run `kubectl vcerts rotate-ca` without --phase (a one-step rotation)",
            )
        if old.not_valid_after_utc - now < SHORT_WINDOW:
            notes.append(f"the old CA expires on {old.not_valid_after_utc:%Y-%m-%d}: old kubeconfigs stop "
                         "working then, finished or not")
        change = stage_trust(data, now=now, ca_validity=request.ca_validity,
                             leaf_validity=request.leaf_validity, byo_ca=request.byo_ca, refresh_sans=refresh)
        notes += [
            "phase trust: every CA file now trusts the old and the new CA; the old CA still signs the "
            "control plane's certificates, the new one admin.conf's (so vc-NAME and --kubeconfig-out "
            "kubeconfigs from now on outlive finish); every existing kubeconfig keeps working",
            f"next: `{_command(vcluster, Stage.SWITCH)}` once the restart is done",
        ]
    elif request.stage is Stage.SWITCH:
        change = stage_switch(data, now=now, leaf_validity=request.leaf_validity, refresh_sans=refresh)
        notes += [
            "phase switch: the new CA signs every certificate (served with a copy signed by the old CA, "
            "so clients that trust only the old CA still verify it); old kubeconfigs keep working until "
            "finish. Move clients, CI secrets and private nodes to the new CA now",
            f"next: `{_command(vcluster, Stage.FINISH)}` (old kubeconfigs stop working then; "
            "--dry-run names the contexts of your kubeconfig that still trust only the old CA)",
        ]
    else:
        change = stage_finish(data)
        notes.append("phase finish: the old CA is dropped; kubeconfigs, tokens' CA bundles and kubelets that "
                     "trust only the old CA, or authenticate with a certificate it issued, stop working")
    return change, request.stage


def refuse_one_step(vcluster: VCluster, data: Mapping[str, bytes]) -> None:
    """A one-step rotate-ca in the middle of a staged one would cut every client over at once, the very
    thing the staged rotation was started to avoid, and leave the new CA's key behind: say what to run."""
    state = staged_state(data)
    if state is None:
        return
    raise StageOrderError(
        f"vCluster {vcluster.ref}: a staged CA rotation is under way (its last phase done is "
        f"{state.phase}); a one-step rotate-ca now would stop every old kubeconfig at once",
        hint=f"nothing was changed; continue with `{_command(vcluster, state.next)}`, or undo the last "
        f"phase with `{_command(vcluster, 'rollback')}` (each run undoes one phase)",
    )


def old_fingerprint(data: Mapping[str, bytes], stage: Stage | None) -> str | None:
    """The CA the hooks and the report call "old" for finish: the self-signed old CA, not the copy of the
    new one it signed (the first certificate in switch)."""
    state = staged_state(data) if stage is Stage.FINISH else None
    return state.old_ca if state is not None else None


def _phase_of(record: BackupRecord) -> str:
    operation, _, phase = record.operation.partition(":")
    return phase if operation == "rotate-ca" else ""


def rollback_backup(vcluster: VCluster, data: Mapping[str, bytes], backups: BackupPort,
                    records: Sequence[BackupRecord], *, identity: str = "") -> BackupRecord:
    """The backup taken right before the last phase done on `data` (its data read): after trust or
    switch the PKI says which phase that was; after finish, the newest finish backup whose new CA is the
    one in use. Never a backup of another vCluster of the same name (`identity`, as `restore` checks).
    NotFoundError when no such backup is left (pruned, or no staged rotation)."""
    state = staged_state(data)
    wanted = str(state.phase) if state is not None else str(Stage.FINISH)
    for record in sorted(records, key=lambda r: (r.created, r.name), reverse=True):
        if _phase_of(record) != wanted or (identity and record.identity and record.identity != identity):
            continue
        full = backups.read_backup(vcluster, record.name)
        before = staged_state(full.data or {})
        if _continues(before, state, data):
            return full
    done = f"the last phase done is {state.phase}" if state is not None else "no phase is under way"
    raise NotFoundError(
        f"vCluster {vcluster.ref}: no backup taken before the last phase of a staged CA rotation ({done})",
        hint="nothing was changed; list backups with `kubectl vcerts backups list` and put one back with "
        "`kubectl vcerts restore --backup ID`",
    )


def _continues(before: StagedState | None, after: StagedState | None, data: Mapping[str, bytes]) -> bool:
    """Whether a backup's PKI (`before`) is the one the last phase started from."""
    if after is not None and after.phase is Stage.TRUST:
        return before is None  # the PKI from before the rotation: its CA is the old one
    if after is not None:
        return before is not None and before.phase is Stage.TRUST and before.new_ca == after.new_ca
    try:
        current = ca_fingerprint(data)
    except InvalidPkiError:
        return False
    return before is not None and before.phase is Stage.SWITCH and before.new_ca == current
