"""Issue certificates by cloning an existing one: new key, serial and validity, everything else kept.

The profile of a renewed certificate is the certificate it replaces (kubeadm's renewal manager does the
same): subject (exact RDN sequence, so CN and O survive), issuer = the signing CA's subject, and every
extension copied with its criticality — SANs in their order, key usage, extended key usage, basic
constraints. Only the key identifiers are recomputed: SubjectKeyIdentifier for the new key (when the
old certificate had one) and AuthorityKeyIdentifier from the signing CA (when the old one had one), as
Go's x509 does. New keys have the type and size of the old ones (RSA n bits, ECDSA same curve).

Serials are random in [1, 2^63 - 1) like kubeadm; NotBefore is backdated five minutes
(kubeadm ``CertificateBackdate``). Imports only the standard library and ``cryptography``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kubectl_vcerts.pki.parse import PrivateKey, PublicKey, public_key_of

BACKDATE = timedelta(minutes=5)
_RSA_EXPONENT = 65537


def random_serial() -> int:
    return secrets.randbelow(2**63 - 2) + 1


def new_key_like(public: PublicKey) -> PrivateKey:
    """A fresh private key of the same algorithm and size/curve as ``public``."""
    if isinstance(public, rsa.RSAPublicKey):
        return rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=public.key_size)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(public.curve)
    return ed25519.Ed25519PrivateKey.generate()


def _hash_for(signer: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """Go's choice: SHA-256 for RSA and P-256, SHA-384 for P-384, SHA-512 for P-521; none for Ed25519."""
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        if isinstance(signer.curve, ec.SECP384R1):
            return hashes.SHA384()
        if isinstance(signer.curve, ec.SECP521R1):
            return hashes.SHA512()
        return hashes.SHA256()
    if isinstance(signer, rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None


def _authority_key_id(issuer: x509.Certificate | None,
                      issuer_public: PublicKey) -> x509.AuthorityKeyIdentifier:
    if issuer is not None:
        try:
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            pass
        else:
            return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public)


def clone_certificate(old: x509.Certificate, *, public_key: PublicKey, signer: PrivateKey,
                      issuer: x509.Certificate | None, not_before: datetime,
                      not_after: datetime) -> x509.Certificate:
    """Re-issue ``old`` for ``public_key``, signed by ``signer``.

    ``issuer`` is the signing CA certificate, or None for a self-signed certificate (a CA clone).
    """
    issuer_public = public_key if issuer is None else public_key_of(issuer)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext in old.extensions:
        if isinstance(ext.value, x509.SubjectKeyIdentifier):
            ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
            builder = builder.add_extension(ski, ext.critical)
        elif isinstance(ext.value, x509.AuthorityKeyIdentifier):
            if issuer is None:
                value = x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
            else:
                value = _authority_key_id(issuer, issuer_public)
            builder = builder.add_extension(value, ext.critical)
        else:
            builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(signer, _hash_for(signer))


def renew(old: x509.Certificate, *, signer: PrivateKey, issuer: x509.Certificate | None, now: datetime,
          validity: timedelta, not_before: datetime | None = None) -> tuple[x509.Certificate, PrivateKey]:
    """New key + clone of ``old``; ``not_before`` defaults to ``now`` minus the kubeadm backdate."""
    key = signer if issuer is None else new_key_like(public_key_of(old))
    start = now - BACKDATE if not_before is None else not_before
    cert = clone_certificate(old, public_key=key.public_key(), signer=signer, issuer=issuer,
                             not_before=start, not_after=now + validity)
    return cert, key
