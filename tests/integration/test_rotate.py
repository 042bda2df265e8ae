"""`kubectl vcerts rotate` against the real local cluster and the vCluster fixture."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.pki import Status, ca_fingerprint, inspect_pki
from tests.integration.rotation_support import (
    backups,
    decode,
    leases,
    pods_ready,
    read_certs,
    run_cli,
    snapshot,
)

pytestmark = pytest.mark.cluster


def test_rotate_renews_the_leaves_keeps_the_ca_backs_up_and_restarts_the_pods(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster()
    before = snapshot(kube_session, vc.namespace, vc.name)
    owners_before = [
        o.uid for o in read_certs(kube_session, vc.namespace, vc.name).metadata.owner_references or []
    ]
    result = run_cli(
        kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "90s", "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    after = snapshot(kube_session, vc.namespace, vc.name)

    assert ca_fingerprint(after.data) == ca_fingerprint(before.data)
    for key in (
        "apiserver.crt",
        "apiserver-etcd-client.crt",
        "front-proxy-client.crt",
        "etcd-server.crt",
        "etcd-peer.crt",
        "admin.conf",
    ):
        assert after.data[key] != before.data[key], key
    for key in ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.key", "etcd-ca.key"):
        assert after.data[key] == before.data[key], key
    assert inspect_pki(after.data, now=datetime.now(UTC)).worst is Status.OK
    assert contract.OPERATION_ANNOTATION not in after.annotations
    assert set(after.pods) == set(before.pods) and not set(after.pods.values()) & set(before.pods.values())
    assert all(pods_ready(kube_session, vc.namespace, vc.name).values())

    [backup] = backups(kube_session, vc.namespace, vc.name)
    assert backup.immutable is True and report["backup"] == backup.metadata.name
    assert decode(backup.data) == before.data
    assert backup.metadata.labels[contract.MANAGED_BY_LABEL] == contract.TOOL_NAME
    annotations = backup.metadata.annotations
    assert annotations[contract.BACKUP_OPERATION_ANNOTATION] == "rotate"
    assert annotations[contract.BACKUP_SOURCE_RV_ANNOTATION] == before.resource_version
    assert annotations[contract.BACKUP_CA_FINGERPRINT_ANNOTATION] == ca_fingerprint(before.data)
    assert leases(kube_session, vc.namespace) == {}
    # what vCluster's chart set on NAME-certs survives the replace
    secret = read_certs(kube_session, vc.namespace, vc.name)
    assert secret.metadata.labels.get(contract.VCLUSTER_NAME_LABEL) == vc.name
    assert owners_before and [o.uid for o in secret.metadata.owner_references or []] == owners_before
    assert secret.type == "Opaque"
    assert report["restart"]["restarted"] and report["ca"]["changed"] is False


def test_dry_run_prints_the_plan_and_changes_nothing(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster()
    before = snapshot(kube_session, vc.namespace, vc.name)
    result = run_cli(kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "apiserver.crt" in result.stdout and "Dry run: nothing was changed." in result.stdout
    assert f"{vc.name}-certs-backup-" in result.stdout and f"{vc.name}-0" in result.stdout
    assert snapshot(kube_session, vc.namespace, vc.name) == before
    assert backups(kube_session, vc.namespace, vc.name) == [] and leases(kube_session, vc.namespace) == {}


def test_an_ha_vcluster_with_deployed_etcd_rolls_the_control_plane_and_leaves_etcd_running(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(replicas=3, deployed_etcd=True)
    before = snapshot(kube_session, vc.namespace, vc.name)
    lowest = [3]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            ready = pods_ready(kube_session, vc.namespace, vc.name)
            control = [ok for pod, ok in ready.items() if "-etcd-" not in pod]
            lowest[0] = min(lowest[0], sum(control))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run_cli(
            kube_cluster.kubeconfig, vc.namespace, "-v", "rotate", vc.name, "--yes", "--timeout", "120s"
        )
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    deleted = [
        line.split("deleted pod(s) ", 1)[1].split()[0].rstrip(",")
        for line in result.stderr.splitlines()
        if "deleted pod(s) " in line
    ]
    assert deleted == [f"{vc.name}-0", f"{vc.name}-1", f"{vc.name}-2"]  # one at a time, no etcd member
    assert lowest[0] >= 2, "more than one control-plane pod was down at once"
    after = snapshot(kube_session, vc.namespace, vc.name)
    control = {p for p in before.pods if "-etcd-" not in p}
    assert all(after.pods[p] != before.pods[p] for p in control)
    assert all(after.pods[p] == before.pods[p] for p in set(before.pods) - control), "etcd was restarted"


def test_expired_leaves_are_rotated_back_to_health(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(expired_leaves=True)
    assert inspect_pki(vc.certs, now=datetime.now(UTC)).worst is Status.EXPIRED
    result = run_cli(
        kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes", "--force", "--timeout", "90s"
    )
    assert result.returncode == 0, result.stderr
    after = snapshot(kube_session, vc.namespace, vc.name)
    assert inspect_pki(after.data, now=datetime.now(UTC)).worst is Status.OK


def test_no_restart_writes_and_names_the_pods_to_restart(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster()
    before = snapshot(kube_session, vc.namespace, vc.name)
    # Pod start times have whole seconds: a write in the pod's own second is taken as read by it (see
    # rotation/unrestarted.py); this test is about a pod that started before the write.
    started = kube_session.core.read_namespaced_pod(f"{vc.name}-0", vc.namespace).status.start_time
    while datetime.now(UTC).replace(microsecond=0) <= started:
        time.sleep(0.1)  # waiting for the next second, not timing anything
    result = run_cli(kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes", "--no-restart")
    assert result.returncode == 0, result.stderr
    assert f"kubectl -n {vc.namespace} delete pod {vc.name}-0" in result.stdout
    after = snapshot(kube_session, vc.namespace, vc.name)
    assert after.pods == before.pods and after.data["apiserver.crt"] != before.data["apiserver.crt"]
    assert "do not run vCluster's own `vcluster certs rotate`" in result.stdout

    # check and the next plan say the write is not running yet, and why vCluster's own rotation must wait
    checked = run_cli(kube_cluster.kubeconfig, vc.namespace, "check", vc.name, "-o", "json")
    pending = json.loads(checked.stdout)["notRestarted"]
    assert pending is not None and pending["pods"] == [f"{vc.name}-0"], checked.stdout
    table = run_cli(kube_cluster.kubeconfig, vc.namespace, "check", vc.name)
    assert "warning:" in table.stderr and "vcluster certs rotate" in table.stderr, table.stderr
    plan = run_cli(kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--dry-run", "-o", "json")
    assert any("started before" in note for note in json.loads(plan.stdout)["notes"]), plan.stdout

    # once the pod is replaced nothing is pending
    kube_session.core.delete_namespaced_pod(f"{vc.name}-0", vc.namespace)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        checked = run_cli(kube_cluster.kubeconfig, vc.namespace, "check", vc.name, "-o", "json")
        if json.loads(checked.stdout)["notRestarted"] is None:
            break
        time.sleep(0.5)
    assert json.loads(checked.stdout)["notRestarted"] is None, checked.stdout


def test_pods_that_never_become_ready_are_rolled_back(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(pod_running=False)
    before = snapshot(kube_session, vc.namespace, vc.name)
    refused = run_cli(kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes")
    assert refused.returncode == 12 and "--force" in refused.stderr
    assert snapshot(kube_session, vc.namespace, vc.name) == before
    result = run_cli(
        kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes", "--force", "--timeout", "4s"
    )
    assert result.returncode == 19, result.stderr
    assert "rolled back" in result.stderr
    after = snapshot(kube_session, vc.namespace, vc.name)
    assert after.data == before.data
    assert contract.OPERATION_ANNOTATION not in after.annotations
    assert leases(kube_session, vc.namespace) == {}
    kept = kube_session.core.list_namespaced_secret(
        vc.namespace, label_selector=f"{contract.BACKUP_LABEL}=true"
    )
    operations = sorted(s.metadata.annotations[contract.BACKUP_OPERATION_ANNOTATION] for s in kept.items)
    assert operations == [contract.ROLLED_BACK_OPERATION, "rotate"]  # the failed PKI is kept too


def test_an_interrupted_vcluster_certs_rotate_is_finished_first_with_finish_interrupted(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(replicas=2)
    before = snapshot(kube_session, vc.namespace, vc.name)
    # what `vcluster certs rotate` leaves when killed between pause and resume (lifecycle.PauseVCluster)
    paused = {
        "metadata": {
            "annotations": {
                contract.RESTORING_ANNOTATION: "true",
                contract.PAUSED_REPLICAS_ANNOTATION: "2",
                contract.PAUSED_DATE_ANNOTATION: "2026-11-29T04:00:00.000Z",
            }
        },
        "spec": {"replicas": 0},
    }
    kube_session.apps.patch_namespaced_stateful_set(vc.name, vc.namespace, paused)
    deadline = time.monotonic() + 60
    while pods_ready(kube_session, vc.namespace, vc.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    # the refusal below must meet a really paused vCluster, not one still scaling down
    assert not pods_ready(kube_session, vc.namespace, vc.name), "pods still present 60s after pausing"
    refused = run_cli(kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes")
    assert refused.returncode == 12 and "--finish-interrupted" in refused.stderr
    result = run_cli(
        kube_cluster.kubeconfig,
        vc.namespace,
        "rotate",
        vc.name,
        "--yes",
        "--finish-interrupted",
        "--timeout",
        "90s",
    )
    assert result.returncode == 0, result.stderr
    workload = kube_session.apps.read_namespaced_stateful_set(vc.name, vc.namespace)
    assert workload.spec.replicas == 2
    assert not {
        contract.RESTORING_ANNOTATION,
        contract.PAUSED_REPLICAS_ANNOTATION,
        contract.PAUSED_DATE_ANNOTATION,
    } & set(workload.metadata.annotations or {})
    after = snapshot(kube_session, vc.namespace, vc.name)
    assert after.data["apiserver.crt"] != before.data["apiserver.crt"]
    assert all(pods_ready(kube_session, vc.namespace, vc.name).values()) and len(after.pods) == 2


def test_a_deployment_without_persistence_gets_new_pods_too(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    # the state is in deployed etcd: the control plane's emptyDir holds nothing that matters
    vc = make_vcluster(persistence=False, replicas=2, deployed_etcd=True)
    assert vc.kind == "Deployment"
    before = snapshot(kube_session, vc.namespace, vc.name)
    result = run_cli(kube_cluster.kubeconfig, vc.namespace, "rotate", vc.name, "--yes", "--timeout", "90s")
    assert result.returncode == 0, result.stderr
    after = snapshot(kube_session, vc.namespace, vc.name)
    control = {p: uid for p, uid in after.pods.items() if "-etcd-" not in p}
    assert len(control) == 2 and not set(control.values()) & set(before.pods.values())
    assert all(pods_ready(kube_session, vc.namespace, vc.name).values())
    assert ca_fingerprint(after.data) == ca_fingerprint(before.data)


def test_the_plan_names_sans_vcluster_would_change_and_refresh_sans_takes_vclusters_set(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    import base64

    import yaml
    from cryptography import x509

    vc = make_vcluster(extra_sans=("old.example.com",))
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    # the user changes controlPlane.proxy.extraSANs; vCluster's next renewal would follow, a clone not
    secret = kube_session.core.read_namespaced_secret(vc.config_secret, ns)
    values = yaml.safe_load(base64.b64decode(secret.data["config.yaml"]))
    values["controlPlane"]["proxy"]["extraSANs"] = ["new.example.com"]
    encoded = base64.b64encode(yaml.safe_dump(values).encode()).decode()
    kube_session.core.patch_namespaced_secret(vc.config_secret, ns, {"data": {"config.yaml": encoded}})

    plan = run_cli(config, ns, "rotate", name, "--dry-run", "-o", "json")
    notes = [n for n in json.loads(plan.stdout)["notes"] if n.startswith("SANs of etcd-server.crt")]
    assert notes and "DNS:new.example.com" in notes[0] and "DNS:old.example.com" in notes[0], plan.stdout
    assert "--refresh-sans" in notes[0]

    def sans(key: str) -> set[str]:
        cert = x509.load_pem_x509_certificate(snapshot(kube_session, ns, name).data[key])
        return {str(v) for v in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                .value.get_values_for_type(x509.DNSName)}

    kept = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s")
    assert kept.returncode == 0, kept.stderr
    assert "old.example.com" in sans("etcd-server.crt"), "without --refresh-sans the SANs are cloned"
    apiserver_before = sans("apiserver.crt")

    refreshed = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s", "--refresh-sans")
    assert refreshed.returncode == 0, refreshed.stderr
    for key in ("etcd-server.crt", "etcd-peer.crt"):
        assert "new.example.com" in sans(key) and "old.example.com" not in sans(key), key
    assert sans("apiserver.crt") == apiserver_before  # the fixture's apiserver.crt already is vCluster's
    after = run_cli(config, ns, "rotate", name, "--dry-run", "-o", "json")
    assert not [n for n in json.loads(after.stdout)["notes"] if n.startswith("SANs of etcd-server.crt")
                and "new.example.com" in n]
