"""New keys are generated ahead on a few threads (KeyPool) with the same results and errors as one by one."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

from kubectl_vcerts.errors import InvalidPkiError
from kubectl_vcerts.pki import inspect_pki, renew_leaves, rotate_ca
from kubectl_vcerts.pki.catalogue import KUBECONFIGS, LEAVES
from kubectl_vcerts.pki.issue import KeyPool, clone_certificate, key_workers, new_key_like
from kubectl_vcerts.pki.parse import PublicKey, load_private_key
from tests.support.pki_builder import NOW, Options, cached_pki, cert_pem, first_cert, kubeconfig_cert

LATER = NOW + timedelta(days=200)
PAIRS = [(e.secret_key, str(e.pair)) for e in LEAVES]


def _spki(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _rsa_512() -> rsa.RSAPublicKey:
    """A public key too small to generate a new one like it (new_key_like refuses < 1024 bits)."""
    return rsa.RSAPublicNumbers(65537, (1 << 511) | 0x3039).public_key()


def _dsa() -> dsa.DSAPublicKey:
    """A key type the PKI code does not support (public_key_of refuses it). cryptography >= 51 warns
    about DSA: about making this input, not about the code under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return dsa.generate_private_key(2048).public_key()


def _with_public_key(data: dict[str, bytes], cert_key: str, public: object) -> None:
    """Replace ``cert_key``'s certificate by a clone carrying ``public`` (signed by its old issuer's key,
    which renewal does not check: it only clones the profile)."""
    old = first_cert(data[cert_key])
    signer = load_private_key(data["ca.key"])
    with warnings.catch_warnings():  # cryptography >= 51 warns when it encodes a DSA key (see _dsa)
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        clone = clone_certificate(old, public_key=public, signer=signer,  # type: ignore[arg-type]
                                  issuer=first_cert(data["ca.crt"]), not_before=old.not_valid_before_utc,
                                  not_after=old.not_valid_after_utc)
    data[cert_key] = cert_pem(clone)


def _error_of(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:  # whatever it is: the test compares type and message
        return exc
    raise AssertionError("no error raised")


# ------------------------------------------------------------------------------------------ KeyPool
def test_the_pool_returns_one_key_per_request_in_order_with_the_requested_type_and_size() -> None:
    publics: list[PublicKey] = [
        rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key(),
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    ]

    with KeyPool(workers=3) as pool:
        futures = [pool.submit(public) for public in publics]
        keys = [future.result() for future in futures]

    described = [(type(k.public_key()).__name__, getattr(k, "key_size", None),
                  getattr(getattr(k, "curve", None), "name", None)) for k in keys]
    assert described == [(type(p).__name__, getattr(p, "key_size", None),
                          getattr(getattr(p, "curve", None), "name", None)) for p in publics]
    assert len({_spki(k.public_key()) for k in keys}) == len(keys)
    assert not {_spki(k.public_key()) for k in keys} & {_spki(p) for p in publics}


def test_a_failure_in_a_worker_is_the_error_generating_it_directly_raises() -> None:
    expected = _error_of(lambda: new_key_like(_rsa_512()))

    with KeyPool(workers=2) as pool:
        future = pool.submit(_rsa_512())
        raised = _error_of(future.result)

    assert (type(raised), str(raised)) == (type(expected), str(expected))


def test_a_closed_pool_takes_no_more_work() -> None:
    with KeyPool(workers=1) as pool:
        pool.submit(ec.generate_private_key(ec.SECP256R1()).public_key()).result()

    with pytest.raises(RuntimeError):
        pool.submit(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_the_pool_is_sized_from_the_cpus_this_process_may_use() -> None:
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    assert key_workers() == max(1, allowed)


# ------------------------------------------------------------------------- renew_leaves and rotate_ca
@pytest.mark.parametrize("operation", [
    pytest.param(lambda d: renew_leaves(d, now=LATER).data, id="renewal"),
    pytest.param(lambda d: rotate_ca(d, now=LATER).data, id="CA rotation"),
])
def test_every_new_key_is_fresh_distinct_and_stored_next_to_its_own_certificate(
        operation: Callable[[dict[str, bytes]], dict[str, bytes]]) -> None:
    old = dict(cached_pki())

    new = operation(dict(old))

    leaves = [(_spki(first_cert(new[c]).public_key()), _spki(load_private_key(new[k]).public_key()))
              for c, k in PAIRS]
    assert all(cert == key for cert, key in leaves)
    fresh = [cert for cert, _key in leaves]
    fresh += [_spki(kubeconfig_cert(new[e.secret_key]).public_key()) for e in KUBECONFIGS]
    assert len(set(fresh)) == len(fresh) == len(LEAVES) + len(KUBECONFIGS)
    olds = {_spki(first_cert(old[c]).public_key()) for c, _k in PAIRS}
    assert not set(fresh) & olds
    assert inspect_pki(new, now=LATER).findings == ()


CASES = {
    "a leaf whose key cannot be generated fails with cryptography's own error": (
        [("etcd-server.crt", _rsa_512)], None, ValueError, "at least 1024"),
    "a leaf of an unsupported key type fails as it always did": (
        [("front-proxy-client.crt", _dsa)], None, ValueError, "unsupported public key type"),
    "the first failing leaf decides: a bad key before a missing leaf": (
        [("apiserver-kubelet-client.crt", _rsa_512)], "etcd-peer.crt", ValueError, "at least 1024"),
    "the first failing leaf decides: a missing leaf before a bad key": (
        [("etcd-peer.crt", _rsa_512)], "apiserver-kubelet-client.crt", InvalidPkiError,
        "apiserver-kubelet-client.crt"),
    "a missing kubeconfig after a bad leaf key: the leaf's error": (
        [("etcd-healthcheck-client.crt", _rsa_512)], "scheduler.conf", ValueError, "at least 1024"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_renewal_raises_the_error_of_the_first_entry_that_fails_in_catalogue_order(
        case: tuple[list[tuple[str, Callable[[], object]]], str | None, type[Exception], str]) -> None:
    replaced, missing, error, message = case
    data = dict(cached_pki())
    for cert_key, public in replaced:
        _with_public_key(data, cert_key, public())
    if missing is not None:
        del data[missing]

    with pytest.raises(error, match=re.escape(message)):
        renew_leaves(data, now=LATER)


ROTATE_CASES = {
    "a CA whose key cannot be generated fails with cryptography's own error": (
        "etcd-ca.crt", None, ValueError, "at least 1024"),
    "a missing CA before a CA with a bad key: the missing one": (
        "etcd-ca.crt", "front-proxy-ca.crt", InvalidPkiError, "front-proxy-ca.crt"),
    "a CA with a bad key before a missing CA: the bad key's error": (
        "front-proxy-ca.crt", "etcd-ca.crt", ValueError, "at least 1024"),
    "a CA with a bad key before a missing leaf: the CA's error": (
        "front-proxy-ca.crt", "apiserver.crt", ValueError, "at least 1024"),
}


@pytest.mark.parametrize("case", ROTATE_CASES.values(), ids=ROTATE_CASES.keys())
def test_ca_rotation_raises_the_error_of_the_first_entry_that_fails(
        case: tuple[str, str | None, type[Exception], str]) -> None:
    weak, missing, error, message = case
    data = dict(cached_pki(Options()))
    _with_public_key(data, weak, _rsa_512())
    if missing is not None:
        del data[missing]

    with pytest.raises(error, match=re.escape(message)):
        rotate_ca(data, now=LATER)


def test_a_leaf_with_a_bigger_key_gets_a_new_key_of_that_size() -> None:
    data = dict(cached_pki())
    _with_public_key(data, "etcd-peer.crt", rsa.generate_private_key(65537, 3072).public_key())

    new = renew_leaves(data, now=LATER).data

    sizes = {key: first_cert(new[key]).public_key() for key in ("etcd-peer.crt", "apiserver.crt")}
    assert {k: v.key_size for k, v in sizes.items() if isinstance(v, rsa.RSAPublicKey)} == {
        "etcd-peer.crt": 3072, "apiserver.crt": 2048}
