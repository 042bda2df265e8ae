"""Crash safety: SIGKILL the CLI after each step of `rotate`, run it again, and see it converge.

The CLI is paused at a step with the documented debug hook VCERTS_TEST_PAUSE_AFTER=<step> (the progress
renderer blocks after the workflow reports that step done), killed with SIGKILL (no cleanup runs), and
the same command is run again. Convergence: exit 0, the leaves renewed with the CA kept, no operation
record and no lease left behind, every pod replaced and Ready, and the original PKI in a backup.
"""

from __future__ import annotations

import signal
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
    run_cli,
    snapshot,
    start_cli,
    wait_for_pause,
)

pytestmark = pytest.mark.cluster

STEPS = ("lock", "backup", "write", "restart", "wait", "verify")


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
        try:
            wait_for_pause(proc, step)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()
            proc.stderr.close()
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
