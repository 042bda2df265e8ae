"""How rotate / rotate-ca / restore plans and reports are shown (cli/report.py), from fake-cluster runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from kubectl_vcerts.cli.report import plan_lines, report_document
from kubectl_vcerts.rotation.operation import OperationReport, OperationRequest
from kubectl_vcerts.rotation.ports import ProgressEvent
from kubectl_vcerts.rotation.recovery import Operation
from kubectl_vcerts.rotation.workflow import Ports, Workflow
from tests.unit.rotation_fakes import FakeClock, FakeCluster, Killed, make_vcluster, pki_data

REPORT_KEYS = {
    "operation",
    "stage",
    "vcluster",
    "dryRun",
    "applied",
    "resumed",
    "rollbackOnly",
    "source",
    "backup",
    "prunedBackups",
    "changes",
    "ca",
    "restart",
    "pods",
    "regenerated",
    "worst",
    "notes",
    "hooks",
    "nextSteps",
}


def run(operation: Operation, *, dry_run: bool) -> tuple[FakeCluster, OperationReport]:
    cluster = FakeCluster(vcluster=make_vcluster(replicas=2, etcd=1), data=pki_data())
    workflow = Workflow(Ports(cluster, cluster, cluster, cluster, cluster), FakeClock(on_sleep=cluster.tick))
    report = workflow.run(
        cluster.vcluster,
        OperationRequest(
            operation=operation, holder="a@h:1 x", dry_run=dry_run, timeout=timedelta(seconds=30)
        ),
    )
    return cluster, report


def test_the_dry_run_plan_names_changes_backup_ca_and_restart_order_but_no_key_material() -> None:
    _cluster, report = run(Operation.ROTATE, dry_run=True)
    text = "\n".join(plan_lines(report.plan))
    assert "apiserver.crt" in text and "renewed" in text and "vc-certs-backup-" in text
    assert "CA:      kept (sha256:" in text
    assert "vc-0 -> vc-1" in text and "etcd:    members keep running" in text
    assert "PRIVATE KEY" not in text and "BEGIN" not in text


def test_a_ca_change_says_existing_kubeconfigs_stop_working_and_restarts_together() -> None:
    _cluster, report = run(Operation.ROTATE_CA, dry_run=True)
    text = "\n".join(plan_lines(report.plan))
    assert "existing kubeconfigs stop working" in text
    assert "all together: vc-etcd-0, vc-0, vc-1" in text


def test_the_json_report_has_the_documented_keys_and_no_key_material() -> None:
    _cluster, report = run(Operation.ROTATE, dry_run=False)
    doc = report_document(report)
    assert set(doc) == REPORT_KEYS
    assert doc["applied"] and not doc["dryRun"] and doc["operation"] == "rotate"
    assert doc["restart"]["mode"] == "rolling" and doc["restart"]["restarted"] == ["vc-0", "vc-1"]
    assert doc["restart"]["dataLoss"] == []
    assert {c["key"] for c in doc["changes"]} >= {"apiserver.crt", "etcd-peer.crt"}
    text = json.dumps(doc)
    assert "PRIVATE KEY" not in text and "BEGIN" not in text


def interrupted_rollback() -> FakeCluster:
    """A rotate-ca whose pods never came back, killed right after it wrote the backup back."""
    cluster = FakeCluster(vcluster=make_vcluster(replicas=2), data=pki_data(), come_back=False)

    def kill_at(event: ProgressEvent) -> None:
        if event.done and event.step == "rollback":
            cluster.kill()
            raise Killed

    workflow = Workflow(
        Ports(cluster, cluster, cluster, cluster, cluster), FakeClock(on_sleep=cluster.tick), progress=kill_at
    )
    request = OperationRequest(
        operation=Operation.ROTATE_CA, holder="a@h:1 x", force=True, timeout=timedelta(seconds=10)
    )
    with pytest.raises(Killed):
        workflow.run(cluster.vcluster, request)
    cluster.revive().come_back = True
    return cluster


def test_the_plan_after_an_interrupted_rollback_says_it_only_finishes_the_rollback_and_stops() -> None:
    cluster = interrupted_rollback()
    workflow = Workflow(
        Ports(cluster, cluster, cluster, cluster, cluster),
        FakeClock(on_sleep=cluster.tick),
        holder_dead=lambda _h: True,
    )
    request = OperationRequest(
        operation=Operation.ROTATE, holder="a@h:2 x", force=True, dry_run=True, timeout=timedelta(seconds=30)
    )
    report = workflow.run(cluster.refresh(cluster.vcluster), request)
    text = "\n".join(plan_lines(report.plan))
    assert text.startswith(
        "Plan: finish rolling back the interrupted rotate-ca of vCluster team-a/vc, then stop"
    )
    assert "the rotate you asked for is NOT run now (exit 19)" in text
    assert "run the command again to run it (with --dry-run to see its plan)" in text
    assert "changes: none" in text and "existing kubeconfigs stop working" not in text
    assert "restart: all together" in text
    doc = report_document(report)
    assert set(doc) == REPORT_KEYS and doc["rollbackOnly"] and doc["resumed"] and doc["changes"] == []
    assert doc["ca"]["changed"] is False  # the CA from before the interrupted rotate-ca stays


def test_an_ordinary_plan_is_not_rollback_only() -> None:
    _cluster, report = run(Operation.ROTATE, dry_run=True)
    assert report_document(report)["rollbackOnly"] is False
    assert not plan_lines(report.plan)[0].startswith("Plan: finish rolling back")
