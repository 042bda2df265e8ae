"""The rotate / rotate-ca / restore workflow against in-memory fakes of its ports and a fixed clock.

The certificates are real (tests/support/pki_builder); the cluster is `FakeCluster`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import (
    AbortedError,
    ConflictError,
    DataLossError,
    InvalidInputError,
    InvalidPkiError,
    LockHeldError,
    NotReadyError,
    OperationTimeoutError,
    RolledBackError,
    UnsupportedError,
    UsageError,
)
from kubectl_vcerts.pki import Status, ca_fingerprint, inspect_pki
from kubectl_vcerts.rotation.model import BackingStore, Distro, Rollout, VCluster, WorkloadKind
from kubectl_vcerts.rotation.operation import OperationRequest, stops_after_rollback
from kubectl_vcerts.rotation.plan import RotationPlan, resolve_backup
from kubectl_vcerts.rotation.ports import CaChange, ProgressEvent
from kubectl_vcerts.rotation.records import SecretData
from kubectl_vcerts.rotation.recovery import Operation, Phase, RestartMode, read_record
from kubectl_vcerts.rotation.workflow import Ports, Workflow
from tests.unit.rotation_fakes import FakeClock, FakeCluster, Killed, make_vcluster, pki_data

HOLDER = "alice@laptop:4242 rotate"


def ports(cluster: FakeCluster) -> Ports:
    return Ports(cluster, cluster, cluster, cluster, cluster)


def workflow(
    cluster: FakeCluster, *, hooks: Sequence[object] = (), dead: bool = False, progress: object = None
) -> tuple[Workflow, FakeClock]:
    clock = FakeClock(on_sleep=cluster.tick)
    kwargs: dict[str, object] = {}
    if progress is not None:
        kwargs["progress"] = progress
    return Workflow(ports(cluster), clock, hooks=hooks, holder_dead=lambda _h: dead, **kwargs), clock  # type: ignore[arg-type]


def request(operation: Operation = Operation.ROTATE, **kwargs: object) -> OperationRequest:
    base: dict[str, object] = {"operation": operation, "holder": HOLDER, "timeout": timedelta(seconds=30)}
    base.update(kwargs)
    return OperationRequest(**base)  # type: ignore[arg-type]


def cluster_for(vc: VCluster, **kwargs: object) -> FakeCluster:
    return FakeCluster(vcluster=vc, data=pki_data(), **kwargs)  # type: ignore[arg-type]


@dataclass
class RecordingHook:
    name: str = "recorder"
    calls: list[str] = field(default_factory=list)
    changes: list[CaChange] = field(default_factory=list)

    def describe(self, change: CaChange) -> list[str]:
        self.calls.append("describe")
        return ["recorder: would tell the nodes"]

    def preflight(self, change: CaChange) -> None:
        self.calls.append("preflight")
        self.changes.append(change)

    def before(self, change: CaChange) -> list[str]:
        self.calls.append("before")
        return []

    def after(self, change: CaChange) -> list[str]:
        self.calls.append("after")
        return ["recorder: nodes told"]


def leaf_keys_changed(old: dict[str, bytes], new: dict[str, bytes]) -> set[str]:
    return {k for k in old if old[k] != new.get(k)}


# ------------------------------------------------------------------------------------------ rotate
def test_rotate_renews_leaves_keeps_the_ca_backs_up_restarts_and_cleans_up() -> None:
    cluster = cluster_for(make_vcluster())
    original = cluster.snapshot()
    wf, clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request())
    assert ca_fingerprint(cluster.data) == ca_fingerprint(original)
    changed = leaf_keys_changed(original, cluster.data)
    assert {"apiserver.crt", "etcd-server.crt", "admin.conf"} <= changed
    assert not changed & {"ca.crt", "ca.key", "sa.key", "sa.pub", "etcd-ca.key", "front-proxy-ca.crt"}
    assert inspect_pki(cluster.data, now=clock.now()).worst is Status.OK
    [backup] = cluster.backups.values()
    assert backup.data == original and backup.operation == "rotate"
    assert (
        report.backup == backup.name == contract.backup_secret_name("vc", int(clock.now().timestamp()))
        or report.backup == backup.name
    )
    assert cluster.pod_uids()["vc-0"] != "uid-vc-0"
    assert report.restarted == ("vc-0",)
    assert contract.OPERATION_ANNOTATION not in cluster.annotations
    assert cluster.leases == {}
    assert (
        cluster.events.index(f"backup:{backup.name}")
        < cluster.events.index("write")
        < cluster.events.index("delete:vc-0")
    )


def test_a_leaf_rotation_rolls_the_control_plane_and_leaves_deployed_etcd_running() -> None:
    cluster = cluster_for(make_vcluster(replicas=3, etcd=3), ready_after=2)
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request())
    deletes = [e.split(":", 1)[1] for e in cluster.events if e.startswith("delete:")]
    assert deletes == ["vc-0", "vc-1", "vc-2"], "etcd loads a renewed key pair at each handshake"
    assert report.plan.restart_mode is RestartMode.ROLLING
    assert cluster.max_control_plane_down == 1
    uids = cluster.pod_uids()
    assert all(uids[f"vc-{i}"].endswith("-new") and uids[f"vc-etcd-{i}"] == f"uid-etcd-{i}" for i in range(3))


def test_a_leaf_rotation_of_etcd_on_an_emptydir_is_not_refused_its_members_keep_running() -> None:
    cluster = cluster_for(make_vcluster(etcd=1, etcd_ephemeral=True, ephemeral=True))
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request())
    assert report.plan.data_loss == () and cluster.pod_uids()["vc-etcd-0"] == "uid-etcd-0"


@pytest.mark.parametrize(
    ("operation", "vcluster"),
    [
        pytest.param(Operation.ROTATE_CA, make_vcluster(replicas=3, etcd=3, etcd_ephemeral=True),
                     id="a CA change restarts every deployed-etcd member on an emptyDir together"),
        pytest.param(Operation.ROTATE, make_vcluster(ephemeral=True),
                     id="an embedded database on an emptyDir is lost with its one pod"),
        pytest.param(Operation.ROTATE_CA, make_vcluster(replicas=3, ephemeral=True,
                                                        backing_store=BackingStore.EMBEDDED_ETCD),
                     id="a CA change restarts every embedded-etcd member on an emptyDir together"),
    ],
)
def test_a_restart_that_deletes_the_data_is_refused_unless_allowed(operation: Operation,
                                                                   vcluster: VCluster) -> None:
    cluster = cluster_for(vcluster)
    original, rv = cluster.snapshot(), cluster.resource_version
    wf, _clock = workflow(cluster)
    with pytest.raises(DataLossError) as info:
        wf.run(vcluster, request(operation))
    assert "emptyDir" in info.value.message and "--allow-data-loss" in info.value.hint
    assert cluster.data == original and cluster.resource_version == rv
    assert not cluster.backups and cluster.leases == {} and "write" not in cluster.events
    dry = wf.run(vcluster, request(operation, dry_run=True, allow_data_loss=True))
    assert dry.plan.data_loss and "write" not in cluster.events
    report = wf.run(vcluster, request(operation, allow_data_loss=True))
    assert report.applied and report.plan.data_loss == dry.plan.data_loss


def test_no_restart_is_not_refused_for_data_loss_but_says_which_restart_deletes_it() -> None:
    cluster = cluster_for(make_vcluster(ephemeral=True))
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request(restart=False))
    assert report.applied and any("emptyDir" in note for note in report.plan.notes)


def test_embedded_etcd_on_an_emptydir_is_rolled_even_when_a_pod_is_down_so_members_resync() -> None:
    vc = make_vcluster(replicas=3, ephemeral=True, backing_store=BackingStore.EMBEDDED_ETCD)
    down = replace(vc, pods=(replace(vc.pods[0], ready=False), *vc.pods[1:]))
    cluster = cluster_for(down, ready_after=1)
    wf, _clock = workflow(cluster)
    report = wf.run(down, request())
    assert report.plan.restart_mode is RestartMode.ROLLING and report.plan.data_loss == ()
    assert cluster.max_control_plane_down == 1


def test_no_restart_with_a_ca_change_and_deployed_etcd_is_refused_and_changes_nothing() -> None:
    cluster = cluster_for(make_vcluster(etcd=1))
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    with pytest.raises(UsageError) as info:
        wf.run(cluster.vcluster, request(Operation.ROTATE_CA, restart=False))
    assert "deployed etcd" in info.value.message and "without --no-restart" in info.value.hint
    assert cluster.data == original and not cluster.backups


def test_a_deployment_is_rolled_out_by_its_controller_with_no_moment_without_a_ready_pod() -> None:
    cluster = cluster_for(make_vcluster(kind=WorkloadKind.DEPLOYMENT, etcd=1), ready_after=3)
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request())
    assert [s.group for s in report.plan.restart_steps] == ["rollout"]
    assert "rollout" in cluster.events and not any(e.startswith("delete:") for e in cluster.events)
    assert len(cluster.rolled_out) == 1 and cluster.max_control_plane_down == 0
    assert report.restarted == ("vc-0",)
    assert set(cluster.pod_uids()) == {"vc-0-r1", "vc-etcd-0"}, "the old pod is waited out"


def test_the_read_back_waits_until_the_replaced_pods_are_gone() -> None:
    """A replaced pod runs through its grace period; what it writes then (vCluster's cert watcher) must
    land before the read-back, not after it."""
    cluster = cluster_for(make_vcluster(replicas=2), linger=4)
    wf, _clock = workflow(cluster)
    wf.run(cluster.vcluster, request())
    assert cluster.terminating_at_read[-1] == 0, cluster.terminating_at_read

    stuck = cluster_for(make_vcluster(), linger=10_000)  # a pod stuck terminating does not fail the run
    wf, clock = workflow(stuck)
    started = clock.now()
    report = wf.run(stuck.vcluster, request(timeout=timedelta(minutes=5)))
    assert report.applied and clock.now() - started < timedelta(minutes=1)


def test_a_ca_change_of_a_deployment_deletes_its_pods_together() -> None:
    cluster = cluster_for(make_vcluster(kind=WorkloadKind.DEPLOYMENT))
    wf, _clock = workflow(cluster)
    wf.run(cluster.vcluster, request(Operation.ROTATE_CA))
    assert "delete:vc-0" in cluster.events and cluster.rolled_out == []


def test_a_restart_that_would_roll_out_a_change_staged_under_ondelete_is_refused() -> None:
    vc = make_vcluster(replicas=2, rollout=Rollout(strategy="OnDelete", update_revision="v2"))
    vc = replace(vc, pods=tuple(replace(p, revision="v1") for p in vc.pods))
    cluster = cluster_for(vc)
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    for req in (request(), request(dry_run=True), request(Operation.ROTATE_CA)):
        with pytest.raises(NotReadyError) as info:
            wf.run(vc, req)
        assert "OnDelete" in info.value.message and "vc-0, vc-1" in info.value.message
        assert "--no-restart" in info.value.hint and "nothing was changed" in info.value.hint
    assert cluster.data == original and not cluster.backups and cluster.leases == {}
    report = wf.run(vc, request(restart=False))
    assert report.applied and any("rolls out what is staged" in n for n in report.plan.notes)
    assert not any(e.startswith("delete:") for e in cluster.events)
    allowed = wf.run(vc, request(roll_out_staged=True))
    assert any("--roll-out-staged" in n for n in allowed.plan.notes) and "delete:vc-0" in cluster.events


def test_a_degraded_control_plane_is_restarted_all_together() -> None:
    cluster = cluster_for(make_vcluster(replicas=3, ready=False))
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request())
    assert report.plan.restart_mode is RestartMode.TOGETHER
    assert [step.pods for step in report.plan.restart_steps] == [("vc-0", "vc-1", "vc-2")]


def test_no_restart_writes_and_names_the_pods_to_restart() -> None:
    cluster = cluster_for(make_vcluster(replicas=2, etcd=1))
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request(restart=False))
    assert not [e for e in cluster.events if e.startswith("delete:")]
    assert set(report.pending_restart) == {"vc-0", "vc-1"}
    assert contract.OPERATION_ANNOTATION not in cluster.annotations


def test_leaves_vcluster_rewrote_after_the_restart_are_reported() -> None:
    cluster = cluster_for(make_vcluster())
    old = pki_data()
    cluster.after_restart_rewrite = {
        "apiserver.crt": old["apiserver.crt"],
        "apiserver.key": old["apiserver.key"],
    }
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request())
    assert report.regenerated == ("apiserver.crt", "apiserver.key")


# --------------------------------------------------------------------------------------- rotate-ca
def test_rotate_ca_changes_the_ca_restarts_everything_together_and_runs_the_hooks_in_order() -> None:
    cluster = cluster_for(make_vcluster(replicas=2, etcd=1))
    original = cluster.snapshot()
    hook = RecordingHook()
    wf, clock = workflow(cluster, hooks=[hook])
    report = wf.run(cluster.vcluster, request(Operation.ROTATE_CA))
    assert ca_fingerprint(cluster.data) != ca_fingerprint(original)
    assert cluster.data["sa.key"] == original["sa.key"]
    assert report.plan.restart_mode is RestartMode.TOGETHER
    assert [step.pods for step in report.plan.restart_steps] == [("vc-etcd-0", "vc-0", "vc-1")]
    assert hook.calls == ["preflight", "describe", "before", "after"]
    assert hook.changes[0].new_ca_fingerprint == ca_fingerprint(cluster.data)
    assert report.hook_lines == ("recorder: nodes told",)
    assert report.plan.hook_lines == ("recorder: would tell the nodes",)
    assert inspect_pki(cluster.data, now=clock.now()).worst is Status.OK


def test_a_hook_preflight_refusal_changes_nothing() -> None:
    class Refuse(RecordingHook):
        def preflight(self, change: CaChange) -> None:
            raise NotReadyError("nodes are not ready")

    cluster = cluster_for(make_vcluster())
    original = cluster.snapshot()
    wf, _clock = workflow(cluster, hooks=[Refuse()])
    with pytest.raises(NotReadyError):
        wf.run(cluster.vcluster, request(Operation.ROTATE_CA))
    assert cluster.data == original and not cluster.backups and cluster.leases == {}


# ---------------------------------------------------------------------------------------- dry run
def test_dry_run_plans_and_changes_nothing() -> None:
    cluster = cluster_for(make_vcluster(replicas=3, etcd=1))
    rv = cluster.resource_version
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request(dry_run=True))
    assert not report.applied
    assert cluster.events == [] and cluster.resource_version == rv
    assert {c.secret_key for c in report.plan.changes} >= {"apiserver.crt", "etcd-peer.crt"}
    assert all(c.new_not_after is not None for c in report.plan.changes if c.secret_key.endswith(".crt"))
    assert [s.pods for s in report.plan.restart_steps] == [("vc-0",), ("vc-1",), ("vc-2",)]
    assert report.plan.backup_name.startswith("vc-certs-backup-")


# --------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("vcluster", "error"),
    [
        pytest.param(make_vcluster(distro=Distro.K3S), UnsupportedError, id="a k3s vCluster is refused"),
        pytest.param(make_vcluster(distro=Distro.K0S), UnsupportedError, id="a k0s vCluster is refused"),
        pytest.param(
            make_vcluster(status="CrashLoopBackOff", ready=False),
            NotReadyError,
            id="a control plane that is not Running is refused without --force",
        ),
        pytest.param(
            make_vcluster(restoring=True, annotations={contract.PAUSED_REPLICAS_ANNOTATION: "1"}),
            NotReadyError,
            id="an interrupted vcluster certs rotate is refused without --finish-interrupted",
        ),
    ],
)
def test_a_refused_operation_changes_nothing(vcluster: VCluster, error: type[Exception]) -> None:
    cluster = cluster_for(vcluster)
    original, rv = cluster.snapshot(), cluster.resource_version
    wf, _clock = workflow(cluster)
    with pytest.raises(error):
        wf.run(vcluster, request())
    assert cluster.data == original and cluster.resource_version == rv and cluster.events == []


def test_force_rotates_a_crash_looping_control_plane() -> None:
    cluster = cluster_for(make_vcluster(status="CrashLoopBackOff", ready=False))
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request(force=True))
    assert report.applied and cluster.pod_uids()["vc-0"].endswith("-new")


def test_running_but_not_ready_is_allowed_without_force() -> None:
    cluster = cluster_for(make_vcluster(status="Running", ready=False))
    wf, _clock = workflow(cluster)
    assert wf.run(cluster.vcluster, request()).applied


def test_a_missing_ca_key_is_refused_with_a_hint_to_restore_or_rotate_the_ca() -> None:
    cluster = cluster_for(make_vcluster())
    del cluster.data["ca.key"]
    wf, _clock = workflow(cluster)
    with pytest.raises(InvalidPkiError) as info:
        wf.run(cluster.vcluster, request())
    assert "ca.key" in info.value.message and "rotate-ca" in info.value.hint
    assert not cluster.backups and "write" not in cluster.events


def test_a_lock_held_by_a_live_operator_is_refused_and_nothing_changes() -> None:
    cluster = cluster_for(make_vcluster())
    other = cluster_for(make_vcluster())
    wf_other, _ = workflow(other)
    clock = FakeClock()
    cluster.create_lease(
        "team-a", "vcerts-vc", holder="bob@desk:1 rotate-ca", duration_seconds=60, now=clock.now()
    )
    cluster.events.clear()
    wf, _clock = workflow(cluster)
    with pytest.raises(LockHeldError) as info:
        wf.run(cluster.vcluster, request())
    assert "bob@desk:1 rotate-ca" in info.value.message
    assert cluster.events == [] and not cluster.backups
    del wf_other


def test_an_expired_lock_is_taken_over() -> None:
    cluster = cluster_for(make_vcluster())
    cluster.create_lease(
        "team-a",
        "vcerts-vc",
        holder="bob@desk:1 rotate",
        duration_seconds=60,
        now=FakeClock().now() - timedelta(minutes=5),
    )
    wf, _clock = workflow(cluster)
    assert wf.run(cluster.vcluster, request()).applied
    assert cluster.leases == {}


def test_a_conflicting_write_stops_with_the_secret_unchanged() -> None:
    cluster = cluster_for(make_vcluster())
    original = cluster.snapshot()
    cluster.conflict_next_write = True
    wf, _clock = workflow(cluster)
    with pytest.raises(ConflictError) as info:
        wf.run(cluster.vcluster, request())
    assert "left unchanged" in info.value.message
    assert cluster.data == original and not [e for e in cluster.events if e.startswith("delete:")]
    assert cluster.leases == {}


def test_a_secret_changed_during_the_prompt_stops_a_ca_change_before_its_hooks_delete_anything() -> None:
    cluster = cluster_for(make_vcluster())
    hook = RecordingHook()
    wf, _clock = workflow(cluster, hooks=[hook])

    def confirm_while_the_cert_watcher_writes(_plan: object) -> bool:
        cluster.write_certs(cluster.vcluster, data=cluster.data, annotations={},
                            resource_version=cluster.resource_version)
        return True

    changed = cluster.snapshot()
    with pytest.raises(ConflictError) as info:
        wf.run(cluster.vcluster, request(Operation.ROTATE_CA), confirm=confirm_while_the_cert_watcher_writes)
    assert "left unchanged" in info.value.message
    assert "before" not in hook.calls
    assert cluster.data == changed and cluster.events.count("write") == 1
    assert cluster.leases == {}


def test_declining_the_confirmation_aborts_before_any_backup_or_write() -> None:
    cluster = cluster_for(make_vcluster())
    wf, _clock = workflow(cluster)
    with pytest.raises(AbortedError):
        wf.run(cluster.vcluster, request(), confirm=lambda _plan: False)
    assert not cluster.backups and "write" not in cluster.events and cluster.leases == {}


# ---------------------------------------------------------------------------------------- rollback
def test_pods_that_never_become_ready_are_rolled_back_to_the_backup() -> None:
    cluster = cluster_for(make_vcluster(), come_back=False)
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    with pytest.raises(RolledBackError) as info:
        wf.run(cluster.vcluster, request(timeout=timedelta(seconds=10)))
    assert cluster.data == original
    assert "still not Ready" in info.value.message
    assert contract.OPERATION_ANNOTATION not in cluster.annotations and cluster.leases == {}
    assert cluster.events.count("write") >= 2


def test_a_rolling_update_whose_new_pod_never_gets_ready_is_rolled_back() -> None:
    cluster = cluster_for(make_vcluster(kind=WorkloadKind.DEPLOYMENT), come_back=False)
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    with pytest.raises(RolledBackError):
        wf.run(cluster.vcluster, request(timeout=timedelta(seconds=10)))
    assert cluster.data == original and cluster.rolled_out
    # the old pod kept serving until the rollback restarted everything on the previous PKI
    assert cluster.events.index("rollout") < cluster.events.index("delete:vc-0")


def test_a_rollback_keeps_the_pki_it_replaces_in_a_backup_that_restore_latest_skips() -> None:
    cluster = cluster_for(make_vcluster(), come_back=False)
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    with pytest.raises(RolledBackError):
        wf.run(cluster.vcluster, request(timeout=timedelta(seconds=10)))
    by_operation = {r.operation: r for r in cluster.backups.values()}
    assert set(by_operation) == {"rotate", contract.ROLLED_BACK_OPERATION}
    failed = by_operation[contract.ROLLED_BACK_OPERATION].data or {}
    assert failed["apiserver.crt"] != original["apiserver.crt"], "the failed PKI was not kept"
    assert ca_fingerprint(failed) == ca_fingerprint(original)
    latest = resolve_backup(list(cluster.backups.values()), "latest", vcluster=cluster.vcluster)
    assert latest.operation == "rotate"
    assert latest.name == by_operation["rotate"].name


def test_no_rollback_keeps_the_new_pki_and_reports_a_timeout() -> None:
    cluster = cluster_for(make_vcluster(), come_back=False)
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    with pytest.raises(OperationTimeoutError):
        wf.run(cluster.vcluster, request(timeout=timedelta(seconds=10), rollback=False))
    assert cluster.data["apiserver.crt"] != original["apiserver.crt"]
    assert ca_fingerprint(cluster.data) == ca_fingerprint(original)


# ----------------------------------------------------------------------------------------- restore
def test_restore_latest_puts_the_backup_back_renews_its_leaves_and_backs_up_the_current_state() -> None:
    cluster = cluster_for(make_vcluster())
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    wf.run(cluster.vcluster, request(Operation.ROTATE_CA))
    rotated = cluster.snapshot()
    wf2, _ = workflow(cluster)
    wf2.clock.t += timedelta(seconds=5)  # type: ignore[attr-defined]
    report = wf2.run(cluster.vcluster, request(Operation.RESTORE, restore_backup="latest"))
    assert ca_fingerprint(cluster.data) == ca_fingerprint(original)
    assert cluster.data["apiserver.crt"] != original["apiserver.crt"]  # renewed after the restore
    assert report.plan.ca_change and report.plan.restart_mode is RestartMode.TOGETHER
    newest = max(cluster.backups.values(), key=lambda r: r.created)
    assert newest.data == rotated and newest.operation == "restore"


def test_restore_no_renew_puts_the_backup_back_byte_for_byte() -> None:
    cluster = cluster_for(make_vcluster())
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    wf.run(cluster.vcluster, request())
    [first] = cluster.backups
    wf2, _ = workflow(cluster)
    wf2.clock.t += timedelta(seconds=5)  # type: ignore[attr-defined]
    report = wf2.run(
        cluster.vcluster, request(Operation.RESTORE, restore_backup=first.rsplit("-", 1)[-1], renew=False)
    )
    assert cluster.data == original
    assert not report.plan.ca_change and report.plan.source == first


def test_restore_from_directory_data_refuses_an_incomplete_pki() -> None:
    cluster = cluster_for(make_vcluster())
    partial = pki_data()
    del partial["etcd-peer.key"]
    wf, _clock = workflow(cluster)
    with pytest.raises(InvalidPkiError):
        wf.run(cluster.vcluster, request(Operation.RESTORE, restore_data=partial, restore_source="/tmp/x"))
    assert not cluster.backups and "write" not in cluster.events


# ------------------------------------------------------------------------------------ crash safety
STEPS = ["lock", "backup", "write", "restart", "wait", "verify"]


def run_killed_after(cluster: FakeCluster, step: str, req: OperationRequest) -> None:
    """Run `req` and kill it (no cleanup) once `step` is reported; the cluster is reachable again."""

    def kill_at(event: ProgressEvent) -> None:
        if event.done and event.step == step:
            cluster.kill()
            raise Killed

    wf, _clock = workflow(cluster, progress=kill_at)
    with pytest.raises(Killed):
        wf.run(cluster.vcluster, req)
    cluster.revive()


@pytest.mark.parametrize("step", STEPS, ids=[f"killed after {s}, the re-run converges" for s in STEPS])
def test_a_run_killed_after_any_step_converges_when_run_again(step: str) -> None:
    cluster = cluster_for(make_vcluster(replicas=2, etcd=1))
    original = cluster.snapshot()
    run_killed_after(cluster, step, request())
    wf2, clock2 = workflow(cluster, dead=True)  # the killed holder's process is gone
    report = wf2.run(cluster.refresh(cluster.vcluster), request(holder="alice@laptop:5555 rotate"))
    assert report.applied
    assert ca_fingerprint(cluster.data) == ca_fingerprint(original)
    assert cluster.data["apiserver.crt"] != original["apiserver.crt"]
    assert inspect_pki(cluster.data, now=clock2.now()).worst is Status.OK
    assert contract.OPERATION_ANNOTATION not in cluster.annotations and cluster.leases == {}
    assert any(b.data == original for b in cluster.backups.values())  # nothing lost
    uids = cluster.pod_uids()
    assert uids.pop("vc-etcd-0") == "uid-etcd-0", "a leaf renewal leaves deployed etcd running"
    assert all(uid.endswith("-new") for uid in uids.values())
    if step in ("write", "restart", "wait"):
        assert report.plan.resume is not None  # finished the recorded run instead of a second rotation
        assert len(cluster.backups) == 1


def test_an_interrupted_run_is_not_finished_over_a_pki_someone_wrote_since() -> None:
    """vCluster's cert watcher (or `vcluster certs rotate`) merge-patches the data it read before our
    write and leaves our record: resuming would restart on the old CA and report success."""
    cluster = cluster_for(make_vcluster())
    original = cluster.snapshot()
    run_killed_after(cluster, "write", request(Operation.ROTATE_CA))
    record = read_record(cluster.annotations, where="NAME-certs")
    assert record is not None and record.ca == ca_fingerprint(cluster.data) != ca_fingerprint(original)
    cluster.data = SecretData(original)  # the watcher's unguarded patch: data only
    rv = cluster.resource_version
    wf2, _ = workflow(cluster, dead=True)
    with pytest.raises(ConflictError) as info:
        wf2.run(cluster.vcluster, request(Operation.ROTATE_CA, holder="bob@host:1 rotate-ca"))
    assert "written over after the interrupted rotate-ca" in info.value.message
    assert f"--backup {record.backup}" in info.value.hint
    assert cluster.resource_version == rv and cluster.data == original
    report = wf2.run(cluster.vcluster, request(Operation.RESTORE, restore_backup=record.backup,
                                               holder="bob@host:1 restore"))
    assert report.applied and ca_fingerprint(cluster.data) == ca_fingerprint(original)
    assert contract.OPERATION_ANNOTATION not in cluster.annotations


def kill_during_rollback(cluster: FakeCluster, operation: Operation) -> None:
    """Run `operation` on pods that never come back and kill it once the backup is written back."""

    def kill_at(event: ProgressEvent) -> None:
        if event.done and event.step == "rollback":
            cluster.kill()
            raise Killed

    wf, _clock = workflow(cluster, progress=kill_at)
    with pytest.raises(Killed):
        wf.run(cluster.vcluster, request(operation, timeout=timedelta(seconds=10), force=True))
    cluster.revive()
    cluster.come_back = True  # whatever kept the pods down is fixed before the re-run


@pytest.mark.parametrize(
    ("interrupted", "rerun"),
    [
        (Operation.ROTATE, Operation.ROTATE),
        (Operation.ROTATE_CA, Operation.ROTATE_CA),
        (Operation.ROTATE_CA, Operation.ROTATE),
    ],
    ids=[
        "a rotate killed while rolling back is finished by the next rotate, which then stops",
        "a rotate-ca killed while rolling back is finished by the next rotate-ca, which then stops",
        "a rotate-ca killed while rolling back is finished by a rotate, which then stops",
    ],
)
def test_a_run_killed_during_its_rollback_is_finished_and_no_new_operation_is_run(
    interrupted: Operation, rerun: Operation
) -> None:
    cluster = cluster_for(make_vcluster(replicas=2, etcd=1), come_back=False)
    original = cluster.snapshot()
    kill_during_rollback(cluster, interrupted)
    record = read_record(cluster.annotations, where="test")
    assert record is not None and record.phase is Phase.ROLLBACK
    assert cluster.data == original  # the backup is already written back
    backups_before, writes_before = set(cluster.backups), cluster.events.count("write")

    wf, _clock = workflow(cluster, dead=True)
    vc = cluster.refresh(cluster.vcluster)
    dry = wf.run(vc, request(rerun, dry_run=True, force=True))
    assert stops_after_rollback(dry.plan) and not dry.applied
    assert any("NOT run" in note for note in dry.plan.notes)

    shown: list[bool] = []

    def confirm(plan: RotationPlan) -> bool:
        shown.append(stops_after_rollback(plan))
        return True

    report = wf.run(vc, request(rerun, force=True), confirm=confirm)
    assert shown == [True]  # what the user confirmed is the plan that stops after the rollback
    assert report.applied and stops_after_rollback(report.plan)
    assert report.backup == record.backup and report.final_ca_fingerprint == ca_fingerprint(original)
    assert cluster.data == original
    assert set(cluster.backups) == backups_before  # no backup: no operation was started
    assert cluster.events.count("write") == writes_before + 1  # only the operation record was removed
    assert contract.OPERATION_ANNOTATION not in cluster.annotations and cluster.leases == {}
    # etcd restarts only where the CA the rollback puts back differs from the one it replaces
    etcd = ["vc-etcd-0"] if interrupted is Operation.ROTATE_CA else []
    assert sorted(report.restarted) == ["vc-0", "vc-1", *etcd]
    restarted = {name for name, uid in cluster.pod_uids().items() if uid.endswith("-new")}
    assert restarted == {"vc-0", "vc-1", *etcd}

    wf3, clock3 = workflow(cluster)
    clock3.t += timedelta(seconds=30)
    again = wf3.run(cluster.refresh(cluster.vcluster), request(rerun))
    assert again.applied and not stops_after_rollback(again.plan) and again.plan.resume is None
    assert cluster.data["apiserver.crt"] != original["apiserver.crt"]
    assert len(set(cluster.backups) - backups_before) == 1


def test_no_restart_still_restarts_to_finish_an_interrupted_rollback_and_the_plan_says_so() -> None:
    cluster = cluster_for(make_vcluster(), come_back=False)
    original = cluster.snapshot()
    kill_during_rollback(cluster, Operation.ROTATE)
    wf, _clock = workflow(cluster, dead=True)
    vc = cluster.refresh(cluster.vcluster)
    report = wf.run(vc, request(force=True, restart=False))
    assert stops_after_rollback(report.plan) and report.plan.restart and report.pending_restart == ()
    assert any("--no-restart does not apply" in note for note in report.plan.notes)
    assert report.restarted == ("vc-0",) and cluster.pod_uids()["vc-0"].endswith("-new")
    assert cluster.data == original and contract.OPERATION_ANNOTATION not in cluster.annotations


def test_an_interrupted_rotate_ca_blocks_a_different_operation_until_finished() -> None:
    cluster = cluster_for(make_vcluster())
    run_killed_after(cluster, "write", request(Operation.ROTATE_CA))
    record = read_record(cluster.annotations, where="test")
    assert record is not None and record.operation is Operation.ROTATE_CA
    wf2, _ = workflow(cluster, dead=True)
    with pytest.raises(NotReadyError) as info:
        wf2.run(cluster.vcluster, request())
    assert "rotate-ca" in info.value.hint
    report = wf2.run(cluster.vcluster, request(Operation.ROTATE_CA))
    assert report.plan.resume is not None and report.plan.restart_mode is RestartMode.TOGETHER


def test_an_interrupted_vcluster_certs_rotate_is_finished_first_when_asked() -> None:
    vc = make_vcluster(restoring=True, annotations={contract.PAUSED_REPLICAS_ANNOTATION: "2"})
    cluster = cluster_for(vc)
    cluster.workload_replicas = 0
    wf, _clock = workflow(cluster)
    report = wf.run(vc, request(finish_interrupted=True))
    assert cluster.events[cluster.events.index("lease:vcerts-vc") + 1] == "scale:2"
    assert report.applied and set(cluster.pod_uids()) == {"vc-0", "vc-1"}


def test_a_vcluster_scaled_to_zero_is_written_with_force_and_nothing_is_waited_for() -> None:
    vc = replace(make_vcluster(status="ScaledDown", ready=False), pods=(), replicas=0)
    cluster = cluster_for(vc)
    original = cluster.snapshot()
    wf, clock = workflow(cluster)
    report = wf.run(vc, request(force=True, timeout=timedelta(seconds=5)))
    assert report.applied and report.restarted == ()
    assert cluster.data["apiserver.crt"] != original["apiserver.crt"]
    assert clock.now() - FakeClock().now() < timedelta(seconds=1)  # did not sit out the timeout


# ------------------------------------------------------------------------------- the k3s split
def split_cluster() -> FakeCluster:
    """A k3s-migrated vCluster: server-ca differs from ca, with vCluster's migration annotation."""
    from tests.support.pki_builder import Options, cached_pki

    vc = make_vcluster()
    cluster = FakeCluster(vcluster=vc, data=dict(cached_pki(Options(key_type="ecdsa", split=True))))
    cluster.annotations[contract.MIGRATED_FROM_K3S_ANNOTATION] = "true"
    return cluster


@pytest.mark.parametrize("operation", [Operation.ROTATE, Operation.ROTATE_CA])
def test_a_split_vcluster_is_rotated_without_a_rollback_and_stays_split(operation: Operation) -> None:
    cluster = split_cluster()
    original = cluster.snapshot()
    wf, clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request(operation))
    assert report.applied and report.worst is Status.OK
    assert "scale" not in " ".join(cluster.events)
    data = cluster.data
    assert data["server-ca.crt"] != data["ca.crt"]
    assert data["client-ca.crt"] == data["ca.crt"]
    if operation is Operation.ROTATE:
        assert data["server-ca.crt"] == original["server-ca.crt"]
    else:
        assert data["server-ca.crt"] != original["server-ca.crt"]
    assert inspect_pki(data, now=clock.now()).worst is Status.OK
    assert not [b for b in cluster.backups.values() if b.operation == contract.ROLLED_BACK_OPERATION]


def test_a_backup_of_a_split_vcluster_is_restored() -> None:
    cluster = split_cluster()
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    first = wf.run(cluster.vcluster, request(Operation.ROTATE_CA))
    assert first.backup is not None
    report = wf.run(cluster.vcluster, request(Operation.RESTORE, restore_backup=first.backup, renew=False))
    assert report.applied
    assert cluster.data["server-ca.crt"] == original["server-ca.crt"]
    assert cluster.data["ca.crt"] == original["ca.crt"]


def migrated_cluster() -> FakeCluster:
    """NAME-certs as vCluster's k3s migration leaves it (tests/support/k3s_migration.py): k3s CAs over
    a kubeadm PKI, apiserver-kubelet-client still signed by the CA from before the migration."""
    from tests.support.k3s_migration import MIGRATED_ANNOTATION, migrate_from_k3s

    data = migrate_from_k3s(pki_data(), name="vc", service_cidr="10.96.0.0/12", now=FakeClock().now())
    cluster = FakeCluster(vcluster=make_vcluster(), data=data)
    cluster.annotations[MIGRATED_ANNOTATION] = "true"
    return cluster


@pytest.mark.parametrize("operation", [Operation.ROTATE, Operation.ROTATE_CA])
def test_a_migrated_vcluster_is_rotated_into_a_clean_split(operation: Operation) -> None:
    cluster = migrated_cluster()
    assert inspect_pki(cluster.data, now=FakeClock().now()).worst is Status.INVALID  # as vCluster left it
    wf, clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request(operation))
    assert report.applied and report.worst is Status.OK
    assert inspect_pki(cluster.data, now=clock.now()).split_ca


def test_restoring_a_migrated_backup_as_it_is_does_not_roll_back() -> None:
    cluster = migrated_cluster()
    original = cluster.snapshot()
    wf, _clock = workflow(cluster)
    first = wf.run(cluster.vcluster, request(Operation.ROTATE))
    assert first.backup is not None
    report = wf.run(cluster.vcluster, request(Operation.RESTORE, restore_backup=first.backup, renew=False))
    assert report.applied
    assert cluster.data == original


# ---------------------------------------------------------------------------- backups: identity, pruning
def test_old_backups_beyond_keep_backups_are_pruned_after_success_never_the_new_one() -> None:
    cluster = cluster_for(make_vcluster())
    wf, _clock = workflow(cluster)
    reports = [wf.run(cluster.vcluster, request(keep_backups=3)) for _ in range(5)]
    newest = sorted(cluster.backups, key=lambda n: cluster.backups[n].created)[-3:]
    assert sorted(cluster.backups) == sorted(newest)
    assert reports[-1].backup in cluster.backups
    assert len(reports[-1].pruned) == 1 and reports[0].pruned == ()


def test_keep_backups_zero_keeps_every_backup() -> None:
    cluster = cluster_for(make_vcluster())
    wf, _clock = workflow(cluster)
    for _ in range(3):
        wf.run(cluster.vcluster, request(keep_backups=0))
    assert len(cluster.backups) == 3


def _foreign(cluster: FakeCluster) -> str:
    """A backup left by an earlier vCluster of the same name (another owner uid), newer than ours."""
    wf, _clock = workflow(cluster)
    wf.run(cluster.vcluster, request())
    name = "vc-certs-backup-9999999999"
    newest = max(cluster.backups.values(), key=lambda r: r.created)
    cluster.backups[name] = replace(newest, name=name, identity="uid-of-another-vcluster",
                                    created=newest.created + timedelta(days=1), data=dict(pki_data()))
    return name


def test_latest_never_picks_a_backup_of_another_vcluster_of_the_same_name() -> None:
    cluster = cluster_for(make_vcluster())
    original = cluster.snapshot()
    foreign = _foreign(cluster)
    wf, _clock = workflow(cluster)
    report = wf.run(cluster.vcluster, request(Operation.RESTORE, restore_backup="latest", renew=False))
    assert report.plan.source != foreign
    assert cluster.data == original


def test_naming_a_backup_of_another_vcluster_is_refused_and_changes_nothing() -> None:
    cluster = cluster_for(make_vcluster())
    foreign = _foreign(cluster)
    before, backups = cluster.snapshot(), dict(cluster.backups)
    wf, _clock = workflow(cluster)
    with pytest.raises(InvalidInputError, match="another vCluster named vc"):
        wf.run(cluster.vcluster, request(Operation.RESTORE, restore_backup=foreign))
    assert cluster.snapshot() == before and cluster.backups == backups


def test_pruning_leaves_the_backups_of_another_vcluster_alone() -> None:
    cluster = cluster_for(make_vcluster())
    foreign = _foreign(cluster)
    wf, _clock = workflow(cluster)
    for _ in range(3):
        wf.run(cluster.vcluster, request(keep_backups=1))
    assert foreign in cluster.backups
    assert len(cluster.backups) == 2


def test_every_write_records_its_time_and_a_no_restart_write_is_named_in_the_next_plan() -> None:
    cluster = cluster_for(make_vcluster())
    wf, clock = workflow(cluster)
    wf.run(cluster.vcluster, request(restart=False))
    assert cluster.annotations[contract.WRITTEN_AT_ANNOTATION] == clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    old = clock.now() - timedelta(days=1)
    cluster.vcluster = replace(cluster.vcluster,
                               pods=tuple(replace(p, started=old) for p in cluster.vcluster.pods))
    report = wf.run(cluster.vcluster, request(dry_run=True))
    assert any("started before and still run the certificates from before" in n for n in report.plan.notes)
