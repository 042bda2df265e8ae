"""The record of a NodeClaim recycle, and the objects it is made of.

Before anything is deleted, every claim of a VirtualClusterInstance (name, uid, spec, labels,
annotations) is written to the instance's annotation `contract.RECYCLE_RECORD_ANNOTATION` in one
resourceVersion-guarded write; this module is that record (`RecycleRecord`, JSON), the claims and
instances it is read from, and the annotations that say whether a recycle is due (`pending_marker`).
Pure: takes text and times, returns dataclasses; raises InvalidInputError for what cannot be trusted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import InvalidInputError

RECORD_VERSION = 1
MAX_RECORD_BYTES = 200 * 1024
# Spec fields the Platform fills in itself after a claim is created; ignored when matching a claim
# the Platform recreated under a new name against the record.
PLATFORM_SET_SPEC_FIELDS = frozenset({"typeRef", "displayName"})
# Annotations that belong to the old object, not to a recreated one.
DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


class RecreatePolicy(StrEnum):
    MISSING = "missing"  # wait the grace period, then recreate what the Platform did not
    ALWAYS = "always"  # no grace period: recreate every recorded claim nothing covers at once
    NEVER = "never"  # delete only; the Platform recreates


@dataclass(frozen=True)
class Instance:
    """A VirtualClusterInstance as the recycle sees it."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Claim:
    """A NodeClaim as observed."""

    namespace: str
    name: str
    uid: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    deleting: bool = False
    finalizers: tuple[str, ...] = ()
    phase: str = ""

    @property
    def vcluster(self) -> str | None:
        value = self.spec.get(contract.NODECLAIM_VCLUSTER_FIELD)
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RecordedClaim:
    """What is kept of a claim to recreate it."""

    name: str
    uid: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, claim: Claim) -> RecordedClaim:
        annotations = {k: v for k, v in claim.annotations.items() if k not in DROPPED_ANNOTATIONS}
        return cls(name=claim.name, uid=claim.uid, spec=dict(claim.spec), labels=dict(claim.labels),
                   annotations=annotations)


@dataclass(frozen=True)
class RecycleRecord:
    """The durable record kept on the instance while a recycle is under way."""

    marker: str | None  # the ca-rotated value this recycle answers (None: a manual recycle)
    policy: RecreatePolicy
    started: datetime
    gone_at: datetime | None
    claims: tuple[RecordedClaim, ...]

    def to_json(self) -> str:
        return json.dumps({
            "version": RECORD_VERSION,
            "marker": self.marker,
            "policy": self.policy.value,
            "started": timefmt.rfc3339(self.started),
            "goneAt": timefmt.rfc3339(self.gone_at) if self.gone_at else None,
            "claims": [{"name": c.name, "uid": c.uid, "spec": c.spec, "labels": c.labels,
                        "annotations": c.annotations} for c in self.claims],
        }, sort_keys=True, separators=(",", ":"))



def parse_time(text: str, *, what: str) -> datetime:
    """Parse an RFC 3339 time; naive or unparseable values raise InvalidInputError."""
    parsed = timefmt.parse_rfc3339(text)
    if parsed is None:
        raise InvalidInputError(f"{what}: {text!r} is not an RFC 3339 time",
                                hint="write it like 2026-11-29T04:00:00Z")
    return parsed


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} is not an object", hint="fix or remove the record annotation")
    return value


def parse_record(text: str, *, where: str) -> RecycleRecord:
    """Read the record annotation back; anything malformed raises InvalidInputError (no action)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{where}: {contract.RECYCLE_RECORD_ANNOTATION} is not JSON",
                                hint="fix or remove the annotation by hand") from exc
    doc = _mapping(raw, f"{where}: {contract.RECYCLE_RECORD_ANNOTATION}")
    if doc.get("version") != RECORD_VERSION:
        raise InvalidInputError(f"{where}: record version {doc.get('version')!r} is not {RECORD_VERSION}",
                                hint="finish the recycle with the kubectl vcerts release that started it")
    try:
        policy = RecreatePolicy(str(doc.get("policy")))
    except ValueError as exc:
        raise InvalidInputError(f"{where}: record policy {doc.get('policy')!r} is unknown",
                                hint="use missing, always or never") from exc
    claims: list[RecordedClaim] = []
    raw_claims = doc.get("claims")
    if not isinstance(raw_claims, list):
        raise InvalidInputError(f"{where}: record has no claims list", hint="fix or remove the annotation")
    for item in raw_claims:
        entry = _mapping(item, f"{where}: a recorded claim")
        name, uid = entry.get("name"), entry.get("uid")
        if not isinstance(name, str) or not isinstance(uid, str) or not name or not uid:
            raise InvalidInputError(f"{where}: a recorded claim lacks name or uid", hint="fix the annotation")
        claims.append(RecordedClaim(
            name=name, uid=uid, spec=_mapping(entry.get("spec"), f"{where}: spec of {name}"),
            labels=_mapping(entry.get("labels") or {}, f"{where}: labels of {name}"),
            annotations=_mapping(entry.get("annotations") or {}, f"{where}: annotations of {name}")))
    marker = doc.get("marker")
    if marker is not None and not isinstance(marker, str):
        raise InvalidInputError(f"{where}: record marker is not a string", hint="fix the annotation")
    started = doc.get("started")
    gone = doc.get("goneAt")
    return RecycleRecord(
        marker=marker,
        policy=policy,
        started=parse_time(str(started), what=f"{where}: record start"),
        gone_at=parse_time(str(gone), what=f"{where}: record goneAt") if gone is not None else None,
        claims=tuple(claims),
    )


def validate_claim(claim: Claim) -> None:
    """A claim we could not recreate faithfully is invalid: refuse before deleting anything."""
    provider = claim.spec.get("providerRef")
    if not isinstance(provider, str) or not provider:
        raise InvalidInputError(
            f"nodeclaim {claim.name} in namespace {claim.namespace} has no spec.providerRef",
            hint="fix the NodeClaim; nothing was deleted")


def pending_marker(instance: Instance) -> str | None:
    """The ca-rotated value still to recycle for, or None when recycled is up to date.

    Raises InvalidInputError when either annotation is not an RFC 3339 time.
    """
    rotated = instance.annotations.get(contract.CA_ROTATED_ANNOTATION)
    if rotated is None:
        return None
    where = f"virtualclusterinstance {instance.name} in namespace {instance.namespace}"
    rotated_at = parse_time(rotated, what=f"{where}: {contract.CA_ROTATED_ANNOTATION}")
    recycled = instance.annotations.get(contract.NODECLAIMS_RECYCLED_ANNOTATION)
    if recycled is None:
        return rotated
    if parse_time(recycled, what=f"{where}: {contract.NODECLAIMS_RECYCLED_ANNOTATION}") >= rotated_at:
        return None
    return rotated

