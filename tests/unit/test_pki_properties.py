"""Properties of renewal and rotation over generated PKIs (hypothesis; few examples: RSA keygen is slow)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kubectl_vcerts.pki import inspect_pki, renew_leaves, rotate_ca
from kubectl_vcerts.pki.catalogue import KUBECONFIGS, LEAVES
from kubectl_vcerts.pki.layout import serving_ca_key
from kubectl_vcerts.pki.parse import signed_by
from tests.support.pki_builder import NOW, Options, cached_pki, first_cert, kubeconfig_cert

CA_AND_SA = ("ca.crt", "ca.key", "server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key",
             "front-proxy-ca.crt", "front-proxy-ca.key", "etcd-ca.crt", "etcd-ca.key", "sa.key", "sa.pub")

options = st.builds(Options, key_type=st.sampled_from(["rsa", "ecdsa"]), legacy=st.booleans(),
                    split=st.booleans())
# Renewal instants from "just issued" to long after the CA expired.
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5000))
validities = st.timedeltas(min_value=timedelta(days=120), max_value=timedelta(days=3650))


def _leaves_verify(data: dict[str, bytes]) -> bool:
    serving = serving_ca_key(data)
    for item in (*LEAVES, *KUBECONFIGS):
        issuer = serving if item.secret_key == "apiserver.crt" else str(item.issuer)
        cert = (kubeconfig_cert(data[item.secret_key]) if item.kind == "kubeconfig"
                else first_cert(data[item.secret_key]))
        if not signed_by(cert, first_cert(data[issuer])):
            return False
    return True


@settings(max_examples=10, deadline=None)
@given(options, offsets, validities)
def test_renewal_never_changes_ca_or_service_account_bytes(opts: Options, offset: timedelta,
                                                           validity: timedelta) -> None:
    old = dict(cached_pki(opts))

    new = renew_leaves(old, now=NOW + offset, validity=validity).data

    assert all(new[key] == old[key] for key in CA_AND_SA)
    assert _leaves_verify(new)


@settings(max_examples=10, deadline=None)
@given(options, offsets, offsets)
def test_renewing_twice_is_still_a_valid_pki(opts: Options, first: timedelta, gap: timedelta) -> None:
    once = renew_leaves(dict(cached_pki(opts)), now=NOW + first).data
    later = NOW + first + gap

    twice = renew_leaves(once, now=later).data

    assert _leaves_verify(twice)
    report = inspect_pki(twice, now=later)
    leaf_rows = [r for r in report.certificates if r.kind != "ca"]
    assert all(r.verifies and r.key_matches and r.status == "OK" for r in leaf_rows)


@settings(max_examples=10, deadline=None)
@given(options, offsets)
def test_rotation_output_verifies_and_keeps_service_account_keys(opts: Options, offset: timedelta) -> None:
    old = dict(cached_pki(opts))
    now = NOW + offset

    new = rotate_ca(old, now=now).data

    assert (new["sa.key"], new["sa.pub"]) == (old["sa.key"], old["sa.pub"])
    assert _leaves_verify(new)
    assert inspect_pki(new, now=now).findings == ()
