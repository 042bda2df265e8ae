"""`pki.served.compare_served`: the served certificate against NAME-certs, one case per reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from kubectl_vcerts.pki.served import compare_served

NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, key: Key, issuer: tuple[x509.Name, Key] | None, *, days: int = 365, ca: bool = False
) -> x509.Certificate:
    issuer_name, issuer_key = issuer if issuer else (_name(cn), key)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=400))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA = _cert("kubernetes", CA_KEY, None, days=3650, ca=True)
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_CA = _cert("kubernetes", OTHER_KEY, None, days=3650, ca=True)
LEAF_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
STORED = _cert("kube-apiserver", LEAF_KEY, (CA.subject, CA_KEY))
DATA = {"ca.crt": CA.public_bytes(Encoding.PEM), "apiserver.crt": STORED.public_bytes(Encoding.PEM)}


@pytest.mark.parametrize(
    ("served", "reasons", "drift"),
    [
        pytest.param(STORED, [], False, id="the secret's apiserver certificate being served is no drift"),
        pytest.param(
            _cert("kube-apiserver", LEAF_KEY, (CA.subject, CA_KEY)),
            ["served-cert-not-in-secret"],
            True,
            id="an older apiserver certificate of the same CA is drift after a renewal without restart",
        ),
        pytest.param(
            _cert("kube-apiserver", ec.generate_private_key(ec.SECP256R1()), (CA.subject, CA_KEY)),
            ["served-by-syncer"],
            False,
            id="the syncer's own ECDSA certificate of the stored CA is no drift",
        ),
        pytest.param(
            _cert("kube-apiserver", LEAF_KEY, (OTHER_CA.subject, OTHER_KEY)),
            ["served-chain-untrusted"],
            True,
            id="a certificate of another CA is drift after a CA change without restart",
        ),
        pytest.param(
            _cert("kube-apiserver", LEAF_KEY, (CA.subject, CA_KEY), days=-1),
            ["served-cert-not-in-secret", "served-cert-expired"],
            True,
            id="an expired served certificate is drift",
        ),
    ],
)
def test_served_certificate_against_the_secret(
    served: x509.Certificate, reasons: list[str], drift: bool
) -> None:
    report = compare_served(
        served.public_bytes(Encoding.DER), DATA, server="https://x:1", source="vc-x", now=NOW
    )
    assert [f.reason for f in report.findings] == reasons
    assert report.drift is drift
    assert report.served_subject == "kube-apiserver" and report.served_issuer == "kubernetes"
