"""renew_leaves: clone every leaf and kubeconfig client certificate under the existing CAs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kubectl_vcerts.errors import InvalidInputError, InvalidPkiError
from kubectl_vcerts.pki import Status, inspect_pki, renew_leaves
from kubectl_vcerts.pki.catalogue import KUBECONFIGS, LEAVES
from kubectl_vcerts.pki.layout import first_ca_pem
from tests.support.pki_builder import NOW, Options, cached_pki, first_cert, kubeconfig_cert, profile_of

LEAF_KEYS = [e.secret_key for e in LEAVES]
CONF_KEYS = [e.secret_key for e in KUBECONFIGS]
LATER = NOW + timedelta(days=200)

VARIANTS = {
    "kubeadm profiles with RSA keys": Options(),
    "ECDSA keys stay ECDSA": Options(key_type="ecdsa"),
    "clusters made by vCluster before 0.26": Options(legacy=True),
    "the k3s split-CA layout": Options(split=True),
}


def _cert(data: dict[str, bytes], key: str) -> x509.Certificate:
    return kubeconfig_cert(data[key]) if key.endswith(".conf") else first_cert(data[key])


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_renewal_keeps_every_profile_and_changes_key_serial_and_validity(options: Options) -> None:
    old = dict(cached_pki(options))

    new = renew_leaves(old, now=LATER).data

    for key in LEAF_KEYS + CONF_KEYS:
        before, after = _cert(old, key), _cert(new, key)
        assert profile_of(after) == profile_of(before), key
        assert after.serial_number != before.serial_number
        assert after.public_key() != before.public_key()
        assert after.not_valid_after_utc == LATER + timedelta(days=365)
    assert inspect_pki(new, now=LATER).findings == ()


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_renewal_keeps_cas_and_service_account_keys_byte_identical(options: Options) -> None:
    old = dict(cached_pki(options))

    new = renew_leaves(old, now=LATER).data

    for key in ("ca.crt", "ca.key", "server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key",
                "front-proxy-ca.crt", "front-proxy-ca.key", "etcd-ca.crt", "etcd-ca.key", "sa.key", "sa.pub"):
        assert new[key] == old[key], key


def test_leaves_are_backdated_five_minutes_and_kubeconfigs_start_with_their_ca() -> None:
    old = dict(cached_pki())

    new = renew_leaves(old, now=LATER).data

    assert first_cert(new["apiserver.crt"]).not_valid_before_utc == LATER - timedelta(minutes=5)
    ca_start = first_cert(old["ca.crt"]).not_valid_before_utc
    assert all(kubeconfig_cert(new[k]).not_valid_before_utc == ca_start for k in CONF_KEYS)


def test_serials_are_positive_and_below_two_to_the_63() -> None:
    new = renew_leaves(dict(cached_pki()), now=LATER).data

    assert all(0 < _cert(new, k).serial_number < 2**63 for k in LEAF_KEYS + CONF_KEYS)


def test_kubeconfigs_keep_server_names_and_ca_data() -> None:
    old = dict(cached_pki())

    new = renew_leaves(old, now=LATER).data

    for key in CONF_KEYS:
        before, after = yaml.safe_load(old[key]), yaml.safe_load(new[key])
        assert after["clusters"] == before["clusters"]
        assert after["contexts"] == before["contexts"]
        assert after["current-context"] == before["current-context"]
        assert [u["name"] for u in after["users"]] == [u["name"] for u in before["users"]]
        assert after["users"][0]["user"]["client-key-data"] != before["users"][0]["user"]["client-key-data"]


@pytest.mark.parametrize(("key_type", "expected"), [
    pytest.param("rsa", ("rsa", 2048), id="an RSA-2048 leaf gets a new RSA-2048 key"),
    pytest.param("ecdsa", ("ecdsa", "secp256r1"), id="an ECDSA P-256 leaf gets a new P-256 key"),
])
def test_new_keys_have_the_old_algorithm_and_size(key_type: str, expected: tuple[object, ...]) -> None:
    new = renew_leaves(dict(cached_pki(Options(key_type=key_type))), now=LATER).data

    public = first_cert(new["etcd-server.crt"]).public_key()
    found = ("rsa", public.key_size) if isinstance(public, rsa.RSAPublicKey) else (
        "ecdsa", public.curve.name if isinstance(public, ec.EllipticCurvePublicKey) else None)
    assert found == expected


def test_split_layout_keeps_apiserver_signed_by_server_ca() -> None:
    old = dict(cached_pki(Options(split=True)))

    report = inspect_pki(renew_leaves(old, now=LATER).data, now=LATER)

    apiserver = next(r for r in report.certificates if r.secret_key == "apiserver.crt")
    assert (apiserver.issuer_key, apiserver.verifies, apiserver.issuer_cn) == (
        "server-ca.crt", True, "k3s-server-ca@1700000000")


@pytest.mark.parametrize("days", [1, 30, 90, 91, 119],
                         ids=["one day", "thirty days", "exactly ninety days", "a day clear of the window",
                              "29 days clear of the window"])
def test_validity_inside_or_too_close_to_vclusters_renewal_window_is_refused(days: int) -> None:
    with pytest.raises(InvalidInputError, match="90-day start-up renewal window"):
        renew_leaves(dict(cached_pki()), now=LATER, validity=timedelta(days=days))


def test_validity_thirty_days_clear_of_the_window_is_accepted() -> None:
    renewed = renew_leaves(dict(cached_pki()), now=LATER, validity=timedelta(days=120))
    assert renewed.changes


def test_short_validity_is_allowed_when_forced() -> None:
    change = renew_leaves(dict(cached_pki()), now=LATER, validity=timedelta(days=30), allow_short=True)

    assert first_cert(change.data["apiserver.crt"]).not_valid_after_utc == LATER + timedelta(days=30)


def test_zero_validity_is_refused_even_when_forced() -> None:
    with pytest.raises(InvalidInputError):
        renew_leaves(dict(cached_pki()), now=LATER, validity=timedelta(0), allow_short=True)


def test_expired_leaves_and_an_expired_ca_are_renewed() -> None:
    old = dict(cached_pki())
    after_ca = first_cert(old["ca.crt"]).not_valid_after_utc + timedelta(days=1)
    assert inspect_pki(old, now=after_ca).worst is Status.EXPIRED

    change = renew_leaves(old, now=after_ca)

    rows = inspect_pki(change.data, now=after_ca).certificates
    assert all(r.verifies for r in rows)
    assert {r.status for r in rows if r.kind != "ca"} == {Status.OK}


def test_the_input_mapping_is_not_mutated() -> None:
    old = dict(cached_pki())
    snapshot = dict(old)

    renew_leaves(old, now=LATER)

    assert old == snapshot


def test_the_change_list_names_every_renewed_entry_with_old_and_new_dates() -> None:
    old = dict(cached_pki())

    change = renew_leaves(old, now=LATER)

    assert {c.secret_key for c in change.changes} == set(
        LEAF_KEYS + [k.replace(".crt", ".key") for k in LEAF_KEYS] + CONF_KEYS)
    assert {c.action for c in change.changes} == {"renewed"}
    apiserver = next(c for c in change.changes if c.secret_key == "apiserver.crt")
    assert apiserver.old_not_after == first_cert(old["apiserver.crt"]).not_valid_after_utc
    assert apiserver.new_not_after == LATER + timedelta(days=365)
    assert change.ca_fingerprint == inspect_pki(old, now=LATER).ca_fingerprint


def test_unknown_keys_are_carried_over_untouched() -> None:
    old = {**cached_pki(), "extra.txt": b"kept"}

    assert renew_leaves(old, now=LATER).data["extra.txt"] == b"kept"


@pytest.mark.parametrize(("key", "value"), [
    pytest.param("etcd-peer.crt", None, id="a missing leaf cannot be cloned"),
    pytest.param("ca.key", b"junk", id="a corrupt CA key cannot sign"),
    pytest.param("admin.conf", b"users: []", id="a kubeconfig without credentials cannot be cloned"),
])
def test_what_cannot_be_cloned_or_signed_is_an_invalid_pki(key: str, value: bytes | None) -> None:
    data = dict(cached_pki())
    if value is None:
        del data[key]
    else:
        data[key] = value

    with pytest.raises(InvalidPkiError, match=re.escape(key)):
        renew_leaves(data, now=LATER)


def test_private_keys_are_not_in_the_repr_of_the_change() -> None:
    change = renew_leaves(dict(cached_pki()), now=LATER)

    assert "PRIVATE KEY" not in repr(change)


@pytest.mark.parametrize("absent", [False, True], ids=["empty copies", "absent copies"])
def test_empty_or_absent_ca_copies_are_written_as_copies_of_ca(absent: bool) -> None:
    """vCluster crashes on an empty copy and keeps a stale /data/pki file for an absent one."""
    old = dict(cached_pki())
    for key in ("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key"):
        if absent:
            del old[key]
        else:
            old[key] = b""
    messages = " ".join(f.message for f in inspect_pki(old, now=LATER).findings)
    assert ("persistent volume" if absent else "vCluster refuses to start") in messages

    change = renew_leaves(old, now=LATER)

    new = change.data
    assert new["server-ca.crt"] == new["client-ca.crt"] == first_ca_pem(old["ca.crt"])
    assert new["server-ca.key"] == new["client-ca.key"] == old["ca.key"]
    assert {c.secret_key for c in change.changes if c.action == "copied"} == {
        "server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key"}
    assert inspect_pki(new, now=LATER).findings == ()


def test_refresh_sans_gives_the_leaves_vclusters_set_and_keeps_everything_else_of_the_profile() -> None:
    from kubectl_vcerts.pki.sans import SanConfig, expected_sans, san_differences

    old = dict(cached_pki())
    config = SanConfig(name="vc", namespace="team-a", service_cidr="10.96.0.0/12",
                       extra_sans=("new.example.com",))
    before = {d.secret_key: d for d in san_differences(old, config)}
    assert "DNS:new.example.com" in before["etcd-server.crt"].added

    new = renew_leaves(old, now=LATER, refresh_sans=config).data

    assert san_differences(new, config) == ()
    for key, wanted in expected_sans(config).items():
        cert = first_cert(new[key])
        assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == wanted
        assert cert.subject == first_cert(old[key]).subject
    kept = renew_leaves(old, now=LATER).data
    assert {d.secret_key for d in san_differences(kept, config)} == set(before), "cloned unless asked"
