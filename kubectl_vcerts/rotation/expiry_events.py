"""Warning Events about a vCluster's certificates (`check --emit-events`, the exporter).

One Event per vCluster, condition and UTC day, recorded on the control-plane StatefulSet or Deployment
so that `kubectl get events` and `kubectl describe` show it:
  CertificatesExpired   a certificate has ended (or is not yet valid: the clock and the PKI disagree)
  CertificatesInvalid   NAME-certs is missing, or check finds it unusable (missing keys, wrong CA, ...)
  CertificatesExpiring  a certificate ends within the warning window
The Event's name carries vCluster, condition and day, so recording it twice (two exporter replicas, a
cron job and the exporter) is one Event. Never key material in messages: file names and dates only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.pki import Status
from kubectl_vcerts.rotation.check import SummaryRow
from kubectl_vcerts.rotation.model import WorkloadKind
from kubectl_vcerts.rotation.ports import EventRecorder, EventSubject

EXPIRED = "CertificatesExpired"
INVALID = "CertificatesInvalid"
EXPIRING = "CertificatesExpiring"
_LISTED = 5  # certificates named in one message


@dataclass(frozen=True)
class ExpiryEvent:
    subject: EventSubject
    name: str  # unique per vCluster, condition and day
    reason: str
    message: str


def _subject(row: SummaryRow) -> EventSubject:
    vc = row.vcluster
    kind = "StatefulSet" if vc.kind is WorkloadKind.STATEFULSET else "Deployment"
    return EventSubject(api_version="apps/v1", kind=kind, name=vc.workload_name or vc.name,
                        namespace=vc.namespace, uid=vc.workload_uid)


def event_name(subject: EventSubject, reason: str, day: str) -> str:
    """`<workload>.vcerts-<condition>-<yyyymmdd>`; a long workload name is shortened with a hash so the
    name stays a valid object name (253 characters)."""
    suffix = f".vcerts-{reason.removeprefix('Certificates').lower()}-{day}"
    base = subject.name
    if len(base) + len(suffix) > 253:
        digest = hashlib.sha256(base.encode()).hexdigest()[:10]
        base = f"{base[:253 - len(suffix) - 11]}-{digest}"
    return base + suffix


def _names(certs: Sequence[tuple[str, datetime]]) -> str:
    shown = ", ".join(f"{key} ({timefmt.expiry(end)})" for key, end in certs[:_LISTED])
    more = len(certs) - _LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def expiry_events(row: SummaryRow, *, now: datetime) -> list[ExpiryEvent]:
    """The Events `row` calls for today (none when every certificate is OK)."""
    vc, pki = row.vcluster, row.pki
    subject = _subject(row)
    day = now.strftime("%Y%m%d")
    fix_leaves = f"renew with `kubectl vcerts rotate {vc.name} -n {vc.namespace}`"
    events: list[tuple[str, str]] = []
    if pki is None:
        events.append((INVALID, f"{contract.certs_secret_name(vc.name)} not found: the vCluster has no "
                               "certificates in the host cluster"))
    else:
        ended = sorted(((c.secret_key, c.not_after) for c in pki.certificates
                        if c.status in (Status.EXPIRED, Status.NOT_YET_VALID)), key=lambda c: c[1])
        ending = sorted(((c.secret_key, c.not_after) for c in pki.certificates
                         if c.status is Status.EXPIRING), key=lambda c: c[1])
        invalid = sorted({f.secret_key for f in pki.findings if f.status is Status.INVALID})
        if ended:
            events.append((EXPIRED, f"{len(ended)} certificate(s) of vCluster {vc.ref} are expired or not "
                                    f"yet valid: {_names(ended)}; {fix_leaves} (rotate-ca when the CA "
                                    "ended)"))
        if invalid:
            shown = ", ".join(invalid[:_LISTED]) + (f" and {len(invalid) - _LISTED} more"
                                                    if len(invalid) > _LISTED else "")
            events.append((INVALID, f"{contract.certs_secret_name(vc.name)} of vCluster {vc.ref} has "
                                    f"unusable entries: {shown}; see `kubectl vcerts check {vc.name} -n "
                                    f"{vc.namespace}`"))
        if ending:
            events.append((EXPIRING, f"{len(ending)} certificate(s) of vCluster {vc.ref} end within the "
                                     f"warning window: {_names(ending)}; {fix_leaves}"))
    return [ExpiryEvent(subject, event_name(subject, reason, day), reason, message)
            for reason, message in events]


def record_expiry_events(recorder: EventRecorder, rows: Sequence[SummaryRow], *, now: datetime) -> int:
    """Record what `rows` call for; returns how many Events were new (the rest existed today)."""
    created = 0
    for row in rows:
        for event in expiry_events(row, now=now):
            if recorder.record_once(event.subject, name=event.name, reason=event.reason,
                                    message=event.message, now=now):
                created += 1
    return created
