"""rotate_ca and load_ca_material: new (or supplied) CAs, everything re-issued under them, sa.* kept."""

from __future__ import annotations

import base64
import warnings
from datetime import timedelta

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from kubectl_vcerts.errors import InvalidInputError
from kubectl_vcerts.pki import CaMaterial, Kind, inspect_pki, load_ca_material, rotate_ca
from kubectl_vcerts.pki.catalogue import KUBECONFIGS, LEAVES
from kubectl_vcerts.pki.parse import signed_by
from tests.support.pki_builder import (
    NOW,
    Options,
    cached_pki,
    cert_pem,
    first_cert,
    issuing_ca_under_root,
    key_pem,
    kubeconfig_cert,
    make_ca,
    make_leaf,
    name,
    new_key,
    profile_of,
)

LATER = NOW + timedelta(days=400)
CA_KEYS = ("ca.crt", "front-proxy-ca.crt", "etcd-ca.crt")


def _cert(data: dict[str, bytes], key: str) -> x509.Certificate:
    return kubeconfig_cert(data[key]) if key.endswith(".conf") else first_cert(data[key])


def test_rotation_makes_new_cas_with_cloned_profiles_and_ten_years() -> None:
    old = dict(cached_pki())

    new = rotate_ca(old, now=LATER).data

    for key in CA_KEYS:
        before, after = first_cert(old[key]), first_cert(new[key])
        assert after != before
        assert profile_of(after) == profile_of(before), key
        assert after.not_valid_before_utc == LATER - timedelta(minutes=5)
        assert after.not_valid_after_utc == LATER + timedelta(days=3650)
        assert after.issuer == after.subject


def test_every_leaf_and_kubeconfig_is_reissued_under_its_new_ca_with_its_profile() -> None:
    old = dict(cached_pki())

    new = rotate_ca(old, now=LATER).data

    for item in (*LEAVES, *KUBECONFIGS):
        cert = _cert(new, item.secret_key)
        assert signed_by(cert, first_cert(new[str(item.issuer)])), item.secret_key
        assert profile_of(cert) == profile_of(_cert(old, item.secret_key))
    assert inspect_pki(new, now=LATER).findings == ()


def test_server_and_client_ca_become_copies_and_sa_keys_stay() -> None:
    old = dict(cached_pki())

    new = rotate_ca(old, now=LATER).data

    for copy in ("server-ca", "client-ca"):
        assert new[f"{copy}.crt"] == new["ca.crt"] and new[f"{copy}.key"] == new["ca.key"]
    assert (new["sa.key"], new["sa.pub"]) == (old["sa.key"], old["sa.pub"])


def test_kubeconfigs_trust_the_new_ca_and_keep_server_and_names() -> None:
    old = dict(cached_pki())

    new = rotate_ca(old, now=LATER).data

    for item in KUBECONFIGS:
        before, after = yaml.safe_load(old[item.secret_key]), yaml.safe_load(new[item.secret_key])
        cluster = after["clusters"][0]["cluster"]
        assert base64.b64decode(cluster["certificate-authority-data"]) == new["ca.crt"]
        assert cluster["server"] == before["clusters"][0]["cluster"]["server"]
        assert after["contexts"] == before["contexts"]


def test_the_k3s_split_is_kept_with_a_new_server_ca_signing_apiserver() -> None:
    old = dict(cached_pki(Options(split=True)))

    new = rotate_ca(old, now=LATER).data

    server_ca, ca = first_cert(new["server-ca.crt"]), first_cert(new["ca.crt"])
    assert server_ca != ca and server_ca != first_cert(old["server-ca.crt"])
    assert profile_of(server_ca) == profile_of(first_cert(old["server-ca.crt"]))
    assert new["client-ca.crt"] == new["ca.crt"]
    assert signed_by(first_cert(new["apiserver.crt"]), server_ca)
    assert all(kubeconfig_cert(new[k.secret_key]) and signed_by(kubeconfig_cert(new[k.secret_key]), ca)
               for k in KUBECONFIGS)
    conf = yaml.safe_load(new["admin.conf"])["clusters"][0]["cluster"]
    assert base64.b64decode(conf["certificate-authority-data"]) == new["server-ca.crt"]
    assert inspect_pki(new, now=LATER).findings == ()


def test_ecdsa_cas_stay_ecdsa_on_the_same_curve() -> None:
    new = rotate_ca(dict(cached_pki(Options(key_type="ecdsa"))), now=LATER).data

    public = first_cert(new["ca.crt"]).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"


def test_rotation_change_list_and_fingerprint() -> None:
    old = dict(cached_pki())

    change = rotate_ca(old, now=LATER)

    actions = {c.secret_key: c.action for c in change.changes}
    assert actions["ca.crt"] == "new-ca" and actions["server-ca.crt"] == "copied"
    assert actions["apiserver.crt"] == "reissued" and actions["admin.conf"] == "reissued"
    assert "sa.key" not in actions and "sa.pub" not in actions
    assert change.ca_fingerprint == inspect_pki(change.data, now=LATER).ca_fingerprint
    assert change.ca_fingerprint != inspect_pki(old, now=LATER).ca_fingerprint


def test_rotation_works_when_everything_is_expired_and_does_not_mutate_its_input() -> None:
    old = dict(cached_pki())
    snapshot = dict(old)
    much_later = NOW + timedelta(days=4000)

    new = rotate_ca(old, now=much_later).data

    assert old == snapshot
    assert inspect_pki(new, now=much_later).findings == ()


def test_short_leaf_validity_is_refused_on_rotation_too() -> None:
    with pytest.raises(InvalidInputError):
        rotate_ca(dict(cached_pki()), now=LATER, leaf_validity=timedelta(days=60))


# --- bring your own CA --------------------------------------------------------------------------

def _own_ca(key_type: str = "rsa", **window: timedelta) -> tuple[bytes, bytes]:
    key = new_key(key_type)
    start = LATER - window.get("age", timedelta(days=1))
    cert = make_ca("corp-issuing-ca", key=key, not_before=start,
                   not_after=start + window.get("life", timedelta(days=3650)))
    return cert_pem(cert), key_pem(key)


def test_a_supplied_ca_is_used_exactly_and_signs_the_client_and_serving_side() -> None:
    cert, key = _own_ca()
    material = load_ca_material(cert, key, now=LATER)

    new = rotate_ca(dict(cached_pki()), now=LATER, byo_ca=material).data

    assert new["ca.crt"] == cert and first_cert(new["server-ca.crt"]) == material.certificate
    assert new["client-ca.crt"] == new["server-ca.crt"]
    assert signed_by(first_cert(new["apiserver.crt"]), material.certificate)
    assert {c.action for c in rotate_ca(dict(cached_pki()), now=LATER, byo_ca=material).changes
            if c.secret_key == "ca.crt"} == {"byo-ca"}
    assert inspect_pki(new, now=LATER).findings == ()


def test_a_supplied_bundle_keeps_the_chain_in_ca_crt_and_copies_only_the_ca() -> None:
    cert, key = _own_ca()
    root_pem, _ = _own_ca()
    material = load_ca_material(cert + root_pem, key, now=LATER)

    new = rotate_ca(dict(cached_pki()), now=LATER, byo_ca=material).data

    assert new["ca.crt"] == cert + root_pem
    assert new["server-ca.crt"] == cert
    assert inspect_pki(new, now=LATER).findings == ()


def test_a_supplied_ca_collapses_the_k3s_split() -> None:
    cert, key = _own_ca("ecdsa")

    new = rotate_ca(dict(cached_pki(Options(split=True))), now=LATER,
                    byo_ca=load_ca_material(cert, key, now=LATER)).data

    assert new["server-ca.crt"] == new["ca.crt"] == cert
    assert inspect_pki(new, now=LATER).findings == ()


def _leaf_pair() -> tuple[bytes, bytes]:
    ca_key = new_key()
    ca = make_ca("x", key=ca_key, not_before=LATER - timedelta(days=1), not_after=LATER + timedelta(days=9))
    key = new_key()
    leaf = make_leaf(name("not-a-ca"), key=key, ca=ca, ca_key=ca_key, eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
                     not_before=LATER - timedelta(days=1), not_after=LATER + timedelta(days=9))
    return cert_pem(leaf), key_pem(key)


def _ca_without_cert_sign() -> tuple[bytes, bytes]:
    key = new_key()
    cert = (x509.CertificateBuilder().subject_name(name("weak")).issuer_name(name("weak"))
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(LATER - timedelta(days=1)).not_valid_after(LATER + timedelta(days=9))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=True,
                encipher_only=False, decipher_only=False),
                critical=True))
    return cert_pem(cert.sign(key, hashes.SHA256())), key_pem(key)


def _intermediate() -> tuple[bytes, bytes]:
    return issuing_ca_under_root(now=LATER)


def _dsa_key_pem() -> bytes:
    with warnings.catch_warnings():  # cryptography >= 51 warns about making DSA keys: this input only
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return dsa.generate_private_key(2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


BAD_CAS = {
    "a leaf certificate is not a CA": (_leaf_pair, "not a CA"),
    "a CA without keyCertSign cannot sign": (_ca_without_cert_sign, "keyCertSign"),
    "an expired CA is refused": (lambda: _own_ca(age=timedelta(days=20), life=timedelta(days=10)), "expired"),
    "a CA that starts in the future is refused": (lambda: _own_ca(age=timedelta(days=-2)),
                                                  "not valid before"),
    "a key of another CA is refused": (lambda: (_own_ca()[0], _own_ca()[1]), "does not belong"),
    "a file without a certificate is refused": (lambda: (b"hello", _own_ca()[1]), "cannot be read"),
    "a DSA key is refused": (lambda: (_own_ca()[0], _dsa_key_pem()), "cannot be read"),
    "an intermediate CA is refused: vCluster would publish it without its root": (
        _intermediate, "is an intermediate \\(issued by CN=corp-root\\)"),
}


@pytest.mark.parametrize("case", BAD_CAS.values(), ids=BAD_CAS.keys())
def test_unusable_supplied_cas_are_refused_with_a_reason(case: tuple[object, str]) -> None:
    make, message = case
    cert, key = make()  # type: ignore[operator]

    with pytest.raises(InvalidInputError, match=message) as raised:
        load_ca_material(cert, key, now=LATER)
    assert "PRIVATE KEY" not in str(raised.value)


def test_ca_material_repr_hides_the_key() -> None:
    cert, key = _own_ca()

    material = load_ca_material(cert, key, now=LATER)

    assert isinstance(material, CaMaterial) and "key=" not in repr(material)
    assert material.fingerprint.startswith("sha256:")


def test_inspect_rows_for_cas_have_kind_ca() -> None:
    rows = inspect_pki(rotate_ca(dict(cached_pki()), now=LATER).data, now=LATER).certificates

    assert {r.secret_key for r in rows if r.kind is Kind.CA} == {
        "ca.crt", "server-ca.crt", "client-ca.crt", "front-proxy-ca.crt", "etcd-ca.crt"}
