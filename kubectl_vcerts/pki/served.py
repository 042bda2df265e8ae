"""What the virtual API server actually serves, compared with what `NAME-certs` holds (check --live).

No anchor checks this: a secret renewed while the pods were not restarted still serves the old
certificate, and after a CA change without restart the served certificate does not chain to the stored
CA. Reasons (stable strings in JSON):
  served-chain-untrusted     the served certificate is not signed by a stored serving CA
                             (server-ca.crt, = ca.crt unless split; a bundle is a pool)
  served-cert-not-in-secret  it is signed by that CA but is not the secret's apiserver.crt (the secret
                             was renewed and the pods were not restarted)
  served-cert-expired        the served certificate has expired
  served-cert-not-yet-valid  its NotBefore is in the future
Not drift (informational): served-by-syncer — vCluster's syncer on port 8443 serves its own in-memory
ECDSA certificate signed by server-ca (loft-sh/vcluster `pkg/server/cert/cert.go`), which is never in the
secret; it is checked
for the chain only.

Only the leaf is compared: Python 3.11's ssl module exposes the peer's leaf, not the chain it sent.
Pure: DER/PEM bytes and `now` in, a frozen report out. Imports cryptography and pki only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubectl_vcerts.pki.layout import to_files
from kubectl_vcerts.pki.parse import common_name, fingerprint, signed_by

UNTRUSTED = "served-chain-untrusted"
NOT_IN_SECRET = "served-cert-not-in-secret"  # noqa: S105 - a reason, not a secret
EXPIRED = "served-cert-expired"
NOT_YET_VALID = "served-cert-not-yet-valid"
BY_SYNCER = "served-by-syncer"
DRIFT_REASONS = frozenset({UNTRUSTED, NOT_IN_SECRET, EXPIRED, NOT_YET_VALID})


@dataclass(frozen=True)
class LiveFinding:
    reason: str
    message: str

    @property
    def drift(self) -> bool:
        return self.reason in DRIFT_REASONS


@dataclass(frozen=True)
class LiveReport:
    server: str
    source: str  # where the address came from: "vc-NAME" or "--vcluster-server"
    served_fingerprint: str
    served_subject: str
    served_issuer: str
    served_not_after: datetime
    chains_to_stored_ca: bool
    in_secret: bool
    findings: tuple[LiveFinding, ...]

    @property
    def drift(self) -> bool:
        return any(f.drift for f in self.findings)


def _cn(name: x509.Name) -> str:
    return common_name(name) or name.rfc4514_string()


def compare_served(
    served_der: bytes, data: Mapping[str, bytes], *, server: str, source: str, now: datetime
) -> LiveReport:
    """Compare the served leaf certificate (DER) with the stored PKI (NAME-certs data)."""
    served = x509.load_der_x509_certificate(served_der)
    files = to_files(data)
    findings: list[LiveFinding] = []
    try:
        pool = x509.load_pem_x509_certificates(files.get("server-ca.crt") or b"")
    except ValueError:
        pool = []
    # any certificate of server-ca.crt, as the syncer's own check and every client's (a staged CA
    # rotation's bundle holds the old and the new CA; pods not yet restarted serve the old one's)
    chains = any(signed_by(served, ca) for ca in pool)
    try:
        stored_leaf = x509.load_pem_x509_certificate(data.get("apiserver.crt") or b"")
    except ValueError:
        stored_leaf = None
    in_secret = stored_leaf is not None and stored_leaf == served
    if not chains:
        findings.append(
            LiveFinding(
                UNTRUSTED,
                f"the certificate served at {server} is not signed by the CA in "
                "the secret (CA changed without restarting the pods?)",
            )
        )
    elif not in_secret:
        by_syncer = isinstance(served.public_key(), ec.EllipticCurvePublicKey)
        if by_syncer:
            findings.append(
                LiveFinding(
                    BY_SYNCER, "served by vCluster's syncer (its own certificate, signed by the stored CA)"
                )
            )
        else:
            findings.append(
                LiveFinding(
                    NOT_IN_SECRET,
                    f"the certificate served at {server} is not the secret's "
                    "apiserver.crt (renewed without restarting the pods?)",
                )
            )
    if served.not_valid_after_utc <= now:
        findings.append(LiveFinding(EXPIRED, f"the certificate served at {server} expired"))
    elif served.not_valid_before_utc > now:
        findings.append(LiveFinding(NOT_YET_VALID, f"the certificate served at {server} is not valid yet"))
    return LiveReport(
        server=server,
        source=source,
        served_fingerprint=fingerprint(served),
        served_subject=_cn(served.subject),
        served_issuer=_cn(served.issuer),
        served_not_after=served.not_valid_after_utc,
        chains_to_stored_ca=chains,
        in_secret=in_secret,
        findings=tuple(findings),
    )
