"""`check NAME --live`: fetch the certificate the virtual API server serves and compare it with NAME-certs.

Used by cli.checking (the --live and --vcluster-server options are declared in cli/check.py). The
address is `--vcluster-server` when given, else the server vCluster wrote into vc-NAME (kube.virtual).
JSON: the check document gains
  live {server, source, servedFingerprint, servedSubject, servedIssuer, servedNotAfter, chainsToStoredCa,
        inSecret, drift, findings [{reason, message}]}
Drift (pki.served.DRIFT_REASONS) makes `check` exit 4 like an invalid certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubectl_vcerts.cli.render import rfc3339

if TYPE_CHECKING:  # pki.served is imported only when --live runs: `check` starts faster without it
    from kubectl_vcerts.cli.deps import Deps
    from kubectl_vcerts.pki.served import LiveReport


def live_report(
    deps: Deps, *, namespace: str, name: str, data: Mapping[str, bytes], vcluster_server: str | None
) -> LiveReport:
    from kubectl_vcerts.kube.virtual import served_certificate
    from kubectl_vcerts.pki.served import compare_served

    served, server, source = served_certificate(
        deps.session(), namespace=namespace, vcluster=name, server=vcluster_server
    )
    return compare_served(served, data, server=server, source=source, now=deps.now())


def live_document(report: LiveReport) -> dict[str, Any]:
    return {
        "server": report.server,
        "source": report.source,
        "servedFingerprint": report.served_fingerprint,
        "servedSubject": report.served_subject,
        "servedIssuer": report.served_issuer,
        "servedNotAfter": rfc3339(report.served_not_after),
        "chainsToStoredCa": report.chains_to_stored_ca,
        "inSecret": report.in_secret,
        "drift": report.drift,
        "findings": [{"reason": f.reason, "message": f.message} for f in report.findings],
    }


def live_lines(report: LiveReport) -> list[str]:
    state = "DRIFT" if report.drift else "OK"
    lines = [
        f"live: {report.server} (from {report.source}) serves {report.served_subject} issued by "
        f"{report.served_issuer}, {report.served_fingerprint}: {state}"
    ]
    lines += [f"  {'drift' if f.drift else 'note'}: {f.message} ({f.reason})" for f in report.findings]
    return lines


def read_data(deps: Deps, *, namespace: str, name: str) -> dict[str, bytes]:
    from kubectl_vcerts import contract
    from kubectl_vcerts.kube.secrets import get_secret

    return dict(get_secret(deps.session(), namespace=namespace, name=contract.certs_secret_name(name)).data)


def run_live(deps: Deps, *, namespace: str, name: str, vcluster_server: str | None) -> LiveReport:
    data = read_data(deps, namespace=namespace, name=name)
    return live_report(deps, namespace=namespace, name=name, data=data, vcluster_server=vcluster_server)


def apply_live(doc: dict[str, Any], report: LiveReport | None) -> dict[str, Any]:
    """The check document with its `live` section (unchanged without --live)."""
    if report is not None:
        doc["live"] = live_document(report)
    return doc


def live_exit_code(code: int, report: LiveReport | None) -> int:
    from kubectl_vcerts.errors import ExitCode

    return max(code, int(ExitCode.CHECK_EXPIRED)) if report is not None and report.drift else code
