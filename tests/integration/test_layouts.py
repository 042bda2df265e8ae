"""Layouts whose state is on an emptyDir, and deployed etcd: which restart is refused, which is rolled,
and that etcd members keep running through a leaf rotation (real local cluster, vCluster fixture)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.rotation_support import backups, leases, run_cli, snapshot

pytestmark = pytest.mark.cluster

DATA_LOSS = 22


def etcd_uids(pods: dict[str, str]) -> dict[str, str]:
    return {p: uid for p, uid in pods.items() if "-etcd-" in p}


def test_deployed_etcd_on_an_emptydir_refuses_a_ca_change_but_rotates_leaves_without_restarting_etcd(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(deployed_etcd=True, etcd_persistence=False)
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    before = snapshot(kube_session, ns, name)

    for args in (("--dry-run",), ("--yes",)):
        refused = run_cli(config, ns, "rotate-ca", name, *args)
        assert refused.returncode == DATA_LOSS, refused.stderr
        assert f"{name}-etcd-0" in refused.stderr and "emptyDir" in refused.stderr
        assert "--allow-data-loss" in refused.stderr
    no_restart = run_cli(config, ns, "rotate-ca", name, "--yes", "--no-restart")
    assert no_restart.returncode == 2 and "deployed etcd" in no_restart.stderr, no_restart.stderr
    assert snapshot(kube_session, ns, name) == before
    assert backups(kube_session, ns, name) == [] and leases(kube_session, ns) == {}

    leaf = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s", "-o", "json")
    assert leaf.returncode == 0, leaf.stderr
    after = snapshot(kube_session, ns, name)
    assert etcd_uids(after.pods) == etcd_uids(before.pods), "a leaf rotation restarted etcd"
    assert after.pods[f"{name}-0"] != before.pods[f"{name}-0"]
    assert json.loads(leaf.stdout)["restart"]["dataLoss"] == []
    checked = run_cli(config, ns, "check", name, "-o", "json")
    assert json.loads(checked.stdout)["notRestarted"] is None, "etcd members need no restart for leaves"

    allowed = run_cli(config, ns, "rotate-ca", name, "--yes", "--allow-data-loss", "--timeout", "90s",
                      "-o", "json")
    assert allowed.returncode == 0, allowed.stderr
    report = json.loads(allowed.stdout)
    assert report["ca"]["changed"] and f"{name}-etcd-0" in report["restart"]["dataLoss"][0]
    final = snapshot(kube_session, ns, name)
    assert not set(etcd_uids(final.pods).values()) & set(etcd_uids(after.pods).values())


def test_an_embedded_database_on_an_emptydir_is_never_restarted_without_allow_data_loss(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(persistence=False)
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    assert vc.kind == "Deployment"
    before = snapshot(kube_session, ns, name)
    refused = run_cli(config, ns, "rotate", name, "--yes")
    assert refused.returncode == DATA_LOSS and "embedded database" in refused.stderr, refused.stderr
    assert snapshot(kube_session, ns, name) == before and backups(kube_session, ns, name) == []

    # --no-restart writes (backup first) and says which restart would delete the data
    written = run_cli(config, ns, "rotate", name, "--yes", "--no-restart", "-o", "json")
    assert written.returncode == 0, written.stderr
    assert any("emptyDir" in note for note in json.loads(written.stdout)["notes"])
    after = snapshot(kube_session, ns, name)
    assert after.pods == before.pods and after.data != before.data

    restore = run_cli(config, ns, "restore", name, "--backup", "latest", "--yes")
    assert restore.returncode == DATA_LOSS, restore.stderr
    assert snapshot(kube_session, ns, name).data == after.data


def test_embedded_etcd_on_emptydirs_is_rolled_one_member_at_a_time_and_refuses_a_ca_change(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(persistence=False, replicas=3)
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    assert vc.spec.backing_store == "embedded-etcd" and vc.persistent_volumes == ()
    before = snapshot(kube_session, ns, name)
    refused = run_cli(config, ns, "rotate-ca", name, "--yes")
    assert refused.returncode == DATA_LOSS and "embedded etcd" in refused.stderr, refused.stderr
    assert snapshot(kube_session, ns, name) == before

    rolled = run_cli(config, ns, "-v", "rotate", name, "--yes", "--timeout", "120s", "-o", "json")
    assert rolled.returncode == 0, rolled.stderr
    report = json.loads(rolled.stdout)
    assert report["restart"]["mode"] == "rolling" and report["restart"]["dataLoss"] == []
    assert [s["pods"] for s in report["restart"]["steps"]] == [[f"{name}-{i}"] for i in range(3)]
