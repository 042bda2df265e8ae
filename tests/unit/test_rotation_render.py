"""How rotate / rotate-ca / restore plans and reports are shown (cli/rotate.py), from fake-cluster runs."""

from __future__ import annotations

import json
from datetime import timedelta

from kubectl_vcerts.cli.rotate import plan_lines, report_document
from kubectl_vcerts.rotation.recovery import Operation
from kubectl_vcerts.rotation.workflow import OperationReport, OperationRequest, Ports, Workflow
from tests.unit.rotation_fakes import FakeClock, FakeCluster, make_vcluster, pki_data

REPORT_KEYS = {
    "operation",
    "vcluster",
    "dryRun",
    "applied",
    "resumed",
    "source",
    "backup",
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
    assert "vc-etcd-0 -> vc-0 -> vc-1" in text
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
    assert doc["restart"]["mode"] == "rolling" and doc["restart"]["restarted"] == [
        "vc-etcd-0",
        "vc-0",
        "vc-1",
    ]
    assert {c["key"] for c in doc["changes"]} >= {"apiserver.crt", "etcd-peer.crt"}
    text = json.dumps(doc)
    assert "PRIVATE KEY" not in text and "BEGIN" not in text
