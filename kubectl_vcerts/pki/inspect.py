"""Inspect a vCluster PKI (the data of ``NAME-certs``) without ever raising on bad data.

Every certificate — the five CAs, the seven leaves and the client certificates embedded in the three
kubeconfigs — becomes a :class:`CertInfo` row; whatever is wrong becomes a :class:`Finding` with a
stable ``reason`` (shown in JSON output, matched by scripts; never rename one):

===========================  ===================================================================
reason                       meaning
===========================  ===================================================================
``missing``                  a catalogue key is absent from the data
``empty``                    the key is present but its value is empty
``unparseable``              no parseable PEM certificate / private key / public key in the value
``kubeconfig-invalid``       a kubeconfig without server, CA data, client certificate or key
``expired``                  NotAfter is in the past
``not-yet-valid``            NotBefore is in the future
``expiring``                 NotAfter is within ``warn_within`` (vCluster >= 0.33 re-issues leaves
                             with <= 90 days left at start-up)
``chain-broken``             not signed by the CA that should sign it (name or signature)
``key-mismatch``             the private key does not belong to the certificate (or sa.key to sa.pub)
``not-a-ca``                 a CA entry without BasicConstraints CA:TRUE or without keyCertSign
``ca-copy-mismatch``         client-ca differs from ca (server-ca may differ: that is the k3s split,
                             which vCluster >= 0.35 recognises by content alone, as we do)
``kubeconfig-ca-mismatch``   a kubeconfig does not trust the CA that signs apiserver.crt
===========================  ===================================================================

Rows exist only for certificates that parse; missing or corrupt entries appear as findings only.
A row's status is its time status (OK, EXPIRING, EXPIRED, NOT YET VALID), or INVALID when it does
not verify against its CA, its key does not match or a CA cannot sign. ``PkiReport.worst`` is the
worst status over all rows and findings (structural findings count as INVALID).

Imports only the standard library, ``cryptography``, PyYAML (kubeconfigs) and sibling pki modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from cryptography import x509

from kubectl_vcerts.pki.catalogue import CATALOGUE, CatalogueEntry, Kind
from kubectl_vcerts.pki.kubeconfig import KubeconfigParts, parse_kubeconfig
from kubectl_vcerts.pki.layout import serving_ca_key
from kubectl_vcerts.pki.parse import (
    PrivateKey,
    common_name,
    fingerprint,
    first_certificate,
    is_ca,
    key_matches,
    load_certificates,
    load_private_key,
    load_verification_keys,
    organizations,
    public_key_of,
    signed_by,
)

_T = TypeVar("_T")


class Status(StrEnum):
    OK = "OK"
    EXPIRING = "EXPIRING"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT YET VALID"
    INVALID = "INVALID"


_SEVERITY = {Status.OK: 0, Status.EXPIRING: 1, Status.NOT_YET_VALID: 2, Status.EXPIRED: 3, Status.INVALID: 4}


def worst_of(statuses: Sequence[Status]) -> Status:
    """The most severe status (OK for none): the one order of severity, for rows, summaries and exits."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)


class Reason(StrEnum):
    """The stable finding reasons (see the module docstring)."""

    MISSING = "missing"
    EMPTY = "empty"
    UNPARSEABLE = "unparseable"
    KUBECONFIG_INVALID = "kubeconfig-invalid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRING = "expiring"
    CHAIN_BROKEN = "chain-broken"
    KEY_MISMATCH = "key-mismatch"
    NOT_A_CA = "not-a-ca"
    CA_COPY_MISMATCH = "ca-copy-mismatch"
    KUBECONFIG_CA_MISMATCH = "kubeconfig-ca-mismatch"


_REASON_STATUS = {Reason.EXPIRED: Status.EXPIRED, Reason.NOT_YET_VALID: Status.NOT_YET_VALID,
                  Reason.EXPIRING: Status.EXPIRING}
# An entry that cannot be used at all, as opposed to one that is out of date or signed by another CA
# (a renewal re-issues those; a restore source with them is still complete).
UNUSABLE_REASONS = frozenset({Reason.MISSING, Reason.EMPTY, Reason.UNPARSEABLE, Reason.KUBECONFIG_INVALID,
                              Reason.NOT_A_CA})


@dataclass(frozen=True)
class Finding:
    secret_key: str
    reason: str  # a Reason value
    message: str

    @property
    def status(self) -> Status:
        for reason, status in _REASON_STATUS.items():
            if self.reason == reason:
                return status
        return Status.INVALID


@dataclass(frozen=True)
class CertInfo:
    secret_key: str
    path: str
    filename: str
    kind: Kind
    subject_cn: str
    subject_o: str  # comma-separated O values, "" when none
    issuer_cn: str
    not_before: datetime
    not_after: datetime
    status: Status
    remaining: timedelta  # not_after - now; negative once expired
    verifies: bool | None  # None: the signing CA is missing or corrupt
    key_matches: bool | None  # None: the private key is missing or corrupt
    fingerprint: str
    findings: tuple[Finding, ...]
    issuer_key: str | None = None  # secret key of the CA it was checked against


@dataclass(frozen=True)
class PkiReport:
    certificates: tuple[CertInfo, ...]
    findings: tuple[Finding, ...]
    worst: Status
    ca_fingerprint: str | None
    ca_not_after: datetime | None
    earliest_leaf_not_after: datetime | None
    split_ca: bool = False  # server-ca differs from ca (k3s-migrated layout)


def _load_key_for_matching(data: bytes) -> PrivateKey:
    """Inspection only compares public halves; skipping the RSA self-check makes it 10x faster."""
    return load_private_key(data, validate=False)


# --- small named checks ------------------------------------------------------------------------

def check_validity(key: str, cert: x509.Certificate, *, now: datetime,
                   warn_within: timedelta) -> Finding | None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > end:
        return Finding(key, Reason.EXPIRED, f"{key} expired on {end:%Y-%m-%d %H:%M:%S} UTC")
    if now < start:
        return Finding(key, Reason.NOT_YET_VALID, f"{key} is not valid before {start:%Y-%m-%d %H:%M:%S} UTC")
    if end - now <= warn_within:
        return Finding(key, Reason.EXPIRING, f"{key} expires on {end:%Y-%m-%d %H:%M:%S} UTC, "
                                             f"within {warn_within.days} days")
    return None


def check_chain(key: str, cert: x509.Certificate, ca: x509.Certificate, ca_key: str) -> Finding | None:
    if signed_by(cert, ca):
        return None
    return Finding(key, Reason.CHAIN_BROKEN, f"{key} is not signed by {ca_key}")


def check_key(key: str, cert: x509.Certificate, private: PrivateKey, key_name: str) -> Finding | None:
    try:
        matches = key_matches(public_key_of(cert), private)
    except ValueError:
        matches = False
    return None if matches else Finding(key, Reason.KEY_MISMATCH, f"{key_name} does not belong to {key}")


def check_can_sign(key: str, cert: x509.Certificate) -> Finding | None:
    if is_ca(cert):
        return None
    return Finding(key, Reason.NOT_A_CA, f"{key} is not a CA certificate (CA:TRUE with keyCertSign)")


# --- the inspection ----------------------------------------------------------------------------

_COPIES = ("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key")


def _consequence(key: str, *, empty: bool) -> str:
    """What vCluster's start-up does about an empty or absent entry (pkg/certs/ensure.go)."""
    if empty:
        fix = "; `kubectl vcerts rotate` writes a copy of ca" if key in _COPIES else ""
        return f": vCluster refuses to start (\"secret is missing {key}\"){fix}"
    if key in _COPIES:
        return (": vCluster copies ca there only when /data/pki has no such file, so on a persistent "
                "volume an old copy stays in use; `kubectl vcerts rotate` writes the copy")
    return ""


class _Inspection:
    def __init__(self, data: Mapping[str, bytes], now: datetime, warn_within: timedelta) -> None:
        self.data, self.now, self.warn_within = data, now, warn_within
        self.findings: list[Finding] = []
        self.rows: list[CertInfo] = []
        self.certs: dict[str, x509.Certificate] = {}  # secret key → first certificate
        self.keys: dict[str, PrivateKey] = {}

    def present(self, key: str) -> bytes | None:
        value = self.data.get(key)
        if value is None:
            message = f"{key} is missing" + _consequence(key, empty=False)
            self.findings.append(Finding(key, Reason.MISSING, message))
            return None
        if not value.strip():
            message = f"{key} is empty" + _consequence(key, empty=True)
            self.findings.append(Finding(key, Reason.EMPTY, message))
            return None
        return value

    def parse(self, key: str, loader: Callable[[bytes], _T], what: str) -> _T | None:
        raw = self.present(key)
        if raw is None:
            return None
        try:
            return loader(raw)
        except ValueError as exc:
            self.findings.append(Finding(key, Reason.UNPARSEABLE, f"{key} is not a {what} ({exc})"))
            return None

    def load_pairs(self) -> None:
        for item in CATALOGUE:
            if item.kind in (Kind.CA, Kind.LEAF):
                cert = self.parse(item.secret_key, first_certificate, "PEM certificate")
                if cert is not None:
                    self.certs[item.secret_key] = cert
            elif item.kind is Kind.KEY:
                key = self.parse(item.secret_key, _load_key_for_matching, "PEM private key")
                if key is not None:
                    self.keys[item.secret_key] = key

    def row(self, item: CatalogueEntry, secret_key: str, cert: x509.Certificate, *,
            issuer_key: str | None, issuer: x509.Certificate | None, private: PrivateKey | None,
            key_name: str, extra: list[Finding]) -> None:
        found: list[Finding] = list(extra)
        time_finding = check_validity(secret_key, cert, now=self.now, warn_within=self.warn_within)
        if time_finding and item.kind is Kind.KUBECONFIG and time_finding.reason != Reason.NOT_YET_VALID:
            # vCluster's start-up renewal and cert watcher look at .crt entries only (ensure.go)
            time_finding = replace(time_finding, message=time_finding.message + "; vCluster never renews "
                                   "kubeconfig client certificates, `kubectl vcerts rotate` does")
        if time_finding:
            found.append(time_finding)
        verifies: bool | None = None
        if issuer is not None and issuer_key is not None:
            chain = check_chain(secret_key, cert, issuer, issuer_key)
            verifies = chain is None
            if chain:
                found.append(chain)
        matches: bool | None = None
        if private is not None:
            mismatch = check_key(secret_key, cert, private, key_name)
            matches = mismatch is None
            if mismatch:
                found.append(mismatch)
        status = time_finding.status if time_finding else Status.OK
        if any(f.status is Status.INVALID for f in found):
            status = Status.INVALID
        self.findings.extend(found)
        self.rows.append(CertInfo(
            secret_key=secret_key, path=item.path, filename=item.filename, kind=item.kind,
            subject_cn=common_name(cert.subject), subject_o=",".join(organizations(cert.subject)),
            issuer_cn=common_name(cert.issuer), not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc, status=status, remaining=cert.not_valid_after_utc - self.now,
            verifies=verifies, key_matches=matches, fingerprint=fingerprint(cert), findings=tuple(found),
            issuer_key=issuer_key,
        ))

    def ca_rows(self, item: CatalogueEntry) -> None:
        key = item.secret_key
        cert = self.certs.get(key)
        if cert is None:
            return
        extra: list[Finding] = []
        can_sign = check_can_sign(key, cert)
        if can_sign:
            extra.append(can_sign)
        if item.copy_of is not None:
            extra.extend(self.copy_findings(item, cert))
        issuer, issuer_key = self.ca_issuer(key, cert)
        self.row(item, key, cert, issuer_key=issuer_key, issuer=issuer, private=self.keys.get(str(item.pair)),
                 key_name=str(item.pair), extra=extra)

    def ca_issuer(self, key: str, cert: x509.Certificate) -> tuple[x509.Certificate | None, str | None]:
        """Self-signed CAs verify against themselves; a BYO intermediate, or the new CA signed by the old
        one under the same name (a staged rotation's switch phase), against the bundle cert that signed
        it (the first one of its issuer's name when none did: that is the one reported)."""
        if cert.issuer == cert.subject and signed_by(cert, cert):
            return cert, key
        try:
            bundle = load_certificates(self.data.get(key, b""))
        except ValueError:
            return (cert, key) if cert.issuer == cert.subject else (None, None)
        parents = [c for c in bundle[1:] if c.subject == cert.issuer]
        signers = [c for c in parents if signed_by(cert, c)]
        if signers or parents:
            return (signers or parents)[0], key
        return (cert, key) if cert.issuer == cert.subject else (None, None)

    def copy_findings(self, item: CatalogueEntry, cert: x509.Certificate) -> list[Finding]:
        ca = self.certs.get("ca.crt")
        if ca is None or cert == ca:
            return []
        if item.path == "server-ca.crt":
            # The k3s split (layout.is_split, vCluster's HasSplitClusterSigningCA): server-ca is the
            # serving CA. It is judged by what it must sign and be trusted by (apiserver.crt, the
            # kubeconfigs), whether or not the migration annotation is there: vCluster never reads it.
            return []
        return [Finding(item.secret_key, Reason.CA_COPY_MISMATCH,
                        f"{item.secret_key} differs from ca.crt (vCluster expects a copy; the apiserver "
                        "would refuse the component certificates signed by ca)")]

    def leaf_rows(self, item: CatalogueEntry) -> None:
        key = item.secret_key
        cert = self.certs.get(key)
        if cert is None:
            return
        issuer_key = serving_ca_key(self.data) if key == "apiserver.crt" else str(item.issuer)
        self.row(item, key, cert, issuer_key=issuer_key, issuer=self.certs.get(issuer_key),
                 private=self.keys.get(str(item.pair)), key_name=str(item.pair), extra=[])

    def kubeconfig_rows(self, item: CatalogueEntry) -> None:
        key = item.secret_key
        raw = self.present(key)
        if raw is None:
            return
        try:
            parts: KubeconfigParts = parse_kubeconfig(raw)
        except ValueError as exc:
            self.findings.append(Finding(key, Reason.KUBECONFIG_INVALID,
                                         f"{key} is not a usable kubeconfig ({exc})"))
            return
        try:
            cert = first_certificate(parts.client_cert_pem)
            private = _load_key_for_matching(parts.client_key_pem)
        except ValueError as exc:
            self.findings.append(Finding(key, Reason.KUBECONFIG_INVALID,
                                         f"{key} has an unusable client certificate or key ({exc})"))
            return
        extra: list[Finding] = []
        serving_key = serving_ca_key(self.data)
        serving = self.certs.get(serving_key)
        try:
            trusted = first_certificate(parts.ca_pem)
        except ValueError:
            extra.append(Finding(key, Reason.KUBECONFIG_INVALID,
                                 f"{key} has unparseable certificate-authority-data"))
        else:
            if serving is not None and trusted != serving:
                extra.append(Finding(key, Reason.KUBECONFIG_CA_MISMATCH,
                                     f"{key} trusts a different CA than {serving_key}"))
        issuer_key = str(item.issuer)
        self.row(item, key, cert, issuer_key=issuer_key, issuer=self.pool_issuer(issuer_key, cert),
                 private=private, key_name=f"the client key in {key}", extra=extra)

    def pool_issuer(self, issuer_key: str, cert: x509.Certificate) -> x509.Certificate | None:
        """The certificate of the issuer's bundle that signed a client certificate (vCluster checks those
        against every certificate of client-ca.crt, a copy of ca.crt: a staged rotation's trust phase
        issues admin.conf's from the second); the first one when none did."""
        first = self.certs.get(issuer_key)
        if first is None or signed_by(cert, first):
            return first
        try:
            bundle = load_certificates(self.data.get(issuer_key, b""))
        except ValueError:
            return first
        return next((c for c in bundle[1:] if signed_by(cert, c)), first)

    def service_account(self) -> None:
        private = self.parse("sa.key", _load_key_for_matching, "PEM private key")
        public = self.parse("sa.pub", load_verification_keys, "PEM public key file")
        if private is not None and public is not None and not any(key_matches(k, private) for k in public):
            self.findings.append(Finding("sa.pub", Reason.KEY_MISMATCH, "sa.pub does not belong to sa.key"))


def inspect_pki(data: Mapping[str, bytes], *, now: datetime,
                warn_within: timedelta = timedelta(days=90)) -> PkiReport:
    """Describe every certificate of ``data`` and list what is wrong; never raises on bad data."""
    run = _Inspection(data, now, warn_within)
    run.load_pairs()
    checks = {Kind.CA: run.ca_rows, Kind.LEAF: run.leaf_rows, Kind.KUBECONFIG: run.kubeconfig_rows}
    for item in CATALOGUE:
        check = checks.get(item.kind)
        if check is None:
            continue
        try:
            check(item)
        except Exception as exc:  # the contract is "never raises on bad data"
            # Certificates are parsed eagerly in parse.load_certificates, so this is a last resort for
            # a malformed field the parser only decodes on access; the name of the error is enough.
            run.findings.append(Finding(item.secret_key, Reason.UNPARSEABLE,
                                        f"{item.secret_key} could not be inspected ({type(exc).__name__})"))
    run.service_account()
    ca = run.certs.get("ca.crt")
    leaf_ends = [r.not_after for r in run.rows if r.kind in (Kind.LEAF, Kind.KUBECONFIG)]
    statuses = [r.status for r in run.rows] + [f.status for f in run.findings]
    return PkiReport(
        certificates=tuple(run.rows), findings=tuple(run.findings), worst=worst_of(statuses),
        ca_fingerprint=fingerprint(ca) if ca is not None else None,
        ca_not_after=ca.not_valid_after_utc if ca is not None else None,
        earliest_leaf_not_after=min(leaf_ends, default=None),
        split_ca=serving_ca_key(data) == "server-ca.crt",
    )
