"""Two concurrent rotations of one vCluster: the second is refused naming the first; nothing interleaves."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from kubectl_vcerts import contract
from tests.integration.rotation_support import leases, run_cli, snapshot, start_cli, wait_for_pause

pytestmark = pytest.mark.cluster


def test_a_second_rotation_while_one_runs_is_refused_and_the_first_finishes_alone(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    first = start_cli(config, ns, "rotate", name, "--yes", env={"VCERTS_TEST_PAUSE_AFTER": "lock"})
    try:
        wait_for_pause(first, "lock")
        during = snapshot(kube_session, ns, name)
        second = run_cli(config, ns, "rotate", name, "--yes")
        assert second.returncode == 15, second.stderr
        holder = leases(kube_session, ns)[contract.lock_lease_name(name)]
        assert f":{first.pid} rotate" in holder and holder in second.stderr
        assert snapshot(kube_session, ns, name) == during
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        for stream in (first.stdout, first.stderr):
            if stream is not None:
                stream.close()
    # the holder is dead: the next run takes the lock over at once
    third = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s")
    assert third.returncode == 0, third.stderr
    assert leases(kube_session, ns) == {}
