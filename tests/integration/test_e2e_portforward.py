"""The virtual API through a port-forward (private nodes): vc-NAME's server does not answer,
no --vcluster-server is given, and `kubectl vcerts nodes NAME` still works by forwarding through the
REAL host kube-apiserver's pods/portforward to the control-plane pod's port 8443.

kwok plays the kubelet: the dev cluster enables its PortForward CRD, a PortForward object sends the
fixture pod's 8443 to the emulator's loopback port (where the syncer in front of the REAL virtual
kube-apiserver answers), and the pod's node gets the loopback address so the host API server can
reach kwok's kubelet endpoint.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_vcerts.errors import ExitCode
from tests.integration.e2e_support import emulated, plugin, read_secret, wait_serving
from tests.integration.test_check import _token_kubeconfig
from tests.integration.test_private_nodes import make_node, virtual

pytestmark = pytest.mark.cluster


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def require_portforward_crd(kube_cluster: Any) -> None:
    found = kube_cluster.kubectl("get", "crd", "portforwards.kwok.x-k8s.io", check=False)
    if found.returncode != 0:
        # Every cluster tests/support/devcluster.py creates enables it, so its absence is a harness bug
        # (or a stale reused cluster), never a reason to pass silently.
        pytest.fail(
            f"cluster {kube_cluster.name} has no kwok PortForward CRD (devcluster enables it); "
            f"recreate it with scripts/dev-cluster down/up {kube_cluster.name}"
        )


def forward_pod_to(kube_cluster: Any, kube_session: Any, namespace: str, pod: str, port: int) -> None:
    """kwok forwards pods/portforward of `pod`:8443 to 127.0.0.1:`port`, reachable via its node."""
    node = kube_session.core.read_namespaced_pod(pod, namespace).spec.node_name
    # kwok's nodes have no address here; the API server dials the kubelet endpoint at this address.
    kube_session.core.patch_node_status(
        node, {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}
    )
    manifest = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"forwards": [{"ports": [8443], "target": {"address": "127.0.0.1", "port": port}}]},
    }
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def break_vc_server(kube_session: Any, namespace: str, name: str) -> str:
    """Point vc-NAME's server at a closed loopback port (as if only reachable inside the host cluster)."""
    doc = yaml.safe_load(read_secret(kube_session, namespace, f"vc-{name}")["config"])
    server = f"https://127.0.0.1:{closed_loopback_port()}"
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = server
    kube_session.core.patch_namespaced_secret(
        f"vc-{name}", namespace, {"stringData": {"config": yaml.safe_dump(doc)}}
    )
    return server


def test_nodes_lists_the_virtual_nodes_through_a_port_forward_when_vc_servers_address_is_unreachable(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        generation = wait_serving(emulator, None)
        make_node(virtual(kube_session, emulator, vc.namespace, vc.name), "worker-manual")
        assert emulator.forwarder is not None
        forward_pod_to(kube_cluster, kube_session, vc.namespace, generation.pod_name, emulator.forwarder.port)
        dead = break_vc_server(kube_session, vc.namespace, vc.name)

        listed = plugin(host, vc.namespace, "nodes", vc.name, "-o", "json")

        assert listed.returncode == 0, listed.stderr
        assert "worker-manual" in listed.stdout
        assert dead not in listed.stdout


def test_without_a_port_forward_target_the_error_names_vcluster_server(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu"):
        break_vc_server(kube_session, vc.namespace, vc.name)

        failed = plugin(host, vc.namespace, "nodes", vc.name, timeout=120)

        assert failed.returncode != 0
        assert "--vcluster-server" in failed.stderr


def test_a_user_without_create_pods_portforward_gets_a_forbidden_error_naming_it(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    reader = _token_kubeconfig(
        kube_cluster,
        kube_session,
        tmp_path,
        rules=[{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
    )
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        generation = wait_serving(emulator, None)
        assert emulator.forwarder is not None
        forward_pod_to(kube_cluster, kube_session, vc.namespace, generation.pod_name, emulator.forwarder.port)
        break_vc_server(kube_session, vc.namespace, vc.name)

        refused = plugin(reader, vc.namespace, "nodes", vc.name, timeout=120)

        assert refused.returncode == ExitCode.FORBIDDEN, refused.stderr
        assert f"pods/portforward on pod {vc.namespace}/{generation.pod_name}" in refused.stderr
        assert "create pods/portforward" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_check_live_reads_the_served_certificate_through_a_port_forward(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        generation = wait_serving(emulator, None)
        assert emulator.forwarder is not None
        forward_pod_to(kube_cluster, kube_session, vc.namespace, generation.pod_name, emulator.forwarder.port)
        dead = break_vc_server(kube_session, vc.namespace, vc.name)

        result = plugin(host, vc.namespace, "check", vc.name, "--live", "-o", "json")

        assert result.returncode == 0, result.stderr
        live = json.loads(result.stdout)["live"]
        assert live["source"] == f"port-forward to pod {generation.pod_name}:8443"
        assert live["server"] != dead
        assert live["chainsToStoredCa"] is True  # the syncer's own certificate, signed by server-ca
        assert [f["reason"] for f in live["findings"]] == ["served-by-syncer"]
        assert live["drift"] is False
