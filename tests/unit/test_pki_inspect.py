"""inspect_pki: rows for every certificate, findings with stable reasons, never a crash."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from kubectl_vcerts.pki import CATALOGUE, Kind, Reason, Status, inspect_pki
from tests.support.pki_builder import (
    NOW,
    Options,
    cached_pki,
    cert_pem,
    first_cert,
    key_pem,
    make_ca,
    make_leaf,
    name,
    new_key,
)

Data = dict[str, bytes]
BAD_PEM = b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"


def healthy() -> Data:
    return dict(cached_pki())


def test_a_healthy_pki_has_a_row_for_every_certificate_and_no_findings() -> None:
    report = inspect_pki(healthy(), now=NOW)

    assert report.findings == ()
    assert report.worst is Status.OK
    keys = [row.secret_key for row in report.certificates]
    expected = [e.secret_key for e in CATALOGUE if e.kind in (Kind.CA, Kind.LEAF, Kind.KUBECONFIG)]
    assert keys == expected
    assert all(row.verifies and row.key_matches for row in report.certificates)


def test_kubeconfig_rows_describe_the_embedded_client_certificate() -> None:
    rows = {row.secret_key: row for row in inspect_pki(healthy(), now=NOW).certificates}

    admin = rows["admin.conf"]
    assert (admin.kind, admin.subject_cn, admin.subject_o, admin.issuer_cn) == (
        Kind.KUBECONFIG, "kubernetes-super-admin", "system:masters", "kubernetes")
    assert rows["scheduler.conf"].subject_cn == "system:kube-scheduler"
    assert rows["etcd-ca.crt"].filename == "ca.crt" and rows["etcd-ca.crt"].path == "etcd/ca.crt"


def test_fingerprint_is_sha256_over_der_in_lowercase_hex() -> None:
    data = healthy()
    report = inspect_pki(data, now=NOW)
    der = first_cert(data["ca.crt"]).public_bytes(serialization.Encoding.DER)

    assert report.ca_fingerprint == "sha256:" + hashlib.sha256(der).hexdigest()
    assert report.ca_not_after == first_cert(data["ca.crt"]).not_valid_after_utc


def test_remaining_and_earliest_leaf_are_measured_from_now() -> None:
    data = healthy()
    report = inspect_pki(data, now=NOW)
    apiserver = next(r for r in report.certificates if r.secret_key == "apiserver.crt")

    assert apiserver.remaining == first_cert(data["apiserver.crt"]).not_valid_after_utc - NOW
    assert report.earliest_leaf_not_after == min(
        r.not_after for r in report.certificates if r.kind in (Kind.LEAF, Kind.KUBECONFIG))


@pytest.mark.parametrize(("offset", "status", "reason"), [
    pytest.param(timedelta(days=10), Status.OK, None, id="a leaf far from its end is OK"),
    pytest.param(timedelta(days=300), Status.EXPIRING, Reason.EXPIRING,
                 id="a leaf inside 90 days is EXPIRING"),
    pytest.param(timedelta(days=366), Status.EXPIRED, Reason.EXPIRED, id="a leaf past its end is EXPIRED"),
    pytest.param(timedelta(minutes=-10), Status.NOT_YET_VALID, Reason.NOT_YET_VALID,
                 id="a leaf before its start is NOT YET VALID"),
])
def test_time_status_of_a_leaf(offset: timedelta, status: Status, reason: Reason | None) -> None:
    report = inspect_pki(healthy(), now=NOW + offset)
    row = next(r for r in report.certificates if r.secret_key == "apiserver.crt")

    assert row.status is status
    assert [f.reason for f in row.findings] == ([reason] if reason else [])


def test_warn_within_moves_the_expiring_threshold() -> None:
    report = inspect_pki(healthy(), now=NOW + timedelta(days=300), warn_within=timedelta(days=30))

    assert report.worst is Status.OK


def _replace_leaf_signed_by_stranger(data: Data) -> None:
    stranger_key = new_key()
    stranger = make_ca("kubernetes", key=stranger_key, not_before=NOW - timedelta(days=1),
                       not_after=NOW + timedelta(days=3650))
    key = new_key()
    leaf = make_leaf(name("kube-apiserver-kubelet-client"), key=key, ca=stranger, ca_key=stranger_key,
                     eku=[ExtendedKeyUsageOID.CLIENT_AUTH], not_before=NOW - timedelta(days=1),
                     not_after=NOW + timedelta(days=365))
    data["apiserver-kubelet-client.crt"] = cert_pem(leaf)
    data["apiserver-kubelet-client.key"] = key_pem(key)


def _leaf_with_malformed_extension(data: Data) -> None:
    ca, ca_key = first_cert(data["ca.crt"]), new_key()
    leaf = make_leaf(name("kube-apiserver"), key=new_key(), ca=ca, ca_key=ca_key, eku=[],
                     not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365))
    data["apiserver.crt"] = cert_pem(leaf)


def _swap_key(data: Data) -> None:
    data["front-proxy-client.key"] = data["apiserver.key"]


def _second_ca_as_server_ca(data: Data) -> None:
    data["server-ca.crt"], data["server-ca.key"] = data["front-proxy-ca.crt"], data["front-proxy-ca.key"]


def _leaf_as_ca(data: Data) -> None:
    data["front-proxy-ca.crt"], data["front-proxy-ca.key"] = data["front-proxy-client.crt"], data[
        "front-proxy-client.key"]


def _kubeconfig_without_user(data: Data) -> None:
    doc = yaml.safe_load(data["scheduler.conf"])
    doc["users"] = []
    data["scheduler.conf"] = yaml.safe_dump(doc).encode()


def _kubeconfig_trusting_other_ca(data: Data) -> None:
    doc = yaml.safe_load(data["admin.conf"])
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        data["etcd-ca.crt"]).decode()
    data["admin.conf"] = yaml.safe_dump(doc).encode()


def _other_sa_pub(data: Data) -> None:
    data["sa.pub"] = new_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Broken:
    change: Callable[[Data], None]
    key: str
    reason: Reason


BROKEN = {
    "a missing key is reported as missing": Broken(lambda d: d.__delitem__("etcd-peer.key"), "etcd-peer.key",
                                                   Reason.MISSING),
    "an empty value is reported as empty": Broken(lambda d: d.update({"apiserver.crt": b""}), "apiserver.crt",
                                                  Reason.EMPTY),
    "garbage instead of a certificate is unparseable": Broken(
        lambda d: d.update({"etcd-server.crt": BAD_PEM}),
        "etcd-server.crt", Reason.UNPARSEABLE),
    "a certificate with an empty extended key usage is unparseable": Broken(
        _leaf_with_malformed_extension, "apiserver.crt", Reason.UNPARSEABLE),
    "garbage instead of a key is unparseable": Broken(lambda d: d.update({"ca.key": b"not a key"}), "ca.key",
                                                      Reason.UNPARSEABLE),
    "a leaf signed by another CA is chain-broken": Broken(
        _replace_leaf_signed_by_stranger, "apiserver-kubelet-client.crt", Reason.CHAIN_BROKEN),
    "a key of another certificate is a key-mismatch": Broken(_swap_key, "front-proxy-client.crt",
                                                             Reason.KEY_MISMATCH),
    "a server-ca that differs from ca but does not sign apiserver.crt leaves it chain-broken": Broken(
        _second_ca_as_server_ca, "apiserver.crt", Reason.CHAIN_BROKEN),
    "a leaf stored as a CA is not-a-ca": Broken(_leaf_as_ca, "front-proxy-ca.crt", Reason.NOT_A_CA),
    "a kubeconfig without its user is kubeconfig-invalid": Broken(_kubeconfig_without_user, "scheduler.conf",
                                                                  Reason.KUBECONFIG_INVALID),
    "YAML garbage as kubeconfig is kubeconfig-invalid": Broken(lambda d: d.update({"admin.conf": b"{:"}),
                                                               "admin.conf", Reason.KUBECONFIG_INVALID),
    "a kubeconfig trusting another CA is a kubeconfig-ca-mismatch": Broken(
        _kubeconfig_trusting_other_ca, "admin.conf", Reason.KUBECONFIG_CA_MISMATCH),
    "an sa.pub of another key is a key-mismatch": Broken(_other_sa_pub, "sa.pub", Reason.KEY_MISMATCH),
}


@pytest.mark.parametrize("case", BROKEN.values(), ids=BROKEN.keys())
def test_broken_pki_yields_a_finding_with_a_stable_reason(case: Broken) -> None:
    data = healthy()
    case.change(data)

    report = inspect_pki(data, now=NOW)

    assert (case.key, case.reason) in {(f.secret_key, f.reason) for f in report.findings}
    assert report.worst is Status.INVALID


def test_reasons_are_the_documented_stable_strings() -> None:
    assert {r.value for r in Reason} == {
        "missing", "empty", "unparseable", "kubeconfig-invalid", "expired", "not-yet-valid", "expiring",
        "chain-broken", "key-mismatch", "not-a-ca", "ca-copy-mismatch", "kubeconfig-ca-mismatch"}


def test_a_chain_broken_leaf_row_is_invalid_and_does_not_verify() -> None:
    data = healthy()
    _replace_leaf_signed_by_stranger(data)

    row = next(r for r in inspect_pki(data, now=NOW).certificates
               if r.secret_key == "apiserver-kubelet-client.crt")

    assert (row.status, row.verifies, row.key_matches) == (Status.INVALID, False, True)


def test_the_k3s_split_is_recognised_by_content_as_vcluster_does_and_apiserver_is_checked_against_server_ca(
) -> None:
    data = dict(cached_pki(Options(split=True)))

    report = inspect_pki(data, now=NOW)

    assert report.findings == () and report.split_ca
    apiserver = next(r for r in report.certificates if r.secret_key == "apiserver.crt")
    assert (apiserver.issuer_key, apiserver.verifies) == ("server-ca.crt", True)


def test_a_split_whose_kubeconfigs_trust_ca_instead_of_server_ca_is_a_kubeconfig_ca_mismatch() -> None:
    data = dict(cached_pki(Options(split=True)))
    plain = dict(cached_pki(Options()))
    data["admin.conf"] = plain["admin.conf"]

    reasons = {(f.secret_key, f.reason) for f in inspect_pki(data, now=NOW).findings}

    assert ("admin.conf", Reason.KUBECONFIG_CA_MISMATCH) in reasons


def test_client_ca_differing_from_ca_is_a_mismatch_even_in_a_split() -> None:
    data = healthy()
    data["client-ca.crt"], data["client-ca.key"] = data["etcd-ca.crt"], data["etcd-ca.key"]

    reasons = {(f.secret_key, f.reason) for f in inspect_pki(data, now=NOW).findings}

    assert ("client-ca.crt", Reason.CA_COPY_MISMATCH) in reasons


def test_a_ca_bundle_is_read_by_its_first_certificate() -> None:
    data = healthy()
    data["ca.crt"] = data["ca.crt"] + data["etcd-ca.crt"]

    report = inspect_pki(data, now=NOW)

    assert report.findings == ()
    assert report.ca_fingerprint == inspect_pki(healthy(), now=NOW).ca_fingerprint


def test_an_empty_mapping_reports_every_key_missing() -> None:
    report = inspect_pki({}, now=NOW)

    assert {f.secret_key for f in report.findings if f.reason == Reason.MISSING} == {
        e.secret_key for e in CATALOGUE}
    assert report.certificates == () and report.ca_fingerprint is None


def test_finding_messages_never_contain_key_material() -> None:
    data = healthy()
    _swap_key(data)
    data["ca.key"] = b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"

    text = " ".join(f.message for f in inspect_pki(data, now=NOW).findings)

    assert "PRIVATE KEY" not in text and "AAAA" not in text


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from([e.secret_key for e in CATALOGUE]),
                       st.binary(max_size=64) | st.sampled_from([b"", b"-----BEGIN CERTIFICATE-----\n"])))
def test_inspect_never_raises_on_arbitrary_bytes(garbage: dict[str, bytes]) -> None:
    data = {**cached_pki(), **garbage}

    report = inspect_pki(data, now=NOW)

    assert report.worst is Status.INVALID or not garbage
    assert all(isinstance(f.reason, str) and f.message for f in report.findings)


def test_a_row_exists_only_for_parseable_certificates() -> None:
    data = healthy()
    data["apiserver.crt"] = b"junk"

    keys = {row.secret_key for row in inspect_pki(data, now=NOW).certificates}

    assert "apiserver.crt" not in keys and "apiserver-kubelet-client.crt" in keys


def test_an_expired_ca_makes_its_row_expired() -> None:
    data = healthy()
    report = inspect_pki(data, now=first_cert(data["ca.crt"]).not_valid_after_utc + timedelta(seconds=1))

    row = next(r for r in report.certificates if r.secret_key == "ca.crt")
    assert row.status is Status.EXPIRED and report.worst is Status.EXPIRED



def test_an_expiring_kubeconfig_client_certificate_says_vcluster_never_renews_it() -> None:
    data = dict(cached_pki(Options(leaf_validity=timedelta(days=30))))

    findings = {f.secret_key: f.message for f in inspect_pki(data, now=NOW).findings}

    assert "vCluster never renews kubeconfig client certificates" in findings["admin.conf"]
    assert "never renews" not in findings["apiserver.crt"]
