"""Recycling the NodeClaims of one VirtualClusterInstance after a CA change, losing nothing.

Shared by the platform hook (one pass per reconcile) and `kubectl vcerts nodeclaims recycle` (passes
until done). The order makes every crash recoverable:

1. record every claim (name, uid, spec, labels, annotations) in the instance's annotation
   `contract.RECYCLE_RECORD_ANNOTATION`, one resourceVersion-guarded write, BEFORE deleting anything;
2. delete each recorded claim, guarded by its uid (a claim recreated under the same name is never
   deleted), and wait until each recorded uid is gone (finalizers may hold it);
3. note in the record when all were gone, then give the Platform a grace period to recreate them;
4. recreate the recorded claims nothing covers (see `missing_claims`), under their own name when free;
5. in one guarded write, drop the record and set `nodeclaims-recycled` to the CA-change marker.

A pass reads the instance and the claims again each time, so re-running any step is harmless.

Why an annotation and not a ConfigMap: the record and the phase change in the same atomic write
as the instance (no orphan objects, no extra RBAC in every project namespace, visible with
`kubectl get -o yaml`). Annotations share 256 KiB per object; a record beyond `MAX_RECORD_BYTES`
(roughly 100+ claims) is refused with an Event before anything is deleted.

The record is rotation/recycle_record.py, the choice of the next step rotation/recycle_steps.py (both
pure, taking `now`); this module is the driver, which talks to the Platform through `RecyclePort`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ConflictError, InvalidInputError, OperationTimeoutError
from kubectl_vcerts.rotation.ports import Clock, Progress, ProgressEvent, no_progress
from kubectl_vcerts.rotation.recycle_record import (
    MAX_RECORD_BYTES,
    Claim,
    Instance,
    RecordedClaim,
    RecreatePolicy,
    RecycleRecord,
    parse_record,
    validate_claim,
)
from kubectl_vcerts.rotation.recycle_steps import StepKind, plan_step


class RecyclePort(Protocol):
    """What the recycle needs from the Platform cluster (kube.platform.PlatformGateway)."""

    def read_instance(self, namespace: str, name: str) -> Instance: ...

    def list_claims(self, namespace: str, vcluster: str) -> list[Claim]:
        """NodeClaims in `namespace` whose spec.vClusterRef is `vcluster`."""
        ...

    def annotate_instance(self, instance: Instance, changes: Mapping[str, str | None], *,
                          dry_run: bool = False) -> Instance:
        """Merge annotations (None removes), guarded by instance.resource_version (ConflictError)."""
        ...

    def delete_claim(self, namespace: str, name: str, *, uid: str) -> None:
        """Delete guarded by uid; already gone is fine."""
        ...

    def create_claim(self, namespace: str, *, name: str | None, generate_name: str | None,
                     spec: Mapping[str, Any], labels: Mapping[str, str],
                     annotations: Mapping[str, str]) -> Claim:
        """Create; an existing name raises ConflictError."""
        ...

    def record_event(self, instance: Instance, *, reason: str, message: str, warning: bool = False) -> None:
        ...


@dataclass(frozen=True)
class Settings:
    policy: RecreatePolicy = RecreatePolicy.MISSING
    grace: timedelta = timedelta(minutes=5)
    poll: float = 2.0  # seconds between looks while claims terminate


@dataclass(frozen=True)
class PassResult:
    """What one pass did. `done`: the record is gone and the marker set."""

    instance: str
    done: bool
    requeue_after: float | None = None
    deleted: tuple[str, ...] = ()
    recreated: tuple[str, ...] = ()
    started: bool = False
    plan: tuple[str, ...] = ()  # dry run: what would be done
    waiting: str = ""


def recycle_pass(port: RecyclePort, namespace: str, name: str, *, marker: str | None, settings: Settings,
                 now: datetime, dry_run: bool = False, progress: Progress = no_progress) -> PassResult:
    """Advance the recycle of one instance as far as it goes without waiting. Idempotent.

    Starts a recycle (writes the record) when the instance has none, else resumes the record (its own
    marker and policy win over `marker` and `settings.policy`, so a recycle interrupted by a newer CA
    change, or started by the hook and finished by the CLI, completes as it began).
    Raises InvalidInputError for invalid objects (nothing is changed) and ConflictError when the
    instance changed under us (run the pass again).
    """
    instance = port.read_instance(namespace, name)
    where = f"virtualclusterinstance {name} in namespace {namespace}"
    text = instance.annotations.get(contract.RECYCLE_RECORD_ANNOTATION)
    claims: list[Claim] | None = None  # the last observation; None: list before the next step
    # Own names a create found taken. If a fresh list still shows the record uncovered, the holder is
    # not one of this instance's claims (another vCluster's), so the next try uses a generated name.
    conflicted: set[str] = set()
    deleted: list[str] = []
    recreated: list[str] = []
    started = False
    if text is None:
        claims = port.list_claims(namespace, name)
        for claim in claims:
            validate_claim(claim)
        recorded = tuple(RecordedClaim.of(c) for c in sorted(claims, key=lambda c: c.name))
        record = RecycleRecord(marker=marker, policy=settings.policy, started=now, gone_at=None,
                               claims=recorded)
        encoded = record.to_json()
        if len(encoded.encode()) > MAX_RECORD_BYTES:
            raise InvalidInputError(f"{where}: the record of {len(claims)} claims exceeds {MAX_RECORD_BYTES} "
                                    "bytes", hint="recycle the claims by hand; nothing was deleted")
        if dry_run:
            plan = [f"record {len(claims)} nodeclaim(s) in {contract.RECYCLE_RECORD_ANNOTATION} on {where}"]
            plan += [f"delete nodeclaim {c.name} (uid {c.uid}) and wait until it is gone" for c in claims]
            plan.append(_recreate_plan(settings))
            if marker is not None:
                plan.append(f"set {contract.NODECLAIMS_RECYCLED_ANNOTATION}={marker}")
            return PassResult(instance=instance.key, done=False, plan=tuple(plan))
        instance = port.annotate_instance(instance, {contract.RECYCLE_RECORD_ANNOTATION: encoded})
        started = True
        progress(ProgressEvent("record", f"recorded {len(claims)} nodeclaim(s) on {where}"))
        port.record_event(instance, reason="RecycleStarted",
                          message=f"recorded {len(claims)} NodeClaim(s); deleting them"
                          + (f" after CA change {marker}" if marker else ""))
    else:
        record = parse_record(text, where=where)
        if dry_run:
            return PassResult(instance=instance.key, done=False,
                              plan=(f"resume the recycle recorded on {where} ({len(record.claims)} claims)",))

    # A pass ends at WAIT or FINISH. Claims are listed again only after deleting (finalizers decide
    # what is gone); recording, noting the time and creating change nothing we cannot account for.
    for _ in range(6):
        if claims is None:
            claims = port.list_claims(namespace, name)
        step = plan_step(record, claims, now=now, grace=settings.grace)
        if step.kind is StepKind.DELETE:
            for claim in step.delete:
                port.delete_claim(namespace, claim.name, uid=claim.uid)
                deleted.append(claim.name)
                progress(ProgressEvent("delete", f"deleted nodeclaim {claim.name}"))
            claims = None
            continue
        if step.kind is StepKind.MARK_GONE:
            record = RecycleRecord(marker=record.marker, policy=record.policy, started=record.started,
                                   gone_at=now, claims=record.claims)
            instance = port.annotate_instance(instance,
                                              {contract.RECYCLE_RECORD_ANNOTATION: record.to_json()})
            progress(ProgressEvent("gone", f"all {len(record.claims)} recorded nodeclaim(s) are gone"))
            continue
        if step.kind is StepKind.CREATE:
            current = claims
            for rec in step.create:
                made = _recreate(port, namespace, rec, taken={c.name for c in current} | conflicted)
                if made is None:
                    conflicted.add(rec.name)
                    claims = None  # someone else created it meanwhile: look again before going on
                    continue
                current = [*current, made]
                recreated.append(made.name)
                progress(ProgressEvent("recreate", f"recreated nodeclaim {made.name} from the record"))
            if claims is not None:
                claims = current
            continue
        if step.kind is StepKind.WAIT:
            delay = settings.poll
            if step.wait_until is not None:
                delay = max(0.05, min((step.wait_until - now).total_seconds(), settings.poll * 5))
            progress(ProgressEvent("wait", step.reason))
            return PassResult(instance=instance.key, done=False, requeue_after=delay, deleted=tuple(deleted),
                              recreated=tuple(recreated), started=started, waiting=step.reason)
        # FINISH: one guarded write drops the record and sets the marker.
        changes: dict[str, str | None] = {contract.RECYCLE_RECORD_ANNOTATION: None}
        if record.marker is not None:
            changes[contract.NODECLAIMS_RECYCLED_ANNOTATION] = record.marker
        instance = port.annotate_instance(instance, changes)
        present = len([c for c in claims if not c.deleting])
        port.record_event(instance, reason="Recycled",
                          message=f"recycled {len(record.claims)} NodeClaim(s); {present} present now"
                          + (f"; {contract.NODECLAIMS_RECYCLED_ANNOTATION}={record.marker}"
                             if record.marker else ""))
        progress(ProgressEvent("done", f"recycled {len(record.claims)} nodeclaim(s) of {where}", done=True))
        return PassResult(instance=instance.key, done=True, deleted=tuple(deleted),
                          recreated=tuple(recreated), started=started)
    return PassResult(instance=instance.key, done=False, requeue_after=settings.poll, deleted=tuple(deleted),
                      recreated=tuple(recreated), started=started, waiting="more steps")


def _recreate_plan(settings: Settings) -> str:
    if settings.policy is RecreatePolicy.NEVER:
        return "leave recreation to the Platform (--recreate never)"
    if settings.policy is RecreatePolicy.ALWAYS:
        return "recreate every claim nothing covers, at once (--recreate always)"
    return (f"wait {int(settings.grace.total_seconds())}s for the Platform, then recreate the claims "
            "still missing (--recreate missing)")


def _recreate(port: RecyclePort, namespace: str, rec: RecordedClaim, *, taken: set[str]) -> Claim | None:
    """Create one claim from its record: its own name when free, else a generated name.

    None when the own name was taken after we listed (another actor — the Platform, the CLI or the
    hook — recreated it): the caller lists again, and that claim covers the record, so no duplicate.
    """
    annotations = {**rec.annotations, contract.RECREATED_FROM_ANNOTATION: rec.uid}
    if rec.name not in taken:
        try:
            return port.create_claim(namespace, name=rec.name, generate_name=None, spec=rec.spec,
                                     labels=rec.labels, annotations=annotations)
        except ConflictError:
            return None
    # The name belongs to a claim that does not cover this record (another vCluster's, say).
    return port.create_claim(namespace, name=None, generate_name=f"{rec.name}-", spec=rec.spec,
                             labels=rec.labels, annotations=annotations)


@dataclass(frozen=True)
class RecycleReport:
    instance: str
    marker: str | None
    deleted: tuple[str, ...]
    recreated: tuple[str, ...]
    passes: int


def run_recycle(port: RecyclePort, namespace: str, name: str, *, marker: str | None, settings: Settings,
                clock: Clock, timeout: timedelta, progress: Progress = no_progress) -> RecycleReport:
    """Run passes until done (the CLI's one-shot). Conflicts (someone else wrote) are retried."""
    deadline = clock.now() + timeout
    deleted: list[str] = []
    recreated: list[str] = []
    passes = 0
    while True:
        passes += 1
        try:
            result = recycle_pass(port, namespace, name, marker=marker, settings=settings, now=clock.now(),
                                  progress=progress)
        except ConflictError:
            result = PassResult(instance=f"{namespace}/{name}", done=False, requeue_after=0.2)
        deleted += result.deleted
        recreated += result.recreated
        if result.done:
            return RecycleReport(instance=result.instance, marker=marker, deleted=tuple(deleted),
                                 recreated=tuple(recreated), passes=passes)
        if clock.now() >= deadline:
            raise OperationTimeoutError(
                f"recycle of virtualclusterinstance {name} in namespace {namespace} did not finish: "
                f"{result.waiting}",
                hint="the record stays on the instance; run the command again (or let the hook finish)")
        clock.sleep(result.requeue_after or settings.poll)
