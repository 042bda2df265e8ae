"""End to end on a vCluster migrated from k3s (NAME-certs as `pkg/k8s/migrate.go` leaves it: the k3s
server CA as server-ca, the k3s client CA as ca and client-ca, the migration annotation): check,
rotate, rotate-ca and restore each end with a control plane started from what we wrote, the split
kept, and the clients users hold working as promised."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kubectl_vcerts.pki import inspect_pki
from tests.integration.e2e_support import (
    emulated,
    kubectl,
    plugin,
    read_secret,
    save_vc_kubeconfig,
    wait_serving,
)
from tests.support.k3s_migration import MIGRATED_ANNOTATION

pytestmark = pytest.mark.cluster


def first(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem)[0]


def assert_split(certs: dict[str, bytes]) -> None:
    """The layout vCluster's start-up serves from: server-ca signs apiserver.crt and is trusted by the
    kubeconfigs; ca = client-ca signs the component client certificates."""
    assert first(certs["server-ca.crt"]) != first(certs["ca.crt"])
    assert first(certs["client-ca.crt"]) == first(certs["ca.crt"])
    report = inspect_pki(certs, now=datetime.now(UTC))
    assert report.split_ca
    assert report.findings == ()


def test_a_k3s_migrated_vcluster_is_checked_rotated_rotated_ca_and_restored(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(emulated_readiness=True, migrated_from_k3s=True)
    host = Path(kube_cluster.kubeconfig)
    secret = kube_session.core.read_namespaced_secret(vc.certs_secret, vc.namespace)
    assert secret.metadata.annotations[MIGRATED_ANNOTATION] == "true"
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        gen = wait_serving(emulator, None)
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        assert kubectl(saved, "get", "namespaces").returncode == 0

        # check: the split is recognised; the one finding is the kubelet client the migration left
        # signed by the CA from before it, which a rotation re-issues.
        result = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        doc = json.loads(result.stdout)
        assert doc["ca"]["split"] is True
        broken = {(f["secretKey"], f["reason"]) for f in doc["findings"]}
        assert broken == {("apiserver-kubelet-client.crt", "chain-broken")}, doc["findings"]

        # rotate: no rollback, the split kept, the saved kubeconfig still works.
        result = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "120s")
        assert result.returncode == 0, result.stderr
        gen = wait_serving(emulator, gen)
        after_rotate = read_secret(kube_session, vc.namespace, vc.certs_secret)
        assert_split(after_rotate)
        assert after_rotate["server-ca.crt"] == vc.certs["server-ca.crt"]
        assert kubectl(saved, "get", "namespaces").returncode == 0
        result = plugin(host, vc.namespace, "check", vc.name)
        assert result.returncode == 0, result.stdout

        # rotate-ca: two new CAs, still split; the new admin kubeconfig works, the old one does not.
        out = tmp_path / "new-admin.kubeconfig"
        result = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "120s",
                        "--kubeconfig-out", str(out), "--vcluster-server", emulator.service, "-o", "json")
        assert result.returncode == 0, result.stderr
        backup = json.loads(result.stdout)["backup"]
        gen = wait_serving(emulator, gen)
        after_ca = read_secret(kube_session, vc.namespace, vc.certs_secret)
        assert_split(after_ca)
        assert first(after_ca["server-ca.crt"]) != first(after_rotate["server-ca.crt"])
        assert first(after_ca["ca.crt"]) != first(after_rotate["ca.crt"])
        assert kubectl(out, "get", "namespaces").returncode == 0
        assert kubectl(saved, "get", "namespaces").returncode != 0

        # restore the backup from before the CA change: the saved kubeconfig works again.
        result = plugin(host, vc.namespace, "restore", vc.name, "--backup", backup, "--yes",
                        "--timeout", "120s")
        assert result.returncode == 0, result.stderr
        wait_serving(emulator, gen)
        restored = read_secret(kube_session, vc.namespace, vc.certs_secret)
        assert_split(restored)
        assert first(restored["server-ca.crt"]) == first(after_rotate["server-ca.crt"])
        assert kubectl(saved, "get", "namespaces").returncode == 0
