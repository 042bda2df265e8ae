"""The control-plane emulator itself: it serves what NAME-certs holds, restarts with the pods, keeps its
etcd data, renews expiring leaves at start-up only for vCluster >= 0.33 (loft-sh/vcluster
`pkg/certs/ensure.go`), and writes vc-NAME as vCluster's leader does (`pkg/setup/controllers.go`)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_vcerts.pki import ca_fingerprint, inspect_pki
from tests.integration.e2e_support import (
    emulated,
    kubectl,
    port_forward,
    read_secret,
    save_vc_kubeconfig,
    wait_serving,
    with_server,
)
from tests.support.polling import wait_until

pytestmark = pytest.mark.cluster


def test_the_emulated_control_plane_serves_vc_name_and_keeps_objects_across_a_pod_restart(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(emulated_readiness=True)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        first = wait_serving(emulator, None)
        assert first.renewed == () and not first.generated
        saved = save_vc_kubeconfig(emulator, tmp_path / "vc.kubeconfig")
        assert kubectl(saved, "get", "namespaces").returncode == 0
        created = kubectl(saved, "create", "serviceaccount", "survivor", "-n", "default")
        assert created.returncode == 0, created.stderr
        root_ca = kubectl(
            saved,
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        )
        assert root_ca.stdout.encode().strip() == vc.certs["ca.crt"].strip()

        pod = kube_session.core.read_namespaced_pod(f"{vc.name}-0", vc.namespace)
        kube_session.core.delete_namespaced_pod(f"{vc.name}-0", vc.namespace)
        second = wait_serving(emulator, first)
        assert second.pod_uid != pod.metadata.uid
        assert second.server == first.server  # the stable address (like the Service NAME)
        # the kubeconfig saved before the restart still reaches the (restarted) API server
        got = kubectl(saved, "get", "serviceaccount", "survivor", "-n", "default", "-o", "name")
        assert got.stdout.strip() == "serviceaccount/survivor", got.stderr


@pytest.mark.parametrize(
    ("version", "renews"),
    [
        pytest.param("0.36.1", True, id="vCluster 0.36 re-issues expired leaves at start-up and serves"),
        pytest.param("0.32.0", False, id="vCluster 0.32 has no start-up renewal and cannot serve"),
    ],
)
def test_start_up_renewal_of_expired_leaves_follows_the_vcluster_version(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path, version: str, renews: bool
) -> None:
    vc = make_vcluster(emulated_readiness=True, version=version, expired_leaves=True)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        gen = emulator.wait_for(timeout=120, serving=False)
        after = read_secret(kube_session, vc.namespace, vc.certs_secret)
        if renews:
            assert gen.serving, gen.crashed
            assert {"apiserver.crt", "etcd-server.crt", "admin.conf"} <= set(gen.renewed)
            assert ca_fingerprint(after) == ca_fingerprint(vc.certs)
            assert after["sa.key"] == vc.certs["sa.key"]
            report = inspect_pki(after, now=datetime.now(UTC))  # > 90 days left everywhere
            assert report.worst.value == "OK", [f.reason for f in report.findings]
            saved = save_vc_kubeconfig(emulator, tmp_path / "vc.kubeconfig")
            assert kubectl(saved, "get", "namespaces").returncode == 0
        else:
            assert not gen.serving and gen.crashed is not None and "expired" in gen.crashed
            assert after == vc.certs


def test_a_vcluster_without_certs_gets_a_new_pki_from_kubeadm_and_a_vc_secret_like_ensure_certs_makes(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(emulated_readiness=True, with_certs_secret=False)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        gen = wait_serving(emulator, None)
        assert gen.generated
        created = read_secret(kube_session, vc.namespace, vc.certs_secret)
        meta = kube_session.core.read_namespaced_secret(vc.certs_secret, vc.namespace).metadata
        assert [(o.kind, o.name) for o in meta.owner_references or ()] == [("Service", vc.name)]  # setOwner
        assert len(created) == 29
        assert inspect_pki(created, now=datetime.now(UTC)).worst.value == "OK"
        saved = save_vc_kubeconfig(emulator, tmp_path / "vc.kubeconfig")
        assert kubectl(saved, "get", "namespaces").returncode == 0


def test_vc_name_is_written_as_vclusters_leader_writes_it_and_answers_through_a_port_forward(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """vc-NAME names the pod's own https://localhost:8443 and is owned by the Service NAME
    (WriteKubeConfig); with `kubectl port-forward pod/NAME-0 :8443` — the kubelet's forward to the
    pod's syncer — it lists namespaces."""
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        writer = emulator.wait_exported()
        secret = kube_session.core.read_namespaced_secret(f"vc-{vc.name}", vc.namespace)
        data = read_secret(kube_session, vc.namespace, f"vc-{vc.name}")
        config = yaml.safe_load(data["config"])
        assert [c["cluster"]["server"] for c in config["clusters"]] == ["https://localhost:8443"]
        service = kube_session.core.read_namespaced_service(vc.name, vc.namespace)
        owners = [(o.kind, o.name, o.uid, o.controller) for o in secret.metadata.owner_references or ()]
        assert owners == [("Service", vc.name, service.metadata.uid, False)]
        cluster_ca = config["clusters"][0]["cluster"]["certificate-authority-data"]
        assert data["certificate-authority"] == base64.b64decode(cluster_ca)
        assert data["client-certificate"] and data["client-key"] and data["token"] == b""
        raw = tmp_path / "vc-name.kubeconfig"
        raw.write_bytes(data["config"])
        raw.chmod(0o600)
        with port_forward(host, vc.namespace, f"pod/{writer.pod_name}", 8443) as local:
            tunnelled = with_server(raw, f"https://localhost:{local}", tmp_path / "tunnelled.kubeconfig")
            got = kubectl(tunnelled, "get", "namespaces")
        assert got.returncode == 0, got.stderr


def test_with_ha_only_the_leader_writes_vc_name_and_another_replica_takes_over_when_it_goes(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(replicas=2, emulated_readiness=True)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        leader = emulator.wait_exported()
        others = wait_until(lambda: [g for g in emulator.generations if g.serving and g is not leader],
                            timeout=120, fail=lambda: AssertionError(f"one replica: {emulator.generations}"))
        assert [g.exported for g in others] == [None], "a replica that does not lead writes nothing"
        kube_session.core.delete_namespaced_pod(leader.pod_name, vc.namespace)
        wait_until(lambda: others[0].exported, timeout=60,
                   fail=lambda: AssertionError(f"no take-over: {emulator.generations} {emulator.errors}"))
