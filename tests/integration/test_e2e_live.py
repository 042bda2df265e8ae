"""`check --live` against the emulator's syncer in front of a REAL API server: its own certificate, signed
by the stored CA, is no drift; a CA change whose restart was skipped (`--no-restart`) is, until the pod
is restarted. Renewed leaves cannot be seen from outside: `check` names the pods not restarted."""

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
    vc = make_vcluster(emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with emulated(kube_cluster, vc.namespace, vc.name, tmp_path / "emu") as emulator:
        gen = wait_serving(emulator, None)
        code, doc = live(host, vc.namespace, vc.name)
        assert (code, doc["drift"], doc["inSecret"], doc["chainsToStoredCa"]) == (0, False, False, True)
        assert [f["reason"] for f in doc["findings"]] == ["served-by-syncer"]
        # vc-NAME names the pod's own https://localhost:8443: from here the plugin forwards to the pod
        assert doc["source"] == f"port-forward to pod {vc.name}-0:8443", doc
        assert doc["server"].startswith("https://127.0.0.1:") and doc["server"] != gen.server

        # renewed leaves are invisible from outside (the syncer's certificate is not in the secret):
        # the pods not restarted since the write are what says so
        rotated = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--no-restart")
        assert rotated.returncode == 0, rotated.stderr
        code, doc = live(host, vc.namespace, vc.name, "--vcluster-server", gen.server or "")
        assert (code, doc["drift"], doc["source"]) == (0, False, "--vcluster-server")
        assert [f["reason"] for f in doc["findings"]] == ["served-by-syncer"]
        checked = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        assert f"{vc.name}-0" in json.dumps(json.loads(checked.stdout)["notRestarted"]), checked.stdout

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
        assert (code, doc["drift"], doc["chainsToStoredCa"]) == (0, False, True)
