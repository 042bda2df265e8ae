"""The expiry metrics of `check -o prometheus` (for node-exporter's textfile collector) and of
`kubectl vcerts exporter` (/metrics), in the text exposition format. Never key material: only names,
dates and statuses of certificates.

Per certificate (labels namespace, vcluster, certificate = the NAME-certs key, issuer = the issuer's CN):
  vcerts_certificate_expiry_timestamp_seconds   notAfter, Unix seconds
  vcerts_certificate_status{…,status}           1, one series per certificate: the one of its status
                                                (a fleet of 500 has ~10,000 certificates: one-hot
                                                series for five statuses would be five times that)
A key holding several certificates (a CA bundle during a staged rotation) is one series: the one that
ends first, the date an alert must fire for.
Per vCluster (labels namespace, vcluster):
  vcerts_vcluster_earliest_expiry_timestamp_seconds   the first notAfter of all its certificates (absent
                                                      when NAME-certs is missing or unreadable)
  vcerts_vcluster_status{…,status}                    1 for the worst status (a missing or corrupt PKI:
                                                      invalid), 0 for the others
  vcerts_vcluster_findings                            problems `check` reports (missing keys, ...)
Scrape health: vcerts_scrape_success, vcerts_scrape_duration_seconds, vcerts_scrape_timestamp_seconds
(the last successful read), vcerts_vclusters (how many were read).
Status label values: ok, expiring, expired, not_yet_valid, invalid.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from kubectl_vcerts.exposition import header, sample
from kubectl_vcerts.pki import Status
from kubectl_vcerts.pki.inspect import CertInfo
from kubectl_vcerts.rotation.check import CheckSummary, SummaryRow

STATUSES = tuple(Status)


def status_label(status: Status) -> str:
    return status.value.lower().replace(" ", "_")


def _first_ending(row: SummaryRow) -> list[CertInfo]:
    if row.pki is None:
        return []
    by_key: dict[str, CertInfo] = {}
    for cert in row.pki.certificates:
        kept = by_key.get(cert.secret_key)
        if kept is None or cert.not_after < kept.not_after:
            by_key[cert.secret_key] = cert
    return [by_key[key] for key in sorted(by_key)]


def _timestamp(value: datetime) -> float:
    return float(int(value.timestamp()))


def certificate_lines(rows: Iterable[SummaryRow]) -> list[str]:
    rows = list(rows)
    expiry = header("vcerts_certificate_expiry_timestamp_seconds",
                    "When a certificate of a vCluster ends (notAfter, Unix seconds).", "gauge")
    status = header("vcerts_certificate_status", "Status of a certificate (the series of its status is 1).",
                    "gauge")
    earliest = header("vcerts_vcluster_earliest_expiry_timestamp_seconds",
                      "When the first certificate of a vCluster ends (Unix seconds).", "gauge")
    worst = header("vcerts_vcluster_status",
                   "Worst status of a vCluster's certificates (invalid: NAME-certs missing or corrupt).",
                   "gauge")
    findings = header("vcerts_vcluster_findings", "Problems check reports for a vCluster's PKI.", "gauge")
    for row in rows:
        vc = row.vcluster
        who = (("namespace", vc.namespace), ("vcluster", vc.name))
        certs = _first_ending(row)
        for cert in certs:
            labels = (*who, ("certificate", cert.secret_key), ("issuer", cert.issuer_cn))
            expiry.append(sample("vcerts_certificate_expiry_timestamp_seconds", labels,
                                 _timestamp(cert.not_after)))
            current = ("status", status_label(cert.status))
            status.append(sample("vcerts_certificate_status", (*labels, current), 1.0))
        if certs:
            earliest.append(sample("vcerts_vcluster_earliest_expiry_timestamp_seconds", who,
                                   _timestamp(min(c.not_after for c in certs))))
        worst += [sample("vcerts_vcluster_status", (*who, ("status", status_label(s))),
                         1.0 if s is row.worst else 0.0) for s in STATUSES]
        findings.append(sample("vcerts_vcluster_findings", who,
                               float(len(row.pki.findings)) if row.pki is not None else 1.0))
    return [*expiry, *status, *earliest, *worst, *findings]


def scrape_lines(*, success: bool, seconds: float, last_success: datetime | None,
                 vclusters: int) -> list[str]:
    lines = header("vcerts_scrape_success", "1 when the last read of the vClusters succeeded.", "gauge")
    lines.append(sample("vcerts_scrape_success", (), 1.0 if success else 0.0))
    lines += header("vcerts_scrape_duration_seconds", "How long the last read took.", "gauge")
    lines.append(sample("vcerts_scrape_duration_seconds", (), round(seconds, 6)))
    lines += header("vcerts_scrape_timestamp_seconds", "When the last successful read ended (Unix seconds).",
                    "gauge")
    if last_success is not None:
        lines.append(sample("vcerts_scrape_timestamp_seconds", (), _timestamp(last_success)))
    lines += header("vcerts_vclusters", "vClusters read by the last successful read.", "gauge")
    lines.append(sample("vcerts_vclusters", (), float(vclusters)))
    return lines


def render(summary: CheckSummary, *, seconds: float) -> str:
    """`check -o prometheus`: one read, so it succeeded (a failed read exits with an error instead)."""
    lines = certificate_lines(summary.rows)
    lines += scrape_lines(success=True, seconds=seconds, last_success=summary.checked_at,
                          vclusters=len(summary.rows))
    return "\n".join(lines) + "\n"
