"""Pure planning for rotate, rotate-ca and restore: refusals, new data, restart order, backup name.

Nothing here talks to the cluster or reads a clock: the vCluster, the secret data and `now` come in,
a `RotationPlan` comes out, which --dry-run prints and the workflow then carries out.
Imports pki, rotation model/ports/recovery, contract and errors only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubectl_vcerts import contract
from kubectl_vcerts.errors import (
    InvalidInputError,
    InvalidPkiError,
    NotFoundError,
    NotReadyError,
    UnsupportedError,
)
from kubectl_vcerts.pki import EntryChange, inspect_pki
from kubectl_vcerts.pki.inspect import UNUSABLE_REASONS
from kubectl_vcerts.pki.parse import first_certificate
from kubectl_vcerts.pki.renew import MIN_VALIDITY
from kubectl_vcerts.pki.stage_state import ORDER
from kubectl_vcerts.rotation.model import BackingStore, Distro, PodState, VCluster, WorkloadKind
from kubectl_vcerts.rotation.ports import BackupRecord
from kubectl_vcerts.rotation.recovery import Operation, OperationRecord, RestartMode

CA_KEYS = ("ca.key", "front-proxy-ca.key", "etcd-ca.key")


@dataclass(frozen=True)
class RestartStep:
    """Pods deleted together — or, group "rollout", replaced by the Deployment's own rolling update —
    then waited for (their replacements Running and Ready, they gone or terminating)."""

    group: str  # "etcd", "control-plane", "all" or "rollout"
    pods: tuple[str, ...]

    @property
    def rollout(self) -> bool:
        return self.group == ROLLOUT_GROUP


ROLLOUT_GROUP = "rollout"
STAGES = tuple(str(s) for s in ORDER)
ROLLBACK_STAGE = "rollback"


@dataclass(frozen=True)
class RotationPlan:
    """What an operation will do. `new_data` holds private keys: never print or log it."""

    operation: Operation
    vcluster: VCluster
    source_resource_version: str
    backup_name: str
    changes: tuple[EntryChange, ...]
    old_ca_fingerprint: str | None
    new_ca_fingerprint: str
    restart_mode: RestartMode
    restart_steps: tuple[RestartStep, ...]
    restart: bool
    ca_change: bool
    new_data: dict[str, bytes] = field(repr=False)
    resume: OperationRecord | None = None  # an interrupted run of this operation we finish instead
    finish_interrupted_replicas: int | None = None  # undo an interrupted `vcluster certs rotate`
    source: str = ""  # restore: where the data comes from (backup name or directory)
    notes: tuple[str, ...] = ()
    hook_lines: tuple[str, ...] = ()
    data_loss: tuple[str, ...] = ()  # restarts that delete state on an emptyDir (--allow-data-loss)
    # a staged rotation's phase this run does: trust, switch, finish, or rollback (restoring the backup
    # taken before the last phase); "" for every other run
    stage: str = ""

    @property
    def restart_pods(self) -> tuple[str, ...]:
        return tuple(pod for step in self.restart_steps for pod in step.pods)

    @property
    def backup_operation(self) -> str:
        """What the backup made before the write is labelled with: `rotate-ca:switch` for a phase (the
        backup a rollback of that phase puts back), else the operation."""
        return f"{self.operation}:{self.stage}" if self.stage in STAGES else str(self.operation)

    @property
    def runs_hooks(self) -> bool:
        """The CA-change hooks (private nodes, the Platform mark) act on a cut-over only: a staged
        rotation's trust, switch and rollback keep every kubelet's old trust working; finish ends it."""
        return self.ca_change and self.stage in ("", "finish")


def check_supported(vcluster: VCluster, *, force: bool, finish_interrupted: bool) -> None:
    """Refuse (raise) what we must not touch; nothing has been changed when this raises."""
    if vcluster.distro in (Distro.K3S, Distro.K0S):
        raise UnsupportedError(
            f"vCluster {vcluster.ref} uses the {vcluster.distro} distribution; only k8s keeps its PKI "
            f"in {contract.certs_secret_name(vcluster.name)} in the layout kubectl vcerts rotates",
            hint="upgrade the vCluster to the k8s distribution (vCluster >= 0.25 migrates k3s) first",
        )
    if vcluster.distro != Distro.K8S:
        raise UnsupportedError(
            f"cannot tell the distribution of vCluster {vcluster.ref} "
            f"(secret {contract.config_secret_name(vcluster.name)})",
            hint="kubectl vcerts supports the k8s distribution only",
        )
    if vcluster.restoring:
        if not finish_interrupted:
            replicas = vcluster.annotations.get(contract.PAUSED_REPLICAS_ANNOTATION, "?")
            raise NotReadyError(
                f"vCluster {vcluster.ref} was left at 0 replicas with {contract.RESTORING_ANNOTATION} by an "
                f"interrupted `vcluster certs rotate` (paused replicas: {replicas})",
                hint="pass --finish-interrupted to scale it back and remove the pause annotations first",
            )
        return
    if not vcluster.is_running and not force:
        shown = vcluster.status or "no pods"
        raise NotReadyError(
            f"vCluster {vcluster.ref} has status {shown!r}, not Running",
            hint="vCluster requires a Running control plane; pass --force to rotate a crash-looping one",
        )


def interrupted_replicas(vcluster: VCluster) -> int:
    """How many replicas an interrupted `vcluster certs rotate` paused (its annotation, else spec)."""
    text = vcluster.annotations.get(contract.PAUSED_REPLICAS_ANNOTATION, "")
    if text.strip().isdigit() and int(text) > 0:
        return int(text)
    return max(vcluster.replicas, 1)


def check_pki_usable(data: Mapping[str, bytes], *, now: datetime, operation: Operation, where: str) -> None:
    """The source of a leaf renewal must have every CA with its key; else say what to do instead."""
    missing = [key for key in CA_KEYS if not data.get(key)]
    missing += [
        key
        for key in ("ca.crt", "front-proxy-ca.crt", "etcd-ca.crt", "sa.key", "sa.pub")
        if not data.get(key)
    ]
    if missing:
        raise InvalidPkiError(
            f"{where} is missing {', '.join(sorted(missing))}",
            hint="put a good PKI back with `kubectl vcerts restore` (or create a new CA with "
            "`kubectl vcerts rotate-ca`)"
            if operation is Operation.ROTATE
            else "restore a complete backup with `kubectl vcerts restore NAME --backup ID`",
        )
    if operation is Operation.ROTATE:
        bad = [key for key in ("ca.crt", "front-proxy-ca.crt", "etcd-ca.crt") if _ca_unusable(data[key], now)]
        if bad:
            raise InvalidPkiError(
                f"{where}: CA certificate(s) {', '.join(bad)} expired or unreadable; renewing leaves "
                f"under them would not help",
                hint="create a new CA with `kubectl vcerts rotate-ca` (or restore a good backup)",
            )


def _ca_unusable(pem: bytes, now: datetime) -> bool:
    """The first certificate of a CA entry cannot be read, or is outside its validity."""
    try:
        cert = first_certificate(pem)
    except ValueError:
        return True
    return not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc)


def check_restore_source(data: Mapping[str, bytes], *, now: datetime, where: str) -> None:
    """A restore source must be complete: every catalogue key present and parseable. A leaf signed by
    another CA is not refused: vCluster's k3s migration leaves apiserver-kubelet-client so, and the
    restore's renewal re-issues it."""
    report = inspect_pki(data, now=now)
    broken = sorted({f.secret_key for f in report.findings if f.reason in UNUSABLE_REASONS})
    if broken:
        raise InvalidPkiError(
            f"{where} is incomplete or corrupt: {', '.join(broken)}",
            hint="choose another backup (`kubectl vcerts backups list NAME`) or a complete directory",
        )
    check_pki_usable(data, now=now, operation=Operation.RESTORE, where=where)


def choose_restart_mode(
    vcluster: VCluster, *, ca_change: bool, resume: OperationRecord | None
) -> RestartMode:
    """Roll one pod at a time only when that keeps something available and peers share a CA."""
    if ca_change or (resume is not None and resume.ca_change):
        return RestartMode.TOGETHER  # peers with different CAs cannot talk
    pods = [p for p in vcluster.pods if not _terminating(p)] + [
        p for p in vcluster.etcd_pods if not _terminating(p)
    ]
    if not pods or not all(p.ready for p in pods):
        return RestartMode.TOGETHER  # nothing available to keep available (e.g. expired PKI)
    return RestartMode.ROLLING


def _terminating(pod: PodState) -> bool:
    return pod.status == "Terminating"


def plan_restart(vcluster: VCluster, mode: RestartMode, *, ca_change: bool) -> tuple[RestartStep, ...]:
    """Deployed etcd first (only when the CA changes), then the control plane; one pod per step when
    rolling.

    A leaf renewal leaves deployed-etcd members running: they mount NAME-certs as a secret volume
    (the kubelet replaces the files in place) and etcd loads its key pair on every handshake, so
    restarting them only costs availability. Their trusted CA, though, is read once at start: a CA
    change restarts them."""
    etcd = sorted(p.name for p in vcluster.etcd_pods if not _terminating(p)) if ca_change else []
    control = sorted(p.name for p in vcluster.pods if not _terminating(p))
    if mode is RestartMode.TOGETHER:
        return (RestartStep("all", tuple(etcd + control)),) if etcd or control else ()
    if control and rolls_out(vcluster, mode):
        return (*[RestartStep("etcd", (pod,)) for pod in etcd], RestartStep(ROLLOUT_GROUP, tuple(control)))
    return tuple(
        [RestartStep("etcd", (pod,)) for pod in etcd]
        + [RestartStep("control-plane", (pod,)) for pod in control]
    )


def rolls_out(vcluster: VCluster, mode: RestartMode) -> bool:
    """A rolling restart of a Deployment is left to its controller (a pod-template annotation, as
    vCluster's cert watcher does): with the chart's maxSurge 1 / maxUnavailable 0 the new pod is Ready
    before the old one stops, where deleting the pod of a single replica leaves nothing serving.
    Not when the Deployment is paused (the change would wait for a resume) or recreates pods
    (strategy Recreate: no gain over deleting them)."""
    return (
        mode is RestartMode.ROLLING
        and vcluster.kind is WorkloadKind.DEPLOYMENT
        and vcluster.rollout.strategy == "RollingUpdate"
        and not vcluster.rollout.paused
    )


def staged_changes(vcluster: VCluster, steps: Sequence[RestartStep]) -> tuple[str, ...]:
    """Which deletions of `steps` would apply a template change staged under OnDelete, one sentence per
    StatefulSet (empty: none). The StatefulSet controller re-creates a deleted pod from
    status.updateRevision; under OnDelete nothing else rolls that revision out, so a change someone
    staged for later (a new image, new flags) would go out with our restart."""
    deleted = {pod for step in steps if not step.rollout for pod in step.pods}
    sets = [(vcluster.name, vcluster.rollout if vcluster.kind is WorkloadKind.STATEFULSET else None,
             vcluster.pods),
            (contract.etcd_statefulset_name(vcluster.name), vcluster.etcd_rollout, vcluster.etcd_pods)]
    found = []
    for name, rollout, pods in sets:
        if rollout is None or rollout.strategy != "OnDelete" or not rollout.update_revision:
            continue
        behind = sorted(p.name for p in pods
                        if p.name in deleted and p.revision and p.revision != rollout.update_revision)
        if behind:
            found.append(
                f"StatefulSet {vcluster.namespace}/{name} (updateStrategy OnDelete) has a template "
                f"change staged (revision {rollout.update_revision}) that {', '.join(behind)} "
                f"{'does' if len(behind) == 1 else 'do'} not run yet: deleting "
                f"{'it' if len(behind) == 1 else 'them'} would roll it out"
            )
    return tuple(found)


def data_losses(vcluster: VCluster, steps: Sequence[RestartStep], *, ca_change: bool) -> tuple[str, ...]:
    """Which of `steps` delete the virtual cluster's state, one sentence each (empty: none does).

    The state lives in the control-plane pods (embedded database or embedded etcd) or in the
    deployed-etcd pods; it is lost when a pod holding it is deleted with its emptyDir and no member
    that keeps a copy survives the step: any deleted pod of an embedded database (each pod its own
    file), or every member of an etcd cluster at once. Members restarted one at a time resync from
    their peers — unless the CA changes: a member on the new CA cannot talk to peers on the old one."""
    if vcluster.backing_store is BackingStore.DEPLOYED_ETCD:
        holders, what, cluster = vcluster.etcd_pods, "deployed etcd", True
    elif vcluster.backing_store is BackingStore.EMBEDDED_ETCD:
        holders, what, cluster = vcluster.pods, "embedded etcd", True
    elif vcluster.backing_store is BackingStore.EMBEDDED_DATABASE:
        holders, what, cluster = vcluster.pods, "embedded database", False
    else:
        return ()  # external database or etcd: the pods hold no state
    members = {p.name for p in holders if not _terminating(p)}
    ephemeral = {p.name for p in holders if p.ephemeral and not _terminating(p)}
    losses = []
    for step in steps:
        deleted = set(step.pods) & ephemeral
        if not deleted or (cluster and not ca_change and members - deleted):
            continue
        pods = ", ".join(sorted(deleted))
        whose = "every member of" if cluster and len(deleted) > 1 else "the"
        losses.append(
            f"deleting {pods} deletes {whose} {what} on an emptyDir: the virtual cluster's data is lost"
        )
    return tuple(losses)


def majority_gaps(vcluster: VCluster, steps: Sequence[RestartStep]) -> tuple[str, ...]:
    """One sentence when a step of the restart stops so many members of an etcd cluster, but not all,
    that those left running are no majority (empty: none does). etcd then serves neither reads nor
    writes, so the virtual API waits until the members are back: HA embedded etcd with 2 replicas,
    or 2 deployed-etcd members restarted one by one. Restarting every member together is a stop
    anyway, and said so by the plan's steps."""
    if vcluster.backing_store is BackingStore.DEPLOYED_ETCD:
        holders = vcluster.etcd_pods
    elif vcluster.backing_store is BackingStore.EMBEDDED_ETCD:
        holders = vcluster.pods
    else:
        return ()
    members = {p.name for p in holders if not _terminating(p)}
    for step in steps:
        stopped = set(step.pods) & members
        running = len(members - stopped)
        if stopped and running and running <= len(members) // 2:
            return (
                f"restarting {', '.join(sorted(stopped))} leaves {running} of {len(members)} etcd "
                "members running, not a majority: the virtual API cannot read or write until "
                f"{'it is' if len(stopped) == 1 else 'they are'} back (3 or more members keep it "
                "answering through a rolling restart)",
            )
    return ()


def keep_data_mode(vcluster: VCluster, mode: RestartMode, *, ca_change: bool) -> RestartMode:
    """ROLLING instead of TOGETHER where restarting together would delete the state and one at a
    time would not (members resync); else `mode`."""
    def loses(candidate: RestartMode) -> bool:
        steps = plan_restart(vcluster, candidate, ca_change=ca_change)
        return bool(data_losses(vcluster, steps, ca_change=ca_change))

    if mode is RestartMode.TOGETHER and loses(mode) and not loses(RestartMode.ROLLING):
        return RestartMode.ROLLING
    return mode


def backup_name(vcluster: VCluster, now: datetime) -> str:
    return contract.backup_secret_name(vcluster.name, int(now.timestamp()))


def resolve_backup(records: Sequence[BackupRecord], ident: str, *, vcluster: VCluster,
                   identity: str = "") -> BackupRecord:
    """`latest`, the unix-time suffix, or the full Secret name.

    With the current vCluster's `identity` known, backups taken from another vCluster of the same name
    (deleted and created again) are never chosen as `latest`, and naming one is refused: its CA and
    sa.key would invalidate every token of this one. Backups that record no identity are older than
    the record and taken as this vCluster's."""
    foreign = {r.name for r in records if identity and r.identity and r.identity != identity}
    if ident in ("latest", ""):
        records = [r for r in records if r.name not in foreign]
    if not records:
        raise NotFoundError(
            f"vCluster {vcluster.ref} has no backups",
            hint="backups are made by rotate, rotate-ca and restore; use --from-dir for a PKI directory",
        )
    ordered = sorted(records, key=lambda r: (r.created, r.name), reverse=True)
    if ident in ("latest", ""):
        # "latest" means the state before the newest operation, never a PKI a rollback replaced.
        usable = [r for r in ordered if r.operation != contract.ROLLED_BACK_OPERATION]
        return (usable or ordered)[0]
    wanted = {ident, contract.backup_secret_name(vcluster.name, int(ident)) if ident.isdigit() else ident}
    for record in ordered:
        if record.name in wanted:
            if record.name in foreign:
                raise InvalidInputError(
                    f"backup {record.name} was taken from another vCluster named {vcluster.name} in "
                    f"namespace {vcluster.namespace} (uid {record.identity}, this one is {identity})",
                    hint="restoring it would install that vCluster's CA and service-account key; choose a "
                    "backup of this vCluster, or restore a PKI directory with --from-dir if you mean it",
                )
            return record
    raise NotFoundError(
        f"backup {ident!r} of vCluster {vcluster.ref} not found",
        hint=f"list them with `kubectl vcerts backups list {vcluster.name} -n {vcluster.namespace}`",
    )


def select_prunable(records: Sequence[BackupRecord], *, keep: int, identity: str = "",
                    protected: frozenset[str] = frozenset()) -> list[BackupRecord]:
    """The backups of this vCluster beyond the `keep` newest, oldest last. Never a `protected` one (the
    backup an unfinished operation or a rollback needs) and never another vCluster's (`identity`)."""
    ours = [r for r in records if not (identity and r.identity and r.identity != identity)]
    ordered = sorted(ours, key=lambda r: (r.created, r.name), reverse=True)
    return [r for r in ordered[max(keep, 0) :] if r.name not in protected]


def leaf_validity_ok(validity: timedelta) -> bool:
    """vCluster >= 0.33 re-issues leaves within RENEWAL_THRESHOLD of their end at start-up: ours must
    outlive that by RENEWAL_MARGIN (pki.renew.MIN_VALIDITY)."""
    return validity >= MIN_VALIDITY
