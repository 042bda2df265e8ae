"""Fleet runs on the real local cluster: `rotate` over 50 vClusters (a few that must fail), the bound on
parallelism seen from the cluster's own Leases, a failure that stops the scheduling, Ctrl-C mid-way,
and `--expiring-within` with -A and -l."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.pki import Status, ca_fingerprint, inspect_pki
from tests.integration.rotation_support import backups, leases, run_cli, snapshot, start_cli

pytestmark = pytest.mark.cluster

LEAVES = ("apiserver.crt", "apiserver-etcd-client.crt", "front-proxy-client.crt", "admin.conf")


def _make_many(make_vcluster: Any, names: list[str], **variant: Any) -> list[Any]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda n: make_vcluster(name=n, **variant), names))


@contextmanager
def lock_watch(session: Any, namespace: str) -> Iterator[list[int]]:
    """The most of our lock Leases (vcerts-NAME) the cluster held at once, polled every 50 ms: the bound
    on parallelism as the API server saw it, not as the tool reports it."""
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            held = [n for n in leases(session, namespace) if n.startswith("vcerts-")]
            peak[0] = max(peak[0], len(held))
            done.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _rotated(session: Any, vc: Any, before: Any) -> bool:
    after = snapshot(session, vc.namespace, vc.name)
    if after == before:
        return False
    assert ca_fingerprint(after.data) == ca_fingerprint(before.data), vc.name
    assert all(after.data[k] != before.data[k] for k in LEAVES), vc.name
    assert inspect_pki(after.data, now=datetime.now(UTC)).worst is Status.OK, vc.name
    assert contract.OPERATION_ANNOTATION not in after.annotations, vc.name
    return True


def _hold_lock(session: Any, namespace: str, name: str) -> None:
    """Someone else's lock on `name`, alive (renewed now, on another host): a run fails on it at once."""
    now = datetime.now(UTC)
    session.coordination.create_namespaced_lease(namespace, {
        "metadata": {"name": contract.lock_lease_name(name)},
        "spec": {"holderIdentity": "ops@elsewhere:4242 rotate", "leaseDurationSeconds": 600,
                 "acquireTime": now, "renewTime": now},
    })


def _corrupt(session: Any, namespace: str, name: str) -> None:
    import base64

    session.core.patch_namespaced_secret(
        contract.certs_secret_name(name), namespace,
        {"data": {"ca.key": base64.b64encode(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n").decode()}})


def test_fleet_rotate_of_50_rotates_exactly_the_right_ones_within_the_bound(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str
) -> None:
    healthy = _make_many(make_vcluster, [f"vc{i:02}" for i in range(46)])
    crashing = _make_many(make_vcluster, ["crash-a", "crash-b"], pod_running=False)
    [corrupt] = _make_many(make_vcluster, ["corrupt"])
    [k3s] = _make_many(make_vcluster, ["k3s"], distro="k3s")
    _corrupt(kube_session, namespace, corrupt.name)
    everyone = [*healthy, *crashing, corrupt, k3s]
    before = {vc.name: snapshot(kube_session, namespace, vc.name) for vc in everyone}

    dry = run_cli(kube_cluster.kubeconfig, namespace, "rotate", "--dry-run", "-o", "json")
    assert dry.returncode == 13, dry.stderr  # the corrupt PKI is the worst planning failure
    planned = json.loads(dry.stdout)
    assert planned["kind"] == "OperationResultList" and planned["dryRun"] is True
    assert sorted(i["name"] for i in planned["items"] if i["result"] == "planned") == \
        sorted(vc.name for vc in healthy)
    assert all(i["report"]["changes"] for i in planned["items"] if i["result"] == "planned")
    assert {vc.name: snapshot(kube_session, namespace, vc.name) for vc in everyone} == before

    with lock_watch(kube_session, namespace) as peak:
        result = run_cli(kube_cluster.kubeconfig, namespace, "rotate", "--yes", "--max-parallel", "4",
                         "--timeout", "120s", "-o", "json", timeout=900)
    assert result.returncode == 13, result.stderr
    doc = json.loads(result.stdout)
    items = {i["name"]: i for i in doc["items"]}
    assert {n for n, i in items.items() if i["result"] == "done"} == {vc.name for vc in healthy}
    assert (items["crash-a"]["result"], items["crash-a"]["exitCode"]) == ("failed", 12)
    assert "--force" in items["crash-b"]["message"]
    assert (items["corrupt"]["result"], items["corrupt"]["exitCode"]) == ("failed", 13)
    assert items["k3s"]["result"] == "skipped" and "k3s" in items["k3s"]["message"]
    assert 2 <= peak[0] <= 4, peak[0]
    assert 2 <= doc["peakParallel"] <= 4 and doc["exitCode"] == 13 and not doc["stoppedByFailure"]
    assert [i["order"] for i in doc["items"] if i["result"] == "done"] == list(range(1, 47))
    for vc in healthy:
        assert _rotated(kube_session, vc, before[vc.name])
        assert len(backups(kube_session, namespace, vc.name)) == 1
    for vc in [*crashing, corrupt, k3s]:
        assert snapshot(kube_session, namespace, vc.name) == before[vc.name], vc.name
        assert backups(kube_session, namespace, vc.name) == []
    assert leases(kube_session, namespace) == {}
    assert "46 done" in result.stderr and "exit code 13" in result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_a_failure_stops_the_scheduling_unless_keep_going(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str
) -> None:
    # crash-looping with the soonest expiry: with --force it runs first, never comes back, is rolled back
    first = make_vcluster(name="a-first", pod_running=False, expired_leaves=True)
    others = _make_many(make_vcluster, [f"vc{i}" for i in range(5)])
    before = {vc.name: snapshot(kube_session, namespace, vc.name) for vc in [first, *others]}

    stopped = run_cli(kube_cluster.kubeconfig, namespace, "rotate", "--yes", "--force", "--max-parallel", "1",
                      "--timeout", "4s", "-o", "json")
    assert stopped.returncode == 19, stopped.stderr
    doc = json.loads(stopped.stdout)
    assert doc["stoppedByFailure"] is True
    results = [(i["name"], i["result"], i["exitCode"]) for i in doc["items"]]
    assert results[0] == ("a-first", "failed", 19)
    assert {r for _, r, _ in results[1:]} == {"not started"}
    assert "stopped scheduling after a failure" in stopped.stderr
    assert snapshot(kube_session, namespace, first.name).data == before[first.name].data  # rolled back
    for vc in others:
        assert snapshot(kube_session, namespace, vc.name) == before[vc.name]

    going = run_cli(kube_cluster.kubeconfig, namespace, "rotate", "--yes", "--force", "--max-parallel", "2",
                    "--keep-going", "--timeout", "4s", "-o", "json")
    assert going.returncode == 19, going.stderr
    doc = json.loads(going.stdout)
    assert [i["result"] for i in doc["items"]] == ["failed"] + ["done"] * 5 and not doc["stoppedByFailure"]
    assert all(_rotated(kube_session, vc, before[vc.name]) for vc in others)
    assert snapshot(kube_session, namespace, first.name).data == before[first.name].data


def test_a_refusal_that_changed_nothing_does_not_stop_the_others(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str
) -> None:
    held = make_vcluster(name="a-held", expired_leaves=True)  # the soonest expiry: its turn comes first
    others = _make_many(make_vcluster, [f"vc{i}" for i in range(3)])
    _hold_lock(kube_session, namespace, held.name)
    before = {vc.name: snapshot(kube_session, namespace, vc.name) for vc in [held, *others]}
    result = run_cli(kube_cluster.kubeconfig, namespace, "rotate", "--yes", "--max-parallel", "1",
                     "--timeout", "120s", "-o", "json")
    assert result.returncode == 15, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["items"][0]["name"], doc["items"][0]["result"]) == ("a-held", "failed")
    assert "ops@elsewhere:4242" in doc["items"][0]["message"]
    assert [i["result"] for i in doc["items"][1:]] == ["done"] * 3 and not doc["stoppedByFailure"]
    assert snapshot(kube_session, namespace, held.name) == before[held.name]
    assert all(_rotated(kube_session, vc, before[vc.name]) for vc in others)


def test_ctrl_c_mid_way_leaves_every_vcluster_rotated_or_untouched(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str
) -> None:
    fleet = _make_many(make_vcluster, [f"vc{i}" for i in range(8)])
    before = {vc.name: snapshot(kube_session, namespace, vc.name) for vc in fleet}
    proc = start_cli(kube_cluster.kubeconfig, namespace, "rotate", "--yes", "--max-parallel", "2",
                     "--timeout", "120s", "-o", "json")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        seen = []
        for line in proc.stderr:  # plain progress lines: not a terminal
            seen.append(line)
            if line.startswith("✓ ") and "done" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + err
    assert "interrupted: no new vCluster is started" in err
    doc = json.loads(out)
    assert doc["interrupted"] is True
    outcomes = {i["name"]: i["result"] for i in doc["items"]}
    assert set(outcomes.values()) <= {"done", "not started"}
    assert "done" in outcomes.values() and "not started" in outcomes.values()
    for vc in fleet:
        rotated = _rotated(kube_session, vc, before[vc.name])
        assert rotated is (outcomes[vc.name] == "done"), vc.name
        assert len(backups(kube_session, namespace, vc.name)) == (1 if rotated else 0)
    assert leases(kube_session, namespace) == {}
    time.sleep(0)  # nothing runs on in the background: the process has exited


def test_expiring_within_with_all_namespaces_and_a_selector_picks_only_what_is_due(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, namespace: str
) -> None:
    due = _make_many(make_vcluster, ["due-a", "due-b"], expired_leaves=True)
    fresh = _make_many(make_vcluster, ["fresh-a", "fresh-b"])
    for vc in [*due, *fresh]:  # a label of this test only: -A must not reach other namespaces' vClusters
        kube_session.apps.patch_namespaced_stateful_set(vc.name, namespace,
                                                        {"metadata": {"labels": {"fleet-test": namespace}}})
    before = {vc.name: snapshot(kube_session, namespace, vc.name) for vc in [*due, *fresh]}
    selection = ["-A", "-l", f"fleet-test={namespace}", "--expiring-within", "30d"]

    dry = run_cli(kube_cluster.kubeconfig, namespace, "rotate", *selection, "--dry-run", "--force")
    assert dry.returncode == 0, dry.stderr
    assert "of 2 vCluster(s), at most 4 at a time" in dry.stdout
    assert f"{namespace}/due-a" in dry.stdout and "fresh-a" not in dry.stdout
    assert "Dry run: nothing was changed." in dry.stdout

    result = run_cli(kube_cluster.kubeconfig, namespace, "rotate", *selection, "--yes", "--force",
                     "--timeout", "120s")
    assert result.returncode == 0, result.stderr
    assert "NAMESPACE" in result.stdout and "due-a" in result.stdout and "fresh" not in result.stdout
    assert all(_rotated(kube_session, vc, before[vc.name]) for vc in due)
    assert all(snapshot(kube_session, namespace, vc.name) == before[vc.name] for vc in fresh)

    again = run_cli(kube_cluster.kubeconfig, namespace, "rotate", *selection, "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr

    unknown = run_cli(kube_cluster.kubeconfig, namespace, "rotate", "due-a", "nope", "--dry-run")
    assert unknown.returncode == 10 and "nope" in unknown.stderr

    refused = run_cli(kube_cluster.kubeconfig, namespace, "rotate-ca", "-A", "--kubeconfig-out", "x",
                      "--dry-run")
    assert refused.returncode == 2 and "--kubeconfig-out applies to one vCluster" in refused.stderr
