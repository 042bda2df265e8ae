"""What an operation (rotate, rotate-ca, restore) is asked to do and what it reports: the request the
CLI builds, the report it renders, and the one rule of a run that only finishes an interrupted rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from kubectl_vcerts.pki import CaMaterial, Status
from kubectl_vcerts.pki.stage_state import Stage
from kubectl_vcerts.rotation.model import PodState
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.recovery import Operation, Phase

DEFAULT_TIMEOUT = timedelta(minutes=5)


LEAF_VALIDITY = timedelta(days=365)


CA_VALIDITY = timedelta(days=3650)


@dataclass(frozen=True)
class OperationRequest:
    operation: Operation
    holder: str  # lock holder identity: user@host:pid operation
    force: bool = False
    dry_run: bool = False
    restart: bool = True
    rollback: bool = True
    timeout: timedelta = DEFAULT_TIMEOUT
    leaf_validity: timedelta = LEAF_VALIDITY
    ca_validity: timedelta = CA_VALIDITY
    byo_ca: CaMaterial | None = field(default=None, repr=False)
    finish_interrupted: bool = False
    # restore: a backup (ID, name or "latest") or data read from a directory (`source` names it)
    restore_backup: str | None = None
    restore_data: Mapping[str, bytes] | None = field(default=None, repr=False)
    restore_source: str = ""
    renew: bool = True
    lock_seconds: int = 60
    poll_seconds: float = 1.0
    # after a successful operation, delete this vCluster's backups beyond the newest `keep_backups`
    # (0: keep every backup)
    keep_backups: int = 10
    # rotate / rotate-ca: give the leaves the SANs vCluster would issue today instead of the cloned ones
    refresh_sans: bool = False
    # restart even where that deletes the virtual cluster's state on an emptyDir (plan.data_losses)
    allow_data_loss: bool = False
    # restart even where that rolls out a template change staged under OnDelete (plan.staged_changes)
    roll_out_staged: bool = False
    # rotate-ca: run this phase of a staged (dual-trust) rotation instead of a one-step rotation
    stage: Stage | None = None
    # rotate-ca --staged: run the phase due (trust or switch; finish only when named)
    stage_due: bool = False
    # restore: put back the backup taken before the last phase of a staged rotation (--phase rollback)
    undo_stage: bool = False


@dataclass(frozen=True)
class OperationReport:
    """What happened; rendered by the CLI as text or JSON."""

    plan: RotationPlan
    applied: bool
    backup: str | None = None
    restarted: tuple[str, ...] = ()  # pods we deleted
    pods: tuple[PodState, ...] = ()  # control-plane and etcd pods at the end
    pending_restart: tuple[str, ...] = ()  # --no-restart: pods the user must restart
    regenerated: tuple[str, ...] = ()  # keys vCluster rewrote after the restart
    final_ca_fingerprint: str | None = None
    worst: Status | None = None
    hook_lines: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    pruned: tuple[str, ...] = ()  # old backups deleted after success (--keep-backups)


def stops_after_rollback(plan: RotationPlan) -> bool:
    """True when the run only finishes an interrupted rollback and then stops (the requested operation
    is not run: the user must run the command again, having seen its plan)."""
    return plan.resume is not None and plan.resume.phase is Phase.ROLLBACK


def human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
