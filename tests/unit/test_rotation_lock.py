"""The lock Lease logic (rotation/lock.py) and the operation record (rotation/recovery.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import InvalidPkiError, LockHeldError
from kubectl_vcerts.rotation.lock import (
    acquire_lock,
    acquire_vcluster_rotation_lease,
    holder_identity,
    local_holder_dead,
)
from kubectl_vcerts.rotation.recovery import Operation, OperationRecord, Phase, RestartMode, read_record
from tests.unit.rotation_fakes import FakeClock, FakeCluster, make_vcluster, pki_data


def fake() -> FakeCluster:
    return FakeCluster(vcluster=make_vcluster(), data=pki_data())


def test_the_first_operator_gets_the_lock_and_a_second_is_refused_with_the_holder_and_expiry() -> None:
    cluster, clock = fake(), FakeClock()
    held = acquire_lock(cluster, namespace="team-a", vcluster="vc", holder="a@h:1 rotate", clock=clock)
    assert cluster.leases["vcerts-vc"].holder == "a@h:1 rotate"
    with pytest.raises(LockHeldError) as info:
        acquire_lock(cluster, namespace="team-a", vcluster="vc", holder="b@h:2 rotate-ca", clock=clock)
    assert "a@h:1 rotate" in info.value.message and "expires" in info.value.message
    held.release()
    assert "vcerts-vc" not in cluster.leases


def test_a_lock_that_was_not_renewed_expires_and_is_taken_over() -> None:
    cluster, clock = fake(), FakeClock()
    acquire_lock(
        cluster, namespace="team-a", vcluster="vc", holder="a@h:1 rotate", clock=clock, duration_seconds=30
    )
    clock.t += timedelta(seconds=31)
    held = acquire_lock(cluster, namespace="team-a", vcluster="vc", holder="b@h:2 rotate", clock=clock)
    assert held.record.holder == "b@h:2 rotate"


def test_a_lock_of_a_dead_local_process_is_taken_over_at_once() -> None:
    cluster, clock = fake(), FakeClock()
    acquire_lock(cluster, namespace="team-a", vcluster="vc", holder="a@h:1 rotate", clock=clock)
    held = acquire_lock(
        cluster,
        namespace="team-a",
        vcluster="vc",
        holder="b@h:2 rotate",
        clock=clock,
        holder_dead=lambda holder: holder == "a@h:1 rotate",
    )
    assert cluster.leases["vcerts-vc"].holder == "b@h:2 rotate" == held.holder


def test_renewal_happens_after_a_third_of_the_duration_and_a_lost_lease_is_reported() -> None:
    cluster, clock = fake(), FakeClock()
    held = acquire_lock(
        cluster, namespace="team-a", vcluster="vc", holder="a@h:1 rotate", clock=clock, duration_seconds=30
    )
    rv = held.record.resource_version
    held.renew(clock.now() + timedelta(seconds=5))
    assert held.record.resource_version == rv
    held.renew(clock.now() + timedelta(seconds=11))
    assert held.record.resource_version != rv
    cluster.leases["vcerts-vc"] = cluster.leases["vcerts-vc"].__class__(
        name="vcerts-vc",
        holder="thief",
        duration_seconds=30,
        acquired=clock.now(),
        renewed=clock.now(),
        resource_version="999",
    )
    with pytest.raises(LockHeldError):
        held.renew(clock.now() + timedelta(seconds=30))
    held.release()  # not ours any more: left alone
    assert cluster.leases["vcerts-vc"].holder == "thief"


def test_vclusters_own_rotation_lease_held_by_a_replica_means_vcluster_is_rotating() -> None:
    cluster, clock = fake(), FakeClock()
    cluster.create_lease(
        "team-a",
        contract.vcluster_rotation_lease_name("vc"),
        holder="vc-1",
        duration_seconds=300,
        now=clock.now(),
    )
    with pytest.raises(LockHeldError) as info:
        acquire_vcluster_rotation_lease(
            cluster, namespace="team-a", vcluster="vc", holder="a@h:1 rotate", clock=clock
        )
    assert "cert watcher" in info.value.message


def test_a_free_vcluster_rotation_lease_is_held_for_300_seconds() -> None:
    cluster, clock = fake(), FakeClock()
    held = acquire_vcluster_rotation_lease(
        cluster, namespace="team-a", vcluster="vc", holder="a@h:1 rotate", clock=clock
    )
    assert held.record.name == "vcluster-vc-cert-rotation" and held.record.duration_seconds == 300


def test_holder_identity_names_user_host_pid_and_operation() -> None:
    assert holder_identity("rotate", user="u", host="h", pid=7) == "u@h:7 rotate"


def test_a_holder_on_this_host_whose_process_exited_is_dead_and_a_live_one_is_not() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    gone = int(proc.stdout)
    host = socket.gethostname()
    assert local_holder_dead(f"u@{host}:{gone} rotate")
    assert not local_holder_dead(f"u@{host}:{os.getppid()} rotate")
    assert not local_holder_dead(f"u@another-host-{host}:{gone} rotate")
    assert not local_holder_dead("not an identity")


def test_the_operation_record_round_trips_through_its_annotation() -> None:
    record = OperationRecord(
        operation=Operation.ROTATE_CA,
        id="abc",
        backup="vc-certs-backup-1",
        phase=Phase.RESTART,
        restart=RestartMode.TOGETHER,
        started=FakeClock().now().replace(microsecond=0),
        ca_change=True,
        holder="a@h:1",
        source="",
    )
    assert read_record({contract.OPERATION_ANNOTATION: record.encode()}, where="x") == record
    assert read_record({}, where="x") is None


def test_an_unreadable_operation_record_is_reported_not_guessed() -> None:
    with pytest.raises(InvalidPkiError) as info:
        read_record({contract.OPERATION_ANNOTATION: "{not json"}, where="secret team-a/vc-certs")
    assert "team-a/vc-certs" in info.value.message


@pytest.mark.parametrize(
    ("vcluster", "lease"),
    [
        # vectors computed with vCluster's algorithm (translate.SafeConcatName) in Go
        pytest.param("vc", "vcluster-vc-cert-rotation", id="short"),
        pytest.param("a-name-of-exactly-forty-characters-long",
                     "vcluster-a-name-of-exactly-forty-characters-long-cert-rotation", id="62: kept"),
        pytest.param("a-name-of-exactly-forty-one-characters-lo",
                     "vcluster-a-name-of-exactly-forty-one-characters-lo-c-b4868fc065", id="64: hashed"),
        pytest.param("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbb",
                     "vcluster-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-ee3655c232", id="'.-' made '-'"),
    ],
)
def test_vclusters_cert_rotation_lease_is_named_by_its_safe_concat_name_rule(
    vcluster: str, lease: str
) -> None:
    assert contract.vcluster_rotation_lease_name(vcluster) == lease
    assert len(lease) <= 63
