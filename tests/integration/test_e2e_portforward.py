"""The virtual API through a port-forward: vc-NAME names vCluster's in-pod https://localhost:8443 (or a
server that does not answer from here), no --vcluster-server is given, and `kubectl vcerts` still works
by forwarding through the REAL host kube-apiserver's pods/portforward to the control-plane pod's 8443.

kwok plays the kubelet: the dev cluster enables its PortForward CRD, and the emulator, for every pod it
serves, points that pod's 8443 at the pod's syncer in front of its REAL kube-apiserver
(`tests.support.pod_forwards`).
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_vcerts.errors import ExitCode
from tests.integration.e2e_support import emulated, kubectl, plugin, read_secret, wait_serving, with_server
from tests.integration.test_check import _token_kubeconfig
from tests.integration.test_private_nodes import make_node, virtual
from tests.support.pki_builder import Options, cached_pki

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


def test_nodes_lists_the_virtual_nodes_through_a_port_forward_when_vc_name_names_the_in_pod_server(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        emulator.wait_exported()
        written = yaml.safe_load(read_secret(kube_session, vc.namespace, f"vc-{vc.name}")["config"])
        assert written["clusters"][0]["cluster"]["server"] == "https://localhost:8443"
        make_node(virtual(kube_session, emulator, vc.namespace, vc.name), "worker-manual")

        listed = plugin(host, vc.namespace, "nodes", vc.name, "-o", "json")

        assert listed.returncode == 0, listed.stderr
        assert "worker-manual" in listed.stdout


def test_without_a_port_forward_target_the_error_names_vcluster_server(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    # a kubelet that forwards nothing to the pod
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu", pod_forwards=False) as emulator:
        emulator.wait_exported()

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
        generation = emulator.wait_exported()

        refused = plugin(reader, vc.namespace, "nodes", vc.name, timeout=120)

        assert refused.returncode == ExitCode.FORBIDDEN, refused.stderr
        assert f"pods/portforward on pod {vc.namespace}/{generation.pod_name}" in refused.stderr
        assert "create pods/portforward" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_check_live_reads_the_served_certificate_through_a_port_forward_when_vc_names_server_is_dead(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        generation = emulator.wait_exported()  # first: a later write of vc-NAME would mend the server
        dead = break_vc_server(kube_session, vc.namespace, vc.name)

        result = plugin(host, vc.namespace, "check", vc.name, "--live", "-o", "json")

        assert result.returncode == 0, result.stderr
        live = json.loads(result.stdout)["live"]
        assert live["source"] == f"port-forward to pod {generation.pod_name}:8443"
        assert live["server"] != dead
        assert live["chainsToStoredCa"] is True  # the syncer's own certificate, signed by server-ca
        assert [f["reason"] for f in live["findings"]] == ["served-by-syncer"]
        assert live["drift"] is False


def test_credentials_the_running_pods_refuse_with_401_fall_back_to_admin_conf_then_name_what_to_do(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """vCluster's syncer answers a client certificate its client-ca does not verify with 401 (not a
    failed handshake): kubectl says to log in; the plugin tries NAME-certs' admin.conf next, and when
    the pods refuse that too it says whose credentials were refused and what to do."""
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    other = yaml.safe_load(cached_pki(Options(name="other"))["admin.conf"])  # a client cert of another CA
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        emulator.wait_exported()  # first: a later write of vc-NAME would put the right user back
        doc = yaml.safe_load(read_secret(kube_session, vc.namespace, f"vc-{vc.name}")["config"])
        doc["users"][0]["user"] = other["users"][0]["user"]
        kube_session.core.patch_namespaced_secret(
            f"vc-{vc.name}", vc.namespace, {"stringData": {"config": yaml.safe_dump(doc)}})
        foreign = tmp_path / "foreign.kubeconfig"
        foreign.write_text(yaml.safe_dump(doc))
        foreign.chmod(0o600)
        got = kubectl(with_server(foreign, emulator.service, tmp_path / "through-service.kubeconfig"),
                      "get", "namespaces")
        listed = plugin(host, vc.namespace, "nodes", vc.name, "-o", "json", timeout=120)
        admin = yaml.safe_load(read_secret(kube_session, vc.namespace, vc.certs_secret)["admin.conf"])
        admin["users"][0]["user"] = other["users"][0]["user"]
        kube_session.core.patch_namespaced_secret(
            vc.certs_secret, vc.namespace, {"stringData": {"admin.conf": yaml.safe_dump(admin)}})
        refused = plugin(host, vc.namespace, "nodes", vc.name, timeout=120)

    # kubectl's words for a 401 (with a cold discovery cache its detail is client-go's, not the Status')
    assert got.returncode != 0 and "You must be logged in to the server" in got.stderr, got.stderr
    assert listed.returncode == 0, listed.stderr
    assert refused.returncode == ExitCode.FORBIDDEN, refused.stderr
    assert "rejected the vCluster's admin credentials (HTTP 401 Unauthorized)" in refused.stderr
    assert f"port-forward to pod {vc.name}-0:8443" in refused.stderr and "restart" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_right_after_a_ca_change_nodes_works_before_vcluster_rewrote_vc_name(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """vCluster's leader rewrites vc-NAME a moment after it starts; until then vc-NAME trusts the old
    CA only. The plugin uses NAME-certs' admin.conf then (here: the leader never gets to write)."""
    require_portforward_crd(kube_cluster)
    vc = make_vcluster(emulated_readiness=True, private_nodes=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu", export_delay=3600) as emulator:
        first = wait_serving(emulator, None)
        changed = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "120s")
        assert changed.returncode == 0, changed.stderr
        wait_serving(emulator, first)
        stale = yaml.safe_load(read_secret(kube_session, vc.namespace, f"vc-{vc.name}")["config"])
        trusted = base64.b64decode(stale["clusters"][0]["cluster"]["certificate-authority-data"])
        assert trusted != read_secret(kube_session, vc.namespace, vc.certs_secret)["ca.crt"]

        listed = plugin(host, vc.namespace, "nodes", vc.name, "-o", "json", timeout=120)

    assert listed.returncode == 0, listed.stderr
