"""Crash safety: SIGKILL the CLI after each step of `rotate`, run it again, and see it converge.

The CLI is paused at a step with the documented debug hook VCERTS_TEST_PAUSE_AFTER=<step> (the progress
renderer blocks after the workflow reports that step done), killed with SIGKILL (no cleanup runs), and
the same command is run again. Convergence: exit 0, the leaves renewed with the CA kept, no operation
record and no lease left behind, every pod replaced and Ready, and the original PKI in a backup.
A run killed while rolling back is only finished by the next run, which then stops (exit 19).
"""

from __future__ import annotations

import base64
import signal
from datetime import UTC, datetime
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ExitCode
from kubectl_vcerts.pki import Status, ca_fingerprint, inspect_pki
from kubectl_vcerts.rotation.recovery import Operation, Phase, read_record
from tests.integration.rotation_support import (
    backups,
    decode,
    leases,
    pods_ready,
    run_cli,
    snapshot,
    start_cli,
    wait_for_pause,
)
from tests.support.devcluster import WAITING_REASON_LABEL

pytestmark = pytest.mark.cluster

STEPS = ("lock", "backup", "write", "restart", "wait", "verify")


def kill_paused(proc: Any, step: str) -> None:
    try:
        wait_for_pause(proc, step)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def backup_operations(session: Any, ns: str, name: str) -> dict[str, str]:
    return {
        b.metadata.name: b.metadata.annotations[contract.BACKUP_OPERATION_ANNOTATION]
        for b in backups(session, ns, name)
    }


def test_rotate_killed_after_each_step_converges_when_run_again(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(replicas=2)
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    for step in STEPS:
        before = snapshot(kube_session, ns, name)
        proc = start_cli(
            config, ns, "rotate", name, "--yes", "--timeout", "90s", env={"VCERTS_TEST_PAUSE_AFTER": step}
        )
        kill_paused(proc, step)
        held = leases(kube_session, ns)
        assert contract.lock_lease_name(name) in held, step  # the killed run left its lock behind
        if step in ("write", "restart", "wait"):
            assert contract.OPERATION_ANNOTATION in snapshot(kube_session, ns, name).annotations, step

        again = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s")
        assert again.returncode == 0, f"{step}: {again.stderr}"
        after = snapshot(kube_session, ns, name)
        assert ca_fingerprint(after.data) == ca_fingerprint(before.data), step
        assert after.data["apiserver.crt"] != before.data["apiserver.crt"], step
        assert inspect_pki(after.data, now=datetime.now(UTC)).worst is Status.OK, step
        assert contract.OPERATION_ANNOTATION not in after.annotations, step
        assert leases(kube_session, ns) == {}, step
        assert not set(after.pods.values()) & set(before.pods.values()), step
        assert all(pods_ready(kube_session, ns, name).values()), step
        assert any(decode(b.data) == before.data for b in backups(kube_session, ns, name)), step
        if step in ("write", "restart", "wait"):
            assert "finished an interrupted run" in again.stdout, step


def test_a_rotate_killed_while_rolling_back_is_only_finished_by_the_next_run_which_then_stops(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(pod_running=False)  # crash-looping pods: the rotate times out and rolls back
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    before = snapshot(kube_session, ns, name)
    proc = start_cli(
        config, ns, "rotate", name, "--yes", "--force", "--timeout", "4s",
        env={"VCERTS_TEST_PAUSE_AFTER": "rollback"},
    )
    kill_paused(proc, "rollback")
    killed = snapshot(kube_session, ns, name)
    record = read_record(killed.annotations, where="NAME-certs")
    assert record is not None and record.phase is Phase.ROLLBACK and record.operation is Operation.ROTATE
    assert killed.data == before.data  # the backup was written back before the kill
    kept = backup_operations(kube_session, ns, name)
    assert sorted(kept.values()) == [contract.ROLLED_BACK_OPERATION, "rotate"]
    [pre_operation] = [b for b in backups(kube_session, ns, name) if b.metadata.name == record.backup]
    assert decode(pre_operation.data) == before.data

    # Whatever kept the pods down is fixed; OnDelete so that only our restart replaces the pods (which
    # rolls that staged fix out: --roll-out-staged says it may).
    kube_session.apps.patch_namespaced_stateful_set(
        name,
        ns,
        {
            "spec": {
                "updateStrategy": {"type": "OnDelete", "rollingUpdate": None},
                "template": {"metadata": {"labels": {WAITING_REASON_LABEL: None}}},
            }
        },
    )

    dry = run_cli(config, ns, "rotate", name, "--dry-run", "--force", "--roll-out-staged")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(
        f"Plan: finish rolling back the interrupted rotate of vCluster {ns}/{name}, then stop"
    )
    assert "the rotate you asked for is NOT run now (exit 19)" in dry.stdout
    assert snapshot(kube_session, ns, name) == killed  # the dry run changed nothing

    refused = run_cli(config, ns, "rotate", name, "--yes", "--force", "--timeout", "90s")
    assert refused.returncode == int(ExitCode.NOT_READY) and "--roll-out-staged" in refused.stderr
    assert snapshot(kube_session, ns, name) == killed
    again = run_cli(config, ns, "rotate", name, "--yes", "--force", "--roll-out-staged", "--timeout", "90s")
    assert again.returncode == int(ExitCode.ROLLED_BACK), again.stderr  # documented: 19 rolled back
    assert f"Rolled back the interrupted rotate of vCluster {ns}/{name}" in again.stdout
    assert f"it runs its previous PKI again, from backup {record.backup}" in again.stdout
    assert "run the same command again to run it (add --dry-run first to see its plan)" in again.stdout
    after = snapshot(kube_session, ns, name)
    assert after.data == before.data == decode(pre_operation.data)  # the pre-operation PKI, unchanged
    assert contract.OPERATION_ANNOTATION not in after.annotations
    assert leases(kube_session, ns) == {}
    assert backup_operations(kube_session, ns, name) == kept  # no new operation: no new backup
    assert not set(after.pods.values()) & set(killed.pods.values())  # the rollback restarted them
    assert all(pods_ready(kube_session, ns, name).values())

    third = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s")
    assert third.returncode == 0, third.stderr
    assert "finished an interrupted run" not in third.stdout
    final = snapshot(kube_session, ns, name)
    assert ca_fingerprint(final.data) == ca_fingerprint(before.data)
    assert final.data["apiserver.crt"] != before.data["apiserver.crt"]
    assert inspect_pki(final.data, now=datetime.now(UTC)).worst is Status.OK
    assert contract.OPERATION_ANNOTATION not in final.annotations
    new = {k: v for k, v in backup_operations(kube_session, ns, name).items() if k not in kept}
    assert list(new.values()) == ["rotate"]
    [made] = [b for b in backups(kube_session, ns, name) if b.metadata.name in new]
    assert decode(made.data) == before.data


def test_an_interrupted_rotate_ca_is_not_finished_over_the_pki_a_watcher_wrote_back(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    """vCluster's cert watcher re-issues from a secret it read earlier and merge-patches the data without a
    precondition, leaving annotations alone: here it lands between our write and our restart."""
    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    before = snapshot(kube_session, ns, name)
    proc = start_cli(config, ns, "rotate-ca", name, "--yes", env={"VCERTS_TEST_PAUSE_AFTER": "write"})
    kill_paused(proc, "write")
    record = read_record(snapshot(kube_session, ns, name).annotations, where="NAME-certs")
    assert record is not None and record.ca and record.ca != ca_fingerprint(before.data)

    watcher = {"data": {k: base64.b64encode(v).decode() for k, v in before.data.items()}}
    kube_session.core.patch_namespaced_secret(contract.certs_secret_name(name), ns, watcher)
    overwritten = snapshot(kube_session, ns, name)

    again = run_cli(config, ns, "rotate-ca", name, "--yes", "--timeout", "90s")
    assert again.returncode == int(ExitCode.CONFLICT), again.stderr
    assert "written over after the interrupted rotate-ca" in again.stderr
    assert f"--backup {record.backup}" in again.stderr
    assert snapshot(kube_session, ns, name) == overwritten, "the refusal changed something"

    restored = run_cli(config, ns, "restore", name, "--backup", record.backup, "--yes", "--timeout", "90s")
    assert restored.returncode == 0, restored.stderr
    final = snapshot(kube_session, ns, name)
    assert ca_fingerprint(final.data) == ca_fingerprint(before.data)
    assert contract.OPERATION_ANNOTATION not in final.annotations and leases(kube_session, ns) == {}
