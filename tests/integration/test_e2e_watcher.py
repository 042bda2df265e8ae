"""End to end with vCluster's cert watcher running in every emulated pod (tests/support/cert_watcher.py):

* one replica: the watcher ignores any Lease. One that read NAME-certs before our CA change and writes
  its re-issued (old-CA) PKI after it is caught: the read-back finds the old CA, the run puts its
  backup back and fails (exit 19) — the PKI is never mixed, and the user is never told it worked;
* HA: while the plugin writes and restarts it holds vCluster's own rotation Lease, and watchers whose
  leaves come due skip their rotation instead of racing it.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ExitCode
from kubectl_vcerts.pki import ca_fingerprint
from tests.integration.e2e_support import kubectl, plugin, read_secret, save_vc_kubeconfig, wait_serving
from tests.integration.rotation_support import cli_args, cli_env, leases
from tests.support.emulator import Emulator

pytestmark = pytest.mark.cluster

WATCHER_TICK = 0.3


def wait_for(probe: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)  # polling a condition, not timing an assertion
    raise AssertionError(f"timed out waiting for {what}")


def watched(host: Path, namespace: str, name: str, tmp_path: Path) -> Emulator:
    return Emulator(host, namespace, name, workdir=tmp_path / "emu", watcher_interval=WATCHER_TICK)


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param({}, id="StatefulSet, embedded database"),
        pytest.param({"persistence": False, "deployed_etcd": True}, id="Deployment, deployed etcd"),
        pytest.param({"deployed_etcd": True, "etcd_replicas": 3}, id="deployed etcd, 3 members"),
    ],
)
def test_a_watcher_write_racing_a_ca_change_is_caught_and_rolled_back_never_kept(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path, layout: dict[str, Any]
) -> None:
    """With deployed etcd the watcher also rolls NAME-etcd out, and its old-CA files reach the
    members' secret volume after ours: after the rollback every member runs again, on one CA, with
    the data."""
    vc = make_vcluster(emulated_readiness=True, **layout)
    host = Path(kube_cluster.kubeconfig)
    before = read_secret(kube_session, vc.namespace, vc.certs_secret)
    with watched(host, vc.namespace, vc.name, tmp_path) as emu:
        first = wait_serving(emu, None)
        assert first.watcher is not None and not first.watcher.ha
        saved = save_vc_kubeconfig(emu, tmp_path / "saved.kubeconfig")
        made = kubectl(saved, "create", "configmap", "survivor", "-n", "default")
        assert made.returncode == 0, made.stderr
        gate = first.watcher.hold_after_read()
        first.watcher.age(timedelta(days=300))  # its leaves are now within 90 days of their end
        assert first.watcher.read.wait(30), "the watcher did not start a rotation"

        proc = subprocess.Popen(
            cli_args(host, vc.namespace, "rotate-ca", vc.name, "--yes", "--timeout", "150s"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())

        def written() -> bool:
            secret = kube_session.core.read_namespaced_secret(vc.certs_secret, vc.namespace)
            return contract.OPERATION_ANNOTATION in (secret.metadata.annotations or {})

        wait_for(written, "the plugin's write")
        gate.set()  # the watcher goes on: re-issues from what it read (the old CA) and writes it back
        _out, err = proc.communicate(timeout=300)
        assert first.watcher.wrote.is_set() and first.watcher.rotations == 1, first.watcher.errors
        assert proc.returncode == int(ExitCode.ROLLED_BACK), err
        assert "the CA read back after the restart differs from the one written" in err
        after = read_secret(kube_session, vc.namespace, vc.certs_secret)
        assert ca_fingerprint(after) == ca_fingerprint(before)
        checked = plugin(host, vc.namespace, "check", vc.name, "-o", "json")
        assert checked.returncode == 0, checked.stdout  # one consistent PKI, nothing expiring
        assert json.loads(checked.stdout)["notRestarted"] is None
        # the virtual cluster works on that PKI, with its data (the old CA: the saved kubeconfig too)
        wait_for(lambda: kubectl(saved, "get", "configmap", "survivor", "-n", "default").returncode == 0,
                 "the saved kubeconfig reading the data again", timeout=120)
        if emu.store is not None:
            members = emu.store.cluster.members
            wait_for(lambda: all(emu.store and emu.store.cluster.ready(m) for m in members),
                     "every etcd member ready", timeout=120)
        wrote = kubectl(saved, "create", "configmap", "after-the-race", "-n", "default")
        assert wrote.returncode == 0, wrote.stderr


def test_ha_watchers_skip_their_rotation_while_the_plugin_holds_vclusters_lease(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster(replicas=2, emulated_readiness=True)
    host = Path(kube_cluster.kubeconfig)
    with watched(host, vc.namespace, vc.name, tmp_path) as emu:
        wait_for(lambda: len([g for g in emu.generations if g.plane is not None and g.serving]) == 2,
                 "two serving replicas", timeout=120)
        watchers = [g.watcher for g in emu.generations if g.plane is not None and g.watcher is not None]
        assert len(watchers) == 2 and all(w.ha for w in watchers)

        proc = subprocess.Popen(
            cli_args(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "150s"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cli_env({"VCERTS_TEST_PAUSE_AFTER": "write"}))
        lease = contract.vcluster_rotation_lease_name(vc.name)
        try:
            wait_for(lambda: lease in leases(kube_session, vc.namespace), "the plugin's hold on " + lease)
            for watcher in watchers:
                watcher.age(timedelta(days=300))
            wait_for(lambda: all(w.skipped_for_lease >= 2 for w in watchers), "watchers skipping")
            assert all(w.rotations == 0 for w in watchers), "a watcher rotated under the plugin's Lease"
        finally:
            proc.kill()
            proc.communicate(timeout=30)
        resumed = plugin(host, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "150s")
        assert resumed.returncode == 0, resumed.stderr
        assert all(w.rotations == 0 and not w.errors for w in watchers), [w.errors for w in watchers]
        assert lease not in leases(kube_session, vc.namespace)
