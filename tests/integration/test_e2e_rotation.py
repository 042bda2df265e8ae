"""End to end: the plugin rotates a vCluster whose control plane really runs (the emulator starts a REAL
etcd + kube-apiserver from NAME-certs for every new pod, behind the syncer's own serving certificate),
and what users hold keeps or stops working as the vCluster docs say."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from kubectl_vcerts.pki import ca_fingerprint
from tests.integration.e2e_support import (
    emulated,
    kubectl,
    plugin,
    read_secret,
    save_vc_kubeconfig,
    token_kubeconfig,
    wait_serving,
    whoami,
    with_server,
)

pytestmark = pytest.mark.cluster


def served_certificate(server: str) -> x509.Certificate:
    host, port = server.removeprefix("https://").rsplit(":", 1)
    pem = ssl.get_server_certificate((host, int(port)), timeout=10)
    return x509.load_pem_x509_certificate(pem.encode())


def assert_certificate_error(result: Any) -> None:
    assert result.returncode != 0
    assert "x509" in result.stderr and "certificate" in result.stderr, result.stderr


def test_rotate_keeps_kubeconfigs_rotate_ca_replaces_them_and_restore_brings_the_old_ones_back(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        gen = wait_serving(emulator, None)
        assert gen.server is not None
        # Before: the kubeconfig from vc-NAME lists namespaces; a ServiceAccount token authenticates.
        saved = save_vc_kubeconfig(emulator, tmp_path / "saved.kubeconfig")
        assert kubectl(saved, "get", "namespaces").returncode == 0
        assert kubectl(saved, "create", "serviceaccount", "e2e", "-n", "default").returncode == 0
        token = kubectl(saved, "create", "token", "e2e", "-n", "default", "--duration", "2h")
        assert token.returncode == 0, token.stderr
        with_token = token_kubeconfig(saved, token.stdout.strip(), tmp_path / "token.kubeconfig")
        assert whoami(with_token).stdout == "system:serviceaccount:default:e2e"
        served_before = served_certificate(gen.server)

        # rotate: a new serving certificate; the saved kubeconfig and the token keep working.
        result = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "120s")
        assert result.returncode == 0, result.stderr
        gen = wait_serving(emulator, gen)
        served = served_certificate(gen.server or "")
        assert served.serial_number != served_before.serial_number
        certs = read_secret(kube_session, vc.namespace, vc.certs_secret)
        # users reach the syncer: its own certificate, issued by the (first) serving CA; the pod's
        # kube-apiserver behind it serves the renewed apiserver.crt
        assert served.subject.rfc4514_string() == "CN=kube-apiserver"
        served.verify_directly_issued_by(x509.load_pem_x509_certificates(certs["ca.crt"])[0])
        behind = served_certificate(gen.apiserver or "")
        assert behind == x509.load_pem_x509_certificate(certs["apiserver.crt"])
        assert ca_fingerprint(certs) == ca_fingerprint(vc.certs)
        assert kubectl(saved, "get", "namespaces").returncode == 0
        assert whoami(with_token).stdout == "system:serviceaccount:default:e2e"

        # rotate-ca: the saved kubeconfig fails to verify; the new vc-NAME and --kubeconfig-out work.
        out = tmp_path / "new-admin.kubeconfig"
        before_ca = gen
        result = plugin(
            host,
            vc.namespace,
            "rotate-ca",
            vc.name,
            "--yes",
            "--timeout",
            "120s",
            "--kubeconfig-out",
            str(out),
            "-o",
            "json",
        )
        assert result.returncode == 0, result.stderr
        backup_before_ca = json.loads(result.stdout)["backup"]
        gen = wait_serving(emulator, gen)
        assert_certificate_error(kubectl(saved, "get", "namespaces"))
        fresh = save_vc_kubeconfig(emulator, tmp_path / "fresh.kubeconfig", after=before_ca)
        assert kubectl(fresh, "get", "namespaces").returncode == 0
        # the file names the server of vc-NAME, vCluster's in-pod https://localhost:8443, and says so;
        # through a tunnel to the Service (here: its address) it works
        assert yaml.safe_load(out.read_text())["clusters"][0]["cluster"]["server"] == "https://localhost:8443"
        assert any("in-pod address" in line for line in json.loads(result.stdout)["nextSteps"]), result.stdout
        tunnelled = with_server(out, emulator.service, tmp_path / "tunnelled.kubeconfig")
        assert kubectl(tunnelled, "get", "namespaces").returncode == 0, "the --kubeconfig-out file must work"
        # sa.key is kept: the token still authenticates when its client trusts the new CA.
        assert whoami(token_kubeconfig(fresh, token.stdout.strip(), tmp_path / "t2")).stdout.endswith(":e2e")

        # restore the backup taken before the CA rotation: the originally saved kubeconfig works again.
        result = plugin(
            host, vc.namespace, "restore", vc.name, "--backup", backup_before_ca, "--yes", "--timeout", "120s"
        )
        assert result.returncode == 0, result.stderr
        wait_serving(emulator, gen)
        assert kubectl(saved, "get", "namespaces").returncode == 0
        assert whoami(with_token).stdout == "system:serviceaccount:default:e2e"
        assert_certificate_error(kubectl(tunnelled, "get", "namespaces"))


@pytest.mark.parametrize(
    ("variant", "command"),
    [
        pytest.param(
            {"version": "0.32.0", "expired_leaves": True},
            "rotate",
            id="expired leaves of a vCluster without start-up renewal are brought back by rotate",
        ),
        pytest.param({"expired_ca": True}, "rotate-ca", id="an expired CA is brought back by rotate-ca"),
    ],
)
def test_an_expired_vcluster_is_brought_back_to_a_working_api_server(
    kube_cluster: Any,
    kube_session: Any,
    make_vcluster: Any,
    tmp_path: Path,
    variant: dict[str, Any],
    command: str,
) -> None:
    vc = make_vcluster(emulated_readiness=True, **variant)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        broken = emulator.wait_for(timeout=120, serving=False)
        assert broken.crashed is not None and "expired" in broken.crashed
        # the pod crash-loops (not Ready), as vCluster's does: the command needs --force
        refused = plugin(Path(kube_cluster.kubeconfig), vc.namespace, command, vc.name, "--yes")
        assert refused.returncode == 12 and "--force" in refused.stderr, refused.stderr
        result = plugin(
            Path(kube_cluster.kubeconfig), vc.namespace, command, vc.name, "--yes", "--force", "--timeout",
            "120s",
        )
        assert result.returncode == 0, result.stderr
        wait_serving(emulator, broken)
        fresh = save_vc_kubeconfig(emulator, tmp_path / "fresh.kubeconfig", after=broken)
        got = kubectl(fresh, "get", "namespaces")
        assert got.returncode == 0, got.stderr


def test_a_crash_looping_pod_runs_a_rotation_written_without_restart_once_the_kubelet_starts_it_again(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """The kubelet starts a crashed syncer container again in the same pod, and each start reads
    NAME-certs: a rotation written with --no-restart is then running although the pod is as old as
    before, and `check` must not call it "not restarted" (it reads the container's start)."""
    config = Path(kube_cluster.kubeconfig)
    vc = make_vcluster(emulated_readiness=True, version="0.32.0", expired_leaves=True)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        broken = emulator.wait_for(timeout=120, serving=False)
        assert broken.crashed is not None and "expired" in broken.crashed
        result = plugin(config, vc.namespace, "rotate", vc.name, "--yes", "--force", "--no-restart")
        assert result.returncode == 0, result.stderr
        healed = wait_serving(emulator, broken)
        assert healed.pod_uid == broken.pod_uid and healed.restarts >= 1  # same pod, a container restart
        pod = kube_session.core.read_namespaced_pod(healed.pod_name, vc.namespace)
        assert pod.status.container_statuses[0].restart_count == healed.restarts
        assert pod.status.start_time < healed.began.replace(microsecond=0)
        check = plugin(config, vc.namespace, "check", vc.name, "-o", "json")
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["notRestarted"] is None, check.stdout
        fresh = save_vc_kubeconfig(emulator, tmp_path / "fresh.kubeconfig", after=broken)
        got = kubectl(fresh, "get", "namespaces")
        assert got.returncode == 0, got.stderr
