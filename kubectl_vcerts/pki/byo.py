"""Bring-your-own CA: validate a CA certificate (or bundle, CA first) and key supplied by the user.

vCluster's own ``rotate-ca`` silently replaces a supplied CA (loft-sh/vcluster#4131); we either use it
exactly or refuse it with a reason. Accepted: the first certificate is a self-signed CA (BasicConstraints
CA:TRUE, KeyUsage with keyCertSign), currently valid, RSA >= 2048 bits or ECDSA, and the key belongs to
it. Intermediates are refused: vCluster publishes only the first certificate of ca.crt (server-ca.crt,
`kube-root-ca.crt`, the kubeconfigs' CA data), and OpenSSL- and Python-based clients do not accept an
intermediate alone as a trust anchor, so the trust vCluster hands out would work for Go clients only.

Imports only the standard library, ``cryptography`` and the errors module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kubectl_vcerts.errors import InvalidInputError
from kubectl_vcerts.pki import parse
from kubectl_vcerts.pki.parse import (
    PrivateKey,
    fingerprint,
    key_matches,
    load_certificates,
    load_private_key,
    public_key_of,
)

_HINT = "supply a CA certificate (PEM, CA first in a bundle) and its unencrypted private key"


@dataclass(frozen=True)
class CaMaterial:
    """A validated CA: ``certificate`` signs; ``bundle_pem`` (CA first) becomes ca.crt."""

    certificate: x509.Certificate
    bundle_pem: bytes
    key: PrivateKey = field(repr=False)
    fingerprint: str


def load_ca_material(cert_pem: bytes, key_pem: bytes, *, now: datetime) -> CaMaterial:
    """Parse and validate a user-supplied CA; ``InvalidInputError`` saying what is wrong."""
    try:
        chain = load_certificates(cert_pem)
    except ValueError as exc:
        raise InvalidInputError(f"the supplied CA certificate cannot be read: {exc}", hint=_HINT) from exc
    try:
        key = load_private_key(key_pem)
    except ValueError as exc:
        raise InvalidInputError(f"the supplied CA key cannot be read: {exc}", hint=_HINT) from exc
    ca = chain[0]
    name = ca.subject.rfc4514_string() or "(empty subject)"
    try:
        public = public_key_of(ca)
    except ValueError as exc:
        raise InvalidInputError(f"the supplied CA {name} has an unsupported key: {exc}",
                                hint="use an RSA (>= 2048 bits) or ECDSA CA") from exc
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise InvalidInputError(f"the supplied CA {name} has a {type(public).__name__}, not RSA or ECDSA",
                                hint="use an RSA (>= 2048 bits) or ECDSA CA")
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        raise InvalidInputError(f"the supplied CA {name} has a {public.key_size}-bit RSA key",
                                hint="use an RSA key of at least 2048 bits or ECDSA")
    try:
        bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise InvalidInputError(
            f"the supplied certificate {name} is not a CA (BasicConstraints CA:TRUE missing)", hint=_HINT)
    try:
        ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is None or not ku.key_cert_sign:
        raise InvalidInputError(
            f"the supplied CA {name} may not sign certificates (KeyUsage keyCertSign missing)", hint=_HINT)
    if now > ca.not_valid_after_utc:
        raise InvalidInputError(f"the supplied CA {name} expired on {ca.not_valid_after_utc:%Y-%m-%d}",
                                hint="supply a CA that is currently valid")
    if now < ca.not_valid_before_utc:
        raise InvalidInputError(
            f"the supplied CA {name} is not valid before {ca.not_valid_before_utc:%Y-%m-%d}",
            hint="supply a CA that is currently valid")
    if not key_matches(public, key):
        raise InvalidInputError(f"the supplied key does not belong to the CA {name}",
                                hint="pass the private key of the first certificate in the bundle")
    if ca.issuer != ca.subject or not parse.signed_by(ca, ca):
        issuer = ca.issuer.rfc4514_string() or "(empty issuer)"
        raise InvalidInputError(
            f"the supplied CA {name} is an intermediate (issued by {issuer}): vCluster would publish it "
            "alone as server-ca.crt, kube-root-ca.crt and in kubeconfigs, which OpenSSL- and Python-based "
            "clients (curl, requests) refuse without its root",
            hint="supply a self-signed root CA certificate and its key, or let rotate-ca generate one",
        )
    bundle = b"".join(parse.cert_pem(c) for c in chain)
    return CaMaterial(certificate=ca, bundle_pem=bundle, key=key, fingerprint=fingerprint(ca))
