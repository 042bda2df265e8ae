"""End to end: NAME-certs with an empty CA copy, which vCluster refuses to start from ("secret is
missing server-ca.crt"). `check` says so, and `rotate` writes a secret the control plane starts from."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_support import emulated, plugin, read_secret

pytestmark = pytest.mark.cluster


def test_an_empty_server_ca_copy_is_named_by_check_and_rotate_writes_one_vcluster_starts_from(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    empty = {"data": {"server-ca.crt": base64.b64encode(b"").decode()}}
    kube_session.core.patch_namespaced_secret(vc.certs_secret, vc.namespace, empty)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        crashed = emulator.wait_for(serving=False)
        assert crashed.crashed == "RuntimeError: secret is missing server-ca.crt"

        result = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        findings = {f["secretKey"]: f["message"] for f in json.loads(result.stdout)["findings"]}
        assert "vCluster refuses to start" in findings["server-ca.crt"]
        assert result.returncode != 0

        # the pod crash-loops, as vCluster's does: rotating it needs --force
        refused = plugin(host, vc.namespace, "rotate", vc.name, "--yes")
        assert refused.returncode == 12 and "CrashLoopBackOff" in refused.stderr, refused.stderr
        result = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--force", "--timeout", "120s")
        assert result.returncode == 0, result.stderr
        started = emulator.wait_for(after=crashed.number)
        assert started.serving
        certs = read_secret(kube_session, vc.namespace, vc.certs_secret)
        assert certs["server-ca.crt"] == certs["client-ca.crt"] and certs["server-ca.crt"]
        assert plugin(host, vc.namespace, "check", vc.name).returncode == 0


def test_absent_ca_copies_are_named_by_check_and_rotate_writes_them_over_the_volumes_old_files(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    """Absent keys start (vCluster copies ca where /data/pki has no file), but a file the volume kept
    from before would be used instead; what rotate writes carries the copies explicitly."""
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        first = emulator.wait_for()
        gone = {"data": dict.fromkeys(("server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key"))}
        kube_session.core.patch_namespaced_secret(vc.certs_secret, vc.namespace, gone)

        result = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        findings = {f["secretKey"]: f["message"] for f in json.loads(result.stdout)["findings"]}
        assert "persistent volume an old copy stays in use" in findings["server-ca.crt"], findings

        result = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "120s")
        assert result.returncode == 0, result.stderr
        assert emulator.wait_for(after=first.number).serving
        certs = read_secret(kube_session, vc.namespace, vc.certs_secret)
        assert certs["server-ca.key"] == certs["ca.key"] and certs["client-ca.crt"] == certs["server-ca.crt"]
        assert plugin(host, vc.namespace, "check", vc.name).returncode == 0
