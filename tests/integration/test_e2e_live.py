"""`check --live` against the emulator's REAL API server: no drift while the pods serve the secret, drift
after a rotation whose restart was skipped (`--no-restart`), none again once the pod is restarted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_support import emulated, plugin, wait_serving

pytestmark = pytest.mark.cluster


def live(kubeconfig: Path, namespace: str, name: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = plugin(kubeconfig, namespace, "check", name, "--live", "-o", "json", *extra)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)["live"]


def test_check_live_reports_drift_after_rotations_without_restart_and_none_after_the_restart(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster()
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        gen = wait_serving(emulator, None)
        code, doc = live(host, vc.namespace, vc.name)
        assert (code, doc["drift"], doc["inSecret"], doc["chainsToStoredCa"]) == (0, False, True, True)
        assert doc["source"] == f"vc-{vc.name}" and doc["server"] == gen.server

        rotated = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--no-restart")
        assert rotated.returncode == 0, rotated.stderr
        code, doc = live(host, vc.namespace, vc.name, "--vcluster-server", gen.server or "")
        assert (code, doc["drift"], doc["source"]) == (4, True, "--vcluster-server")
        assert [f["reason"] for f in doc["findings"]] == ["served-cert-not-in-secret"]

        rotated = plugin(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--no-restart")
        assert rotated.returncode == 0, rotated.stderr
        code, doc = live(host, vc.namespace, vc.name)
        assert (code, doc["drift"], doc["chainsToStoredCa"]) == (4, True, False)
        assert [f["reason"] for f in doc["findings"]] == ["served-chain-untrusted"]
        table = plugin(host, vc.namespace, "check", vc.name, "--live")
        assert "DRIFT" in table.stdout and "served-chain-untrusted" in table.stdout

        kube_session.core.delete_namespaced_pod(f"{vc.name}-0", vc.namespace)
        wait_serving(emulator, gen)
        code, doc = live(host, vc.namespace, vc.name)
        assert (code, doc["drift"], doc["inSecret"]) == (0, False, True)
