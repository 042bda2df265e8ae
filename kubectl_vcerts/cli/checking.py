"""What `kubectl vcerts check` does — read, render, exit code — without typer.

cli/check.py declares the command's options for typer and calls `execute`; the quick path
(cli/quick.py) calls it directly, which spares the common `check NAME` the cost of importing typer.

Reads only (one list per resource for several vClusters); works on crash-looping, scaled-down and
non-k8s vClusters. Output: the table of `vcluster certs check` (FILENAME, SUBJECT, ISSUER, EXPIRES ON,
STATUS; same date format) plus REMAINING; `-o wide` adds the secret key, path, NOT BEFORE, CA, fingerprint
and findings; `-o json|yaml` the documents below (stable; field names never change meaning).

Exit codes (also with -o json|yaml): 0 all fine; 3 (CHECK_EXPIRING) something expires within
--warn-within; 4 (CHECK_EXPIRED) something is expired, not yet valid, invalid, or NAME-certs is missing.

Schema of `check NAME -o json` (kind CertificateCheck):
  apiVersion "vcerts.io/v1"; kind; checkedAt (RFC 3339 UTC "Z"); warnWithinSeconds; status (worst:
  OK | EXPIRING | EXPIRED | NOT YET VALID | INVALID); exitCode;
  vcluster {name, namespace, version, status, kind, replicas, distro, backingStore, privateNodes,
            persistence, restoring};
  secret {name, found}; ca {fingerprint ("sha256:<hex>"), notAfter, split}; earliestLeafNotAfter;
  notRestarted {writtenAt, pods} (null unless pods started before kubectl vcerts last wrote NAME-certs);
  stagedRotation {phase (last phase done: trust | switch), next (switch | finish), oldCa, newCa}
                 (null unless a staged CA rotation, rotate-ca --phase, is under way);
  certificates [{secretKey, path, filename, kind, subject, subjectO, issuer, issuerKey, notBefore,
                 notAfter, remainingSeconds, status, verifies, keyMatches, fingerprint, findings [reason]}];
  findings [{secretKey, reason, status, message}]
Schema of `check -A -o json` (kind CertificateCheckList):
  apiVersion; kind; checkedAt; warnWithinSeconds; status (worst over items); exitCode;
  items [{namespace, name, version, status (vCluster status), kind, distro, secret {name, found},
          earliestLeafNotAfter, caNotAfter, caFingerprint, certificates (worst status), findings (count)}]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from kubectl_vcerts import contract
from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.formats import OutputFormat, check_selector, parse_duration
from kubectl_vcerts.cli.live import apply_live, live_exit_code, live_lines, run_live
from kubectl_vcerts.cli.render import (
    STATUS_STYLES,
    echo,
    emit_document,
    format_expiry,
    format_remaining,
    print_table,
    rfc3339,
    spinner,
)
from kubectl_vcerts.errors import UsageError
from kubectl_vcerts.pki import CATALOGUE, Reason, Status
from kubectl_vcerts.rotation.check import CheckReport, CheckSummary, SummaryRow, exit_code_for
from kubectl_vcerts.rotation.model import Distro, VCluster

API_VERSION = "vcerts.io/v1"
TIME_REASONS = {Reason.EXPIRED.value, Reason.EXPIRING.value, Reason.NOT_YET_VALID.value}
FILENAMES = {entry.secret_key: entry.filename for entry in CATALOGUE}
PATHS = {entry.secret_key: entry.path for entry in CATALOGUE}

def parse_warn_within(text: str) -> timedelta:
    value = parse_duration(text, flag="--warn-within")
    if value < timedelta(0):
        raise UsageError("--warn-within must not be negative", hint="e.g. --warn-within 30d")
    return value


# ------------------------------------------------------------------------------------------ documents
def _vcluster_doc(vc: VCluster) -> dict[str, Any]:
    return {
        "name": vc.name,
        "namespace": vc.namespace,
        "version": vc.version or None,
        "status": vc.status,
        "kind": vc.kind.value,
        "replicas": vc.replicas,
        "distro": vc.distro.value,
        "backingStore": vc.backing_store.value,
        "privateNodes": vc.private_nodes,
        "persistence": vc.persistence,
        "restoring": vc.restoring,
    }


def check_document(report: CheckReport) -> dict[str, Any]:
    pki = report.pki
    return {
        "apiVersion": API_VERSION,
        "kind": "CertificateCheck",
        "checkedAt": rfc3339(report.checked_at),
        "warnWithinSeconds": int(report.warn_within.total_seconds()),
        "status": report.worst.value,
        "exitCode": int(exit_code_for(report.worst)),
        "vcluster": _vcluster_doc(report.vcluster),
        "secret": {"name": report.secret_name, "found": pki is not None},
        "ca": {
            "fingerprint": pki.ca_fingerprint if pki else None,
            "notAfter": rfc3339(pki.ca_not_after) if pki else None,
            "split": pki.split_ca if pki else False,
        },
        "earliestLeafNotAfter": rfc3339(pki.earliest_leaf_not_after) if pki else None,
        "notRestarted": {
            "writtenAt": rfc3339(report.unrestarted.written_at),
            "pods": list(report.unrestarted.pods),
        } if report.unrestarted else None,
        "stagedRotation": {
            "phase": str(report.staged.phase),
            "next": str(report.staged.next),
            "oldCa": report.staged.old_ca,
            "newCa": report.staged.new_ca,
        } if report.staged else None,
        "certificates": [
            {
                "secretKey": c.secret_key,
                "path": c.path,
                "filename": c.filename,
                "kind": c.kind.value,
                "subject": c.subject_cn,
                "subjectO": c.subject_o,
                "issuer": c.issuer_cn,
                "issuerKey": c.issuer_key,
                "notBefore": rfc3339(c.not_before),
                "notAfter": rfc3339(c.not_after),
                "remainingSeconds": int(c.remaining.total_seconds()),
                "status": c.status.value,
                "verifies": c.verifies,
                "keyMatches": c.key_matches,
                "fingerprint": c.fingerprint,
                "findings": [f.reason for f in c.findings],
            }
            for c in (pki.certificates if pki else ())
        ],
        "findings": [
            {"secretKey": f.secret_key, "reason": f.reason, "status": f.status.value, "message": f.message}
            for f in (pki.findings if pki else ())
        ],
    }


def summary_document(summary: CheckSummary) -> dict[str, Any]:
    items = []
    for row in summary.rows:
        vc, pki = row.vcluster, row.pki
        items.append(
            {
                "namespace": vc.namespace,
                "name": vc.name,
                "version": vc.version or None,
                "status": vc.status,
                "kind": vc.kind.value,
                "distro": vc.distro.value,
                "secret": {"name": row.secret_name, "found": pki is not None},
                "earliestLeafNotAfter": rfc3339(pki.earliest_leaf_not_after) if pki else None,
                "caNotAfter": rfc3339(pki.ca_not_after) if pki else None,
                "caFingerprint": pki.ca_fingerprint if pki else None,
                "certificates": row.worst.value,
                "findings": len(pki.findings) if pki else 1,
            }
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "CertificateCheckList",
        "checkedAt": rfc3339(summary.checked_at),
        "warnWithinSeconds": int(summary.warn_within.total_seconds()),
        "status": summary.worst.value,
        "exitCode": int(exit_code_for(summary.worst)),
        "items": items,
    }


# ------------------------------------------------------------------------------------------ tables
def check_rows(report: CheckReport, *, wide: bool) -> tuple[list[str], list[list[str]], list[str | None]]:
    """Header, rows and per-row styles of the certificate table (unparseable entries get a row too)."""
    headers = ["FILENAME", "SUBJECT", "ISSUER", "EXPIRES ON", "STATUS", "REMAINING"]
    if wide:
        headers += ["SECRET KEY", "PATH", "NOT BEFORE", "CA", "FINGERPRINT", "FINDINGS"]
    rows: list[list[str]] = []
    styles: list[str | None] = []
    pki = report.pki
    for cert in pki.certificates if pki else ():
        row = [
            cert.filename,
            cert.subject_cn or "-",
            cert.issuer_cn or "-",
            format_expiry(cert.not_after),
            cert.status.value,
            format_remaining(cert.remaining),
        ]
        if wide:
            row += [
                cert.secret_key,
                cert.path,
                format_expiry(cert.not_before),
                cert.issuer_key or "-",
                cert.fingerprint,
                ",".join(f.reason for f in cert.findings) or "-",
            ]
        rows.append(row)
        styles.append(STATUS_STYLES.get(cert.status.value))
    with_rows = {c.secret_key for c in pki.certificates} if pki else set()
    for finding in pki.findings if pki else ():
        if finding.secret_key in with_rows or finding.reason in TIME_REASONS:
            continue
        with_rows.add(finding.secret_key)
        filename = FILENAMES.get(finding.secret_key, finding.secret_key)
        row = [filename, "-", "-", "-", Status.INVALID.value, "-"]
        if wide:
            row += [finding.secret_key, PATHS.get(finding.secret_key, "-"), "-", "-", "-", finding.reason]
        rows.append(row)
        styles.append(STATUS_STYLES[Status.INVALID.value])
    return headers, rows, styles


def summary_rows(summary: CheckSummary, *, wide: bool) -> tuple[list[str], list[list[str]], list[str | None]]:
    headers = ["NAMESPACE", "NAME", "VERSION", "STATUS", "LEAVES EXPIRE", "CA EXPIRES", "CERTS"]
    if wide:
        headers += ["KIND", "DISTRO", "CA FINGERPRINT", "FINDINGS"]
    now = summary.checked_at
    rows: list[list[str]] = []
    styles: list[str | None] = []

    def when(value: datetime | None) -> str:
        return "-" if value is None else f"{format_expiry(value)} ({format_remaining(value - now)})"

    for row in summary.rows:
        vc, pki = row.vcluster, row.pki
        cells = [
            vc.namespace,
            vc.name,
            vc.version or "-",
            vc.status or "-",
            when(pki.earliest_leaf_not_after if pki else None),
            when(pki.ca_not_after if pki else None),
            row.worst.value if pki else f"{row.worst.value} (no {row.secret_name})",
        ]
        if wide:
            reasons = sorted({f.reason for f in pki.findings}) if pki else ["missing"]
            cells += [
                vc.kind.value,
                vc.distro.value,
                (pki.ca_fingerprint if pki else None) or "-",
                ",".join(reasons) or "-",
            ]
        rows.append(cells)
        styles.append(STATUS_STYLES.get(row.worst.value))
    return headers, rows, styles


def notes(report: CheckReport) -> list[str]:
    """Context for people (shown on stderr, so that stdout stays the table)."""
    vc, pki = report.vcluster, report.pki
    if pki is None:
        return [f"{report.secret_name} not found in namespace {vc.namespace}: the vCluster has no "
                f"certificates in the host cluster (never started, or not the k8s distro)"]
    lines = [f"problem: {f.message} ({f.reason})" for f in pki.findings if f.reason not in TIME_REASONS]
    if report.unrestarted is not None:
        lines.append(f"warning: {report.unrestarted.message(vc)}")
    if report.staged is not None:
        command = f"kubectl vcerts rotate-ca {vc.name} -n {vc.namespace} --phase"
        staged = report.staged
        lines.append(f"note: staged CA rotation under way: phase {staged.phase} done; next "
                     f"`{command} {staged.next}` (or `{command} rollback` to undo {staged.phase})")
    if vc.distro is not Distro.K8S:
        lines.append(f"note: distro {vc.distro.value}: rotate and rotate-ca support only the k8s distro")
    if not vc.is_running:
        lines.append(f"note: vCluster status is {vc.status or 'unknown (no pods)'}")
    return lines


# ------------------------------------------------------------------------------------------ run
def execute(
    deps: Deps,
    *,
    names: Sequence[str],
    all_namespaces: bool = False,
    warn_within: str = "90d",
    output: OutputFormat = OutputFormat.TABLE,
    live: bool = False,
    vcluster_server: str | None = None,
    selector: str = "",
    prometheus: bool = False,
    emit_events: bool = False,
) -> int:
    """Run `check` and return its exit code (0, CHECK_EXPIRING or CHECK_EXPIRED; 0 with `prometheus`
    once everything was read); other failures raise VcertsError. Defaults are the command line's."""
    from kubectl_vcerts.kube.discovery import KubeReader, open_reader
    from kubectl_vcerts.rotation.check import check_all, check_vcluster

    window = parse_warn_within(warn_within)
    names = list(dict.fromkeys(names))
    if selector:
        check_selector(selector)
    if live and (prometheus or emit_events or selector):
        raise UsageError("--live compares one vCluster's served certificate; it goes with neither -o "
                         "prometheus, --emit-events nor -l", hint="run `check NAME --live` on its own")
    # Reading needs no kubernetes client for plain kubeconfigs (fast start); injected connections win.
    reader = open_reader(deps.target, deps.session) if deps.connect is None else KubeReader(deps.session())
    namespace = reader.default_namespace
    try:
        wide = output is OutputFormat.WIDE
        if prometheus:
            started = time.monotonic()
            summary = check_all(reader, namespace=None if all_namespaces else namespace, names=names,
                                now=deps.now(), warn_within=window, selector=selector)
            from kubectl_vcerts.cli.prometheus import render

            echo(deps, render(summary, seconds=time.monotonic() - started).rstrip("\n"))
            if emit_events:
                _emit_events(deps, summary.rows)
            return 0
        if len(names) == 1 and not all_namespaces and not selector:
            with spinner(deps, f"reading {contract.certs_secret_name(names[0])}"):
                report = check_vcluster(
                    reader, name=names[0], namespace=namespace, now=deps.now(), warn_within=window
                )
            served = None
            if live:
                served = run_live(deps, namespace=namespace, name=names[0], vcluster_server=vcluster_server)
            if output in (OutputFormat.JSON, OutputFormat.YAML):
                emit_document(deps, apply_live(check_document(report), served), output)
            else:
                headers, rows, styles = check_rows(report, wide=wide)
                if rows:
                    print_table(deps, headers, rows, styles)
                for line in notes(report):
                    echo(deps, line, err=True)
                for line in live_lines(served) if served is not None else []:
                    echo(deps, line)
            code = live_exit_code(exit_code_for(report.worst), served)
            if emit_events:
                _emit_events(deps, [SummaryRow(report.vcluster, report.secret_name, report.pki)])
        else:
            if live:
                raise UsageError("--live checks one vCluster", hint="name exactly one vCluster, without -A")
            with spinner(deps, "reading vClusters"):
                summary = check_all(
                    reader,
                    namespace=None if all_namespaces else namespace,
                    names=names,
                    now=deps.now(),
                    warn_within=window,
                    selector=selector,
                )
            if output in (OutputFormat.JSON, OutputFormat.YAML):
                emit_document(deps, summary_document(summary), output)
            elif summary.rows:
                headers, rows, styles = summary_rows(summary, wide=wide)
                print_table(deps, headers, rows, styles)
            else:
                where = "any namespace" if all_namespaces else f"namespace {namespace}"
                where += f" matching {selector}" if selector else ""
                echo(deps, f"No vClusters found in {where}.", err=True)
            code = exit_code_for(summary.worst)
            if emit_events:
                _emit_events(deps, summary.rows)
    finally:
        reader.close()
    return int(code)


def _emit_events(deps: Deps, rows: Sequence[SummaryRow]) -> None:
    """--emit-events: after the output, so that a refused Event (exit 16) never hides what was read."""
    import socket

    from kubectl_vcerts.kube.events import KubeEventRecorder
    from kubectl_vcerts.rotation.expiry_events import record_expiry_events

    recorder = KubeEventRecorder(deps.session(), instance=socket.gethostname())
    created = record_expiry_events(recorder, rows, now=deps.now())
    if created:
        echo(deps, f"recorded {created} Warning Event(s) (kubectl get events)", err=True)
