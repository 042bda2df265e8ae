"""The vCluster fixture is vCluster-shaped: 29 keys from the real kubeadm; each variant is what it says."""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from kubectl_vcerts.kube.client import KubeSession
from tests.support.devcluster import DevCluster
from tests.support.kubeadm_pki import (
    LEAF_ISSUER,
    check_expiration_config,
    digests,
    kubeconfig_client_cert,
    materialise,
)
from tests.support.vcluster import FixtureVCluster, MakeVCluster, pod_ready, pod_status

pytestmark = pytest.mark.cluster

# vCluster's certMap values (loft-sh/vcluster pkg/certs/constants.go), spelled out so a drift fails.
VCLUSTER_SECRET_KEYS = {
    "admin.conf", "controller-manager.conf", "scheduler.conf",
    "apiserver.crt", "apiserver.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
    "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
    "ca.crt", "ca.key", "server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key",
    "front-proxy-ca.crt", "front-proxy-ca.key", "front-proxy-client.crt", "front-proxy-client.key",
    "sa.key", "sa.pub",
    "etcd-ca.crt", "etcd-ca.key", "etcd-healthcheck-client.crt", "etcd-healthcheck-client.key",
    "etcd-peer.crt", "etcd-peer.key", "etcd-server.crt", "etcd-server.key",
}
LEAF_FILES = {  # leaf certificate in the materialised /data/pki layout → its CA file
    "apiserver.crt": "ca.crt",
    "apiserver-kubelet-client.crt": "ca.crt",
    "front-proxy-client.crt": "front-proxy-ca.crt",
    "apiserver-etcd-client.crt": "etcd/ca.crt",
    "etcd/healthcheck-client.crt": "etcd/ca.crt",
    "etcd/peer.crt": "etcd/ca.crt",
    "etcd/server.crt": "etcd/ca.crt",
}
KUBECONFIG_USERS = {
    "admin.conf": "kubernetes-super-admin",
    "controller-manager.conf": "system:kube-controller-manager",
    "scheduler.conf": "system:kube-scheduler",
}


def _secret_data(session: KubeSession, name: str) -> dict[str, bytes]:
    secret = session.core.read_namespaced_secret(name, session.namespace)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _openssl_verify(ca: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)],
                          capture_output=True, text=True, check=False)


def _materialise_with_client_certs(data: dict[str, bytes], directory: Path) -> Path:
    pki = materialise(data, directory)
    for conf in KUBECONFIG_USERS:
        cert = kubeconfig_client_cert(data[conf])
        from cryptography.hazmat.primitives.serialization import Encoding

        (pki / f"{conf}.client.crt").write_bytes(cert.public_bytes(Encoding.PEM))
    return pki


def test_the_certs_secret_holds_vclusters_29_keys_from_kubeadm(
        make_vcluster: MakeVCluster, kube_session: KubeSession, tmp_path: Path) -> None:
    vc = make_vcluster("vc")
    data = _secret_data(kube_session, "vc-certs")
    assert set(data) == VCLUSTER_SECRET_KEYS
    assert digests(data) == digests(vc.certs)
    assert all(data[k] for k in data), "no key may be empty"
    same = digests(data)
    assert same["server-ca.crt"] == same["client-ca.crt"] == same["ca.crt"]
    assert same["server-ca.key"] == same["client-ca.key"] == same["ca.key"]

    pki = _materialise_with_client_certs(data, tmp_path / "pki")
    for leaf, ca in [*LEAF_FILES.items(), *((f"{c}.client.crt", "ca.crt") for c in KUBECONFIG_USERS)]:
        result = _openssl_verify(pki / ca, pki / leaf)
        assert result.returncode == 0, f"{leaf} does not verify against {ca}: {result.stderr.strip()}"
    # A leaf checked against the wrong CA must fail: the check above can fail.
    assert _openssl_verify(pki / "ca.crt", pki / "etcd/server.crt").returncode != 0

    for conf, user in KUBECONFIG_USERS.items():
        doc = yaml.safe_load(data[conf])
        assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
        assert doc["users"][0]["name"] == user
        assert kubeconfig_client_cert(data[conf]).subject.get_attributes_for_oid(
            x509.NameOID.COMMON_NAME)[0].value == user

    apiserver = x509.load_pem_x509_certificate(data["apiserver.crt"])
    sans = apiserver.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "vc" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.96.0.1", "127.0.0.1"]
    etcd = x509.load_pem_x509_certificate(data["etcd-server.crt"])
    etcd_dns = etcd.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert {"vc-etcd", f"*.vc-headless.{kube_session.namespace}", "vc-2.vc-headless"} <= set(etcd_dns)


def test_kubeadm_check_expiration_reads_the_materialised_directory(
        kube_cluster: DevCluster, make_vcluster: MakeVCluster, tmp_path: Path) -> None:
    vc = make_vcluster("vc", expired_leaves=True)
    pki = materialise(vc.certs, tmp_path / "pki")
    result = subprocess.run(
        [str(kube_cluster.bin_dir / "kubeadm"), "certs", "check-expiration",
         "--config", str(check_expiration_config(pki)), "-o", "json"],
        capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    certs = {c["name"]: c for c in report["certificates"]}
    cas = {c["name"]: c for c in report["certificateAuthorities"]}
    # kubeadm reads kubeconfig files only from /etc/kubernetes, so it reports those as missing.
    leaves = ["apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "etcd-healthcheck-client",
              "etcd-peer", "etcd-server", "front-proxy-client"]
    for name in leaves:
        assert certs[name]["missing"] is False, name
        assert datetime.fromisoformat(certs[name]["expirationDate"]) < datetime.now(UTC), name
    for name in ("ca", "etcd-ca", "front-proxy-ca"):
        assert cas[name]["missing"] is False
        assert cas[name]["residualTime"] > 0


@dataclass(frozen=True)
class Variant:
    kwargs: dict[str, Any]
    kind: str = "StatefulSet"
    pods: int = 1
    status: str = "Running"


VARIANTS = {
    "a default vCluster is a StatefulSet with a volume claim template": Variant({}),
    "without persistence it is a Deployment with an emptyDir data volume":
        Variant({"persistence": False}, kind="Deployment"),
    "high availability runs three replicas": Variant({"replicas": 3}, pods=3),
    "deployed etcd adds the NAME-etcd StatefulSet mounting NAME-certs": Variant({"deployed_etcd": True}),
    "private nodes are enabled in vc-config": Variant({"private_nodes": True}),
    "a k3s vCluster says so in vc-config": Variant({"distro": "k3s", "version": "0.24.0"}),
    "an older vCluster runs an older syncer image": Variant({"version": "0.24.0"}),
    "expired leaves end before now while the CAs stay valid": Variant({"expired_leaves": True}),
    "an expired CA ends before now while the leaves still verify by signature": Variant({"expired_ca": True}),
    "a pod that is not running crash-loops": Variant({"pod_running": False}, status="CrashLoopBackOff"),
}


def _config(kube_session: KubeSession, vc: FixtureVCluster) -> dict[str, Any]:
    return yaml.safe_load(_secret_data(kube_session, vc.config_secret)["config.yaml"])  # type: ignore[no-any-return]


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
def test_each_variant_creates_what_it_says(
        variant: Variant, make_vcluster: MakeVCluster, kube_session: KubeSession, tmp_path: Path) -> None:
    vc = make_vcluster("vc", **variant.kwargs)
    ns, core, apps = kube_session.namespace, kube_session.core, kube_session.apps
    spec = vc.spec
    now = datetime.now(UTC)

    workload = (apps.read_namespaced_stateful_set if variant.kind == "StatefulSet"
                else apps.read_namespaced_deployment)("vc", ns)
    assert vc.kind == variant.kind
    assert workload.metadata.labels["app"] == "vcluster"
    assert workload.metadata.labels["release"] == "vc"
    container = next(c for c in workload.spec.template.spec.containers if c.name == "syncer")
    assert container.image == f"ghcr.io/loft-sh/vcluster-pro:{spec.version}"
    volumes = {v.name: v for v in workload.spec.template.spec.volumes}
    if variant.kind == "StatefulSet":
        assert [t.metadata.name for t in workload.spec.volume_claim_templates] == ["data"]
        assert "data" not in volumes
    else:
        assert volumes["data"].empty_dir is not None

    pods = core.list_namespaced_pod(ns, label_selector=vc.selector).items
    assert len(pods) == variant.pods
    assert {pod_status(p) for p in pods} == {variant.status}
    assert all(pod_ready(p) == (variant.status == "Running") for p in pods)

    for name in ("vc", "vc-headless"):
        core.read_namespaced_service(name, ns)
    service = core.read_namespaced_service("vc", ns)
    certs_secret = core.read_namespaced_secret("vc-certs", ns)
    assert certs_secret.type == "Opaque"
    assert certs_secret.metadata.labels == {"app": "vcluster", "vcluster-name": "vc"}
    assert [(o.kind, o.name, o.uid) for o in certs_secret.metadata.owner_references] == [
        ("Service", "vc", service.metadata.uid)]
    kubeconfig = yaml.safe_load(_secret_data(kube_session, "vc-vc")["config"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://localhost:8443"

    config = _config(kube_session, vc)
    distro = config["controlPlane"]["distro"]
    assert distro["k8s"]["enabled"] is (spec.distro == "k8s")
    assert distro.get("k3s", {}).get("enabled", False) is (spec.distro == "k3s")
    assert config["controlPlane"]["statefulSet"]["highAvailability"]["replicas"] == variant.pods
    assert config["privateNodes"]["enabled"] is spec.private_nodes
    assert config["controlPlane"]["backingStore"]["etcd"]["deploy"]["enabled"] is spec.deployed_etcd
    assert config["networking"]["advanced"]["clusterDomain"] == "cluster.local"

    if spec.deployed_etcd:
        etcd = apps.read_namespaced_stateful_set("vc-etcd", ns)
        assert etcd.spec.template.metadata.labels == {"app": "vcluster-etcd", "release": "vc"}
        assert [v.secret.secret_name for v in etcd.spec.template.spec.volumes if v.secret] == ["vc-certs"]
        etcd_pods = core.list_namespaced_pod(ns, label_selector="app=vcluster-etcd,release=vc").items
        assert [pod_ready(p) for p in etcd_pods] == [True]
    else:
        assert not core.list_namespaced_pod(ns, label_selector="app=vcluster-etcd").items

    data = _secret_data(kube_session, "vc-certs")
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaves = {k: (kubeconfig_client_cert(data[k]) if k.endswith(".conf")
                  else x509.load_pem_x509_certificate(data[k])) for k in LEAF_ISSUER}
    assert (ca.not_valid_after_utc < now) is spec.expired_ca
    assert all((leaf.not_valid_after_utc < now) is spec.expired_leaves for leaf in leaves.values())
    pki = _materialise_with_client_certs(data, tmp_path / "pki")
    verified = _openssl_verify(pki / "ca.crt", pki / "apiserver.crt")
    assert (verified.returncode == 0) is not (spec.expired_ca or spec.expired_leaves)
    if spec.expired_ca:
        # Same key and name: the signature still checks out, only the validity period fails.
        leaves["apiserver.crt"].verify_directly_issued_by(ca)
        assert "certificate has expired" in verified.stderr
