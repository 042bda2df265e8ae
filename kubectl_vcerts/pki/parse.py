"""PEM in, `cryptography` objects out: certificates, private keys, fingerprints, key matching.

Every loader raises ``ValueError`` (never anything else) on bad input so callers can turn it into a
finding or an ``InvalidPkiError``. Messages name what was wrong, never the bytes.

Imports only the standard library and ``cryptography``.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

# The key types a vCluster PKI can hold and that Go's crypto/tls accepts for certificates.
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"


@contextmanager
def _refusing_quietly() -> Iterator[None]:
    """Where a DSA key may be met (a key or a certificate's key, whose type is only known once parsed; a
    DSA CA's signature): cryptography >= 51 warns whenever it makes a DSA key object, and we refuse DSA
    keys or handle them as before, so no warning is shown on top of our error. (catch_warnings is not
    thread-safe: racing fleet threads can at worst leave this one filter in place, which is harmless.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


# Extensions RFC 5280 defines as SEQUENCE SIZE (1..MAX): older cryptography releases accept them empty,
# newer ones refuse to parse them; they are refused here whatever the installed version.
_NON_EMPTY = (x509.ExtendedKeyUsage, x509.SubjectAlternativeName)


def _check_sizes(extensions: x509.Extensions) -> None:
    for extension in extensions:
        if isinstance(extension.value, _NON_EMPTY) and len(extension.value) == 0:
            raise ValueError(f"empty {type(extension.value).__name__} extension")


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All CERTIFICATE blocks of a PEM bundle, in order; at least one."""
    if _CERT_BEGIN not in data:
        raise ValueError("no PEM CERTIFICATE block")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError("malformed PEM certificate") from exc
    if not certs:
        raise ValueError("no PEM CERTIFICATE block")
    for cert in certs:
        try:
            # Parsed lazily by cryptography: fail here, not in a later check.
            _check_sizes(cert.extensions)
            with _refusing_quietly():
                cert.public_key()
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            cert.not_valid_before_utc  # noqa: B018
            cert.not_valid_after_utc  # noqa: B018
        except Exception as exc:  # ValueError or UnsupportedAlgorithm from the Rust parser
            raise ValueError("certificate with malformed extensions or key") from exc
    return certs


def first_certificate_der(data: bytes) -> bytes | None:
    """DER of the first certificate of a PEM bundle; None when there is none or it does not parse
    (a trust anchor a client may have pinned, compared byte for byte)."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return None
    return certs[0].public_bytes(serialization.Encoding.DER) if certs else None


def first_certificate(data: bytes) -> x509.Certificate:
    """The first certificate of a PEM bundle (vCluster's splitCACert takes the first block too)."""
    return load_certificates(data)[0]


def load_private_key(data: bytes, *, validate: bool = True) -> PrivateKey:
    """``validate=False`` skips OpenSSL's RSA consistency check (~40 ms a key): fine when the key is
    only compared with a certificate, never used to sign."""
    try:
        with _refusing_quietly():
            key = serialization.load_pem_private_key(data, password=None,
                                                     unsafe_skip_rsa_key_validation=not validate)
    except (ValueError, TypeError) as exc:  # TypeError: encrypted key
        raise ValueError("not an unencrypted PEM private key") from exc
    except Exception as exc:  # cryptography.exceptions.UnsupportedAlgorithm
        raise ValueError("unsupported private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def load_public_key(data: bytes) -> PublicKey:
    try:
        with _refusing_quietly():
            key = serialization.load_pem_public_key(data)
    except Exception as exc:
        raise ValueError("not a PEM public key") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ValueError(f"unsupported public key type {type(key).__name__}")
    return key


_PUBLIC_BLOCKS = (b"PUBLIC KEY", b"RSA PUBLIC KEY")
_PRIVATE_BLOCKS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY")


def load_verification_keys(data: bytes) -> tuple[PublicKey, ...]:
    """Every key of a service-account key file, as kube-apiserver reads --service-account-key-file
    (client-go `keyutil.ParsePublicKeysPEM`): public keys, and the public half of private keys. A
    k3s-migrated vCluster has k3s's service.key, a private key, in sa.pub. At least one key."""
    keys: list[PublicKey] = []
    for match in re.finditer(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----", data, re.S):
        kind = match.group(1)
        if kind in _PUBLIC_BLOCKS:
            keys.append(load_public_key(match.group(0)))
        elif kind in _PRIVATE_BLOCKS:
            keys.append(load_private_key(match.group(0), validate=False).public_key())
    if not keys:
        raise ValueError("no PEM public or private key")
    return tuple(keys)


def public_key_of(cert: x509.Certificate) -> PublicKey:
    with _refusing_quietly():
        key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ValueError(f"unsupported public key type {type(key).__name__}")
    return key


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(public: PublicKey, private: PrivateKey) -> bool:
    return _spki(public) == _spki(private.public_key())


def public_key_pin(cert: x509.Certificate) -> str:
    """kubeadm's CA pin (--discovery-token-ca-cert-hash): sha256 of the SubjectPublicKeyInfo."""
    with _refusing_quietly():
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the DER encoding, as ``sha256:<lowercase hex>``."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when ``cert`` names ``ca`` as issuer and carries a valid signature by its key."""
    try:
        with _refusing_quietly():  # a DSA CA verifies as it always did, without the warning
            cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey, *, like: bytes | None = None) -> bytes:
    """Serialise like the key it replaces: PKCS#8 when that was PKCS#8, else the traditional
    form kubeadm writes (``RSA PRIVATE KEY`` PKCS#1, ``EC PRIVATE KEY`` SEC1)."""
    pkcs8 = isinstance(key, ed25519.Ed25519PrivateKey) or (
        like is not None and b"-----BEGIN PRIVATE KEY-----" in like)
    fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())



def common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def organizations(name: x509.Name) -> tuple[str, ...]:
    return tuple(str(a.value) for a in name.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME))


def is_ca(cert: x509.Certificate) -> bool:
    """BasicConstraints CA:TRUE and, when KeyUsage is present, keyCertSign."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not bc.ca:
        return False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ku.key_cert_sign
