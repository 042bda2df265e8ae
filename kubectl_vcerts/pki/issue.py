"""Issue certificates by cloning an existing one: new key, serial and validity, everything else kept.

The profile of a renewed certificate is the certificate it replaces (kubeadm's renewal manager does the
same): subject (exact RDN sequence, so CN and O survive), issuer = the signing CA's subject, and every
extension copied with its criticality — SANs in their order, key usage, extended key usage, basic
constraints. Only the key identifiers are recomputed: SubjectKeyIdentifier for the new key (when the
old certificate had one) and AuthorityKeyIdentifier from the signing CA (when the old one had one), as
Go's x509 does. New keys have the type and size of the old ones (RSA n bits, ECDSA same curve).

Serials are random in [1, 2^63 - 1) like kubeadm; NotBefore is backdated five minutes
(kubeadm ``CertificateBackdate``).

New keys are independent of each other, so :class:`KeyPool` generates them on worker threads ahead of
use; the certificates are still built one by one, in order, by the caller. Threads help because
cryptography releases the GIL while OpenSSL generates a key (measured with cryptography 50.0.2: another
Python thread keeps running during ``rsa.generate_private_key``, while it stalls for the whole of an
RSA key load with validation — so key loading gains nothing from threads, and is not done on them).
Imports only the standard library and ``cryptography``; no I/O.
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kubectl_vcerts.pki.parse import PrivateKey, PublicKey, public_key_of

BACKDATE = timedelta(minutes=5)
_RSA_EXPONENT = 65537
# Go's crypto/tls (kube-apiserver, etcd, vCluster's syncer) refuses smaller RSA keys; newer cryptography
# releases refuse to generate them too, older ones do not: the rule is ours, whatever the version.
MIN_RSA_BITS = 1024


def random_serial() -> int:
    return secrets.randbelow(2**63 - 2) + 1


def new_key_like(public: PublicKey) -> PrivateKey:
    """A fresh private key of the same algorithm and size/curve as ``public``."""
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            raise ValueError(f"key_size must be at least {MIN_RSA_BITS}-bits (the key has {public.key_size})")
        return rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=public.key_size)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ec.generate_private_key(public.curve)
    return ed25519.Ed25519PrivateKey.generate()


def key_workers() -> int:
    """Threads for key generation: one per CPU this process may run on (at least one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))  # respects taskset/cpuset limits
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


class KeyPool:
    """Generates fresh keys (:func:`new_key_like`) on worker threads while the caller does other work.

    ``submit`` returns at once; the key is taken with ``Future.result()``, which re-raises whatever
    ``new_key_like`` raised (same exception, so errors surface as they did without the pool). Take the
    keys in the order the sequential code would have generated them and the results, and the errors,
    are the same as without the pool: one new key per submission, nothing shared between them. Leaving
    the ``with`` block cancels keys not started yet and waits for those being generated.
    """

    def __init__(self, workers: int | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers or key_workers(),
                                            thread_name_prefix="vcerts-keygen")

    def submit(self, public: PublicKey) -> Future[PrivateKey]:
        """Start generating a key of the algorithm and size/curve of ``public``."""
        return self._executor.submit(new_key_like, public)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> KeyPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


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
                      not_after: datetime,
                      sans: x509.SubjectAlternativeName | None = None,
                      key_id_of_issuer: bool = False) -> x509.Certificate:
    """Re-issue ``old`` for ``public_key``, signed by ``signer``.

    ``issuer`` is the signing CA certificate, or None for a self-signed certificate (a CA clone).
    ``sans`` replaces the subject alternative names (pki/sans.py: the set vCluster would issue).
    ``key_id_of_issuer`` adds an AuthorityKeyIdentifier where ``old`` has none (a self-signed CA
    cross-signed under its own name: without one OpenSSL takes the copy for a self-signed root).
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
        elif isinstance(ext.value, x509.SubjectAlternativeName) and sans is not None:
            builder = builder.add_extension(sans, ext.critical)
        elif isinstance(ext.value, x509.AuthorityKeyIdentifier):
            if issuer is None:
                value = x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
            else:
                value = _authority_key_id(issuer, issuer_public)
            builder = builder.add_extension(value, ext.critical)
        else:
            builder = builder.add_extension(ext.value, ext.critical)
    has_aki = any(isinstance(ext.value, x509.AuthorityKeyIdentifier) for ext in old.extensions)
    if key_id_of_issuer and issuer is not None and not has_aki:
        builder = builder.add_extension(_authority_key_id(issuer, issuer_public), critical=False)
    return builder.sign(signer, _hash_for(signer))


def renew(old: x509.Certificate, *, signer: PrivateKey, issuer: x509.Certificate | None, now: datetime,
          validity: timedelta, not_before: datetime | None = None,
          key: PrivateKey | None = None,
          sans: x509.SubjectAlternativeName | None = None) -> tuple[x509.Certificate, PrivateKey]:
    """New key + clone of ``old``; ``not_before`` defaults to ``now`` minus the kubeadm backdate.

    ``key`` is the new key when it was generated ahead (:class:`KeyPool`, from ``old``'s public key);
    without it one is generated here. A self-signed clone (``issuer`` None) keeps ``signer``.
    """
    if issuer is None:
        key = signer
    elif key is None:
        key = new_key_like(public_key_of(old))
    start = now - BACKDATE if not_before is None else not_before
    cert = clone_certificate(old, public_key=key.public_key(), signer=signer, issuer=issuer,
                             not_before=start, not_after=now + validity, sans=sans)
    return cert, key
