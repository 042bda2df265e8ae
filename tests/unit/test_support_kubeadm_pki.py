"""The kubeadm PKI generator carries vCluster's inputs, and its broken variants change only validity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tests.support.kubeadm_pki import (
    LEAF_ISSUER,
    SECRET_KEYS,
    digests,
    etcd_extra_sans,
    first_service_ip,
    generate_vcluster_pki,
    kubeadm_config,
    kubeconfig_client_cert,
    with_expired_ca,
    with_expired_leaves,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_etcd_sans_follow_vclusters_get_etcd_extra_sans() -> None:
    sans = etcd_extra_sans("vc", "team-a", cluster_domain="corp.local", extra_sans=["vc.example.com"])
    assert sans[:5] == ["localhost", "vc-etcd", "vc-etcd-headless", "vc-etcd.team-a", "vc-etcd.team-a.svc"]
    assert "*.vc-headless.team-a.svc.corp.local" in sans
    assert "*.vc-etcd-headless.team-a.svc.corp.local" in sans
    assert "vc-4.vc-headless.team-a" in sans
    assert "vc-etcd-4.vc-etcd-headless.team-a" in sans
    assert sans[-1] == "vc.example.com"
    assert len(sans) == 1 + 4 + 8 + 5 * 6 + 1


@pytest.mark.parametrize(("cidr", "ip"),
                         [("10.96.0.0/12", "10.96.0.1"), ("10.43.0.0/16,fd00::/108", "10.43.0.1")],
                         ids=["the default service CIDR", "the first of a dual-stack pair"])
def test_the_first_service_ip_is_the_first_address_of_the_first_cidr(cidr: str, ip: str) -> None:
    assert first_service_ip(cidr) == ip


def test_the_kubeadm_config_carries_vclusters_inputs(tmp_path: Path) -> None:
    init, cluster = yaml.safe_load_all(kubeadm_config(name="vc", namespace="ns", cert_dir=tmp_path))
    assert init["nodeRegistration"]["name"] == "vc"
    assert init["localAPIEndpoint"]["bindPort"] == 6443
    assert cluster["controlPlaneEndpoint"] == "127.0.0.1:6443"
    assert cluster["networking"] == {"serviceSubnet": "10.96.0.0/12", "dnsDomain": "cluster.local"}
    assert cluster["certificatesDir"] == str(tmp_path)
    assert cluster["etcd"]["local"]["serverCertSANs"] == etcd_extra_sans("vc", "ns")
    assert cluster["etcd"]["local"]["peerCertSANs"] == etcd_extra_sans("vc", "ns")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return generate_vcluster_pki(tmp_path_factory.mktemp("kubeadm"), name="vc", namespace="ns")


def _leaf(data: dict[str, bytes], key: str) -> x509.Certificate:
    if key.endswith(".conf"):
        return kubeconfig_client_cert(data[key])
    return x509.load_pem_x509_certificate(data[key])


@pytest.mark.binaries
def test_expired_leaves_keep_subject_key_and_extensions(pki: dict[str, bytes]) -> None:
    broken = with_expired_leaves(pki, now=NOW)
    assert sorted(broken) == list(SECRET_KEYS)
    for key in LEAF_ISSUER:
        old, new = _leaf(pki, key), _leaf(broken, key)
        assert new.not_valid_after_utc == NOW - timedelta(days=1), key
        assert new.subject == old.subject
        assert new.public_key() == old.public_key()
        assert list(new.extensions) == list(old.extensions)
        assert new.serial_number != old.serial_number
        issuer = x509.load_pem_x509_certificate(broken[f"{LEAF_ISSUER[key]}.crt"])
        new.verify_directly_issued_by(issuer)
    untouched = set(SECRET_KEYS) - set(LEAF_ISSUER)
    assert {k: v for k, v in digests(broken).items() if k in untouched} == {
        k: v for k, v in digests(pki).items() if k in untouched}


@pytest.mark.binaries
def test_an_expired_ca_keeps_its_key_and_its_copies_follow(pki: dict[str, bytes]) -> None:
    broken = with_expired_ca(pki, now=NOW)
    old, new = (x509.load_pem_x509_certificate(d["ca.crt"]) for d in (pki, broken))
    assert new.not_valid_after_utc == NOW - timedelta(days=1)
    assert (new.subject, new.public_key(), list(new.extensions)) == (old.subject, old.public_key(),
                                                                      list(old.extensions))
    after, before = digests(broken), digests(pki)
    assert after["server-ca.crt"] == after["client-ca.crt"] == after["ca.crt"]
    assert after["ca.key"] == before["ca.key"]
    for conf in ("admin.conf", "controller-manager.conf", "scheduler.conf"):
        doc = yaml.safe_load(broken[conf])
        assert doc["clusters"][0]["cluster"]["certificate-authority-data"] != yaml.safe_load(pki[conf])[
            "clusters"][0]["cluster"]["certificate-authority-data"]
        kubeconfig_client_cert(broken[conf]).verify_directly_issued_by(new)
    assert after["front-proxy-ca.crt"] == before["front-proxy-ca.crt"]
