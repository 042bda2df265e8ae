"""The staged CA rotation (rotate-ca --phase) through the workflow, against the in-memory cluster: the
order of phases, a restart one pod at a time, the hooks only at finish, a killed phase resumed, and the
rollback of each phase to the backup taken before it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kubectl_vcerts.errors import ExitCode, NotFoundError, StageOrderError
from kubectl_vcerts.pki import Status, ca_fingerprint, inspect_pki
from kubectl_vcerts.pki.stage_state import Stage, staged_state
from kubectl_vcerts.rotation.recovery import Operation, RestartMode
from tests.unit.rotation_fakes import FakeCluster, make_vcluster, pki_start
from tests.unit.test_rotation_workflow import RecordingHook, cluster_for, request, run_killed_after, workflow


def phase(stage: Stage, **kwargs: object) -> object:
    return request(Operation.ROTATE_CA, stage=stage, **kwargs)


def rollback(**kwargs: object) -> object:
    return request(Operation.RESTORE, undo_stage=True, renew=False, **kwargs)


def run(cluster: FakeCluster, req: object, **kwargs: object) -> object:
    wf, _clock = workflow(cluster, **kwargs)  # type: ignore[arg-type]
    return wf.run(cluster.refresh(cluster.vcluster), req)  # type: ignore[arg-type]


def test_the_phases_run_in_order_each_one_pod_at_a_time_and_the_hooks_act_only_at_finish() -> None:
    cluster = cluster_for(make_vcluster(replicas=2, etcd=1))
    original = cluster.snapshot()
    hook = RecordingHook()
    trust = run(cluster, phase(Stage.TRUST), hooks=[hook])
    state = staged_state(cluster.data)
    assert state is not None and state.phase is Stage.TRUST
    assert ca_fingerprint(cluster.data) == ca_fingerprint(original)  # the old CA still signs
    assert trust.plan.restart_mode is RestartMode.ROLLING  # type: ignore[attr-defined]
    # deployed etcd restarts too (its trusted CA is read at start), one member at a time
    assert [s.pods for s in trust.plan.restart_steps] == [("vc-etcd-0",), ("vc-0",), ("vc-1",)]  # type: ignore[attr-defined]
    assert hook.calls == [] and trust.plan.stage == "trust"  # type: ignore[attr-defined]
    backups = {b.operation for b in cluster.backups.values()}
    assert backups == {"rotate-ca:trust"}

    run(cluster, phase(Stage.SWITCH), hooks=[hook])
    assert hook.calls == []
    finish = run(cluster, phase(Stage.FINISH), hooks=[hook])
    assert hook.calls == ["preflight", "describe", "before", "after"]
    # the hooks hear of the old self-signed CA, not of the copy of the new one it signed
    assert hook.changes[0].old_ca_fingerprint == state.old_ca
    assert hook.changes[0].new_ca_fingerprint == state.new_ca == ca_fingerprint(cluster.data)
    assert staged_state(cluster.data) is None
    assert finish.plan.restart_mode is RestartMode.ROLLING  # type: ignore[attr-defined]
    assert inspect_pki(cluster.data, now=pki_start()).worst is Status.OK
    assert any(b.data == original for b in cluster.backups.values())


@pytest.mark.parametrize(("done", "asked", "message"), [
    ((), Stage.SWITCH, "the switch phase of a staged CA rotation cannot run now: no staged CA rotation is "
                       "under way"),
    ((Stage.TRUST,), Stage.FINISH, "the finish phase of a staged CA rotation cannot run now: its last phase "
                                   "done is trust"),
    ((Stage.TRUST,), Stage.TRUST, "the trust phase of a staged CA rotation cannot run now: its last phase "
                                  "done is trust"),
])
def test_a_phase_out_of_order_is_refused_with_the_phase_due_and_nothing_changes(
        done: tuple[Stage, ...], asked: Stage, message: str) -> None:
    cluster = cluster_for(make_vcluster())
    for stage in done:
        run(cluster, phase(stage))
    before, backups = cluster.snapshot(), dict(cluster.backups)
    with pytest.raises(StageOrderError) as info:
        run(cluster, phase(asked))
    assert message in info.value.message and info.value.exit_code is ExitCode.STAGE_ORDER
    due = "switch" if done else "trust"
    assert f"--phase {due}" in (info.value.hint or "")
    assert cluster.snapshot() == before and cluster.backups == backups


def test_pods_left_on_an_older_pki_are_restarted_together() -> None:
    cluster = cluster_for(make_vcluster(replicas=2))
    for name, (group, pod) in list(cluster.pods.items()):  # started before the write below
        cluster.pods[name] = (group, replace(pod, started=pki_start() - timedelta(hours=1)))
    run(cluster, phase(Stage.TRUST, restart=False))
    report = run(cluster, phase(Stage.SWITCH))
    assert report.plan.restart_mode is RestartMode.TOGETHER  # type: ignore[attr-defined]
    assert any("not one pod at a time" in n for n in report.plan.notes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("step", ["write", "restart", "wait"])
@pytest.mark.parametrize("stage", list(Stage))
def test_a_phase_killed_after_it_wrote_is_finished_by_the_next_run(stage: Stage, step: str) -> None:
    cluster = cluster_for(make_vcluster(replicas=2))
    for earlier in list(Stage)[: list(Stage).index(stage)]:
        run(cluster, phase(earlier))
    run_killed_after(cluster, step, phase(stage))  # type: ignore[arg-type]
    hook = RecordingHook()
    report = run(cluster, phase(stage, holder="bob@desk:77 rotate-ca"), hooks=[hook], dead=True)
    assert report.plan.resume is not None and report.plan.stage == str(stage)  # type: ignore[attr-defined]
    state = staged_state(cluster.data)
    assert (state.phase if state else Stage.FINISH) is stage
    # a resumed finish tells the hooks after the restart; trust and switch never do
    assert hook.calls == (["after"] if stage is Stage.FINISH else [])


@pytest.mark.parametrize("stage", list(Stage))
def test_a_rollback_puts_back_the_pki_from_before_the_last_phase(stage: Stage) -> None:
    cluster = cluster_for(make_vcluster(replicas=2))
    before = {}
    for each in list(Stage)[: list(Stage).index(stage) + 1]:
        before[each] = cluster.snapshot()
        run(cluster, phase(each))
    report = run(cluster, rollback())
    assert cluster.data == before[stage]
    assert report.plan.stage == "rollback" and report.plan.operation is Operation.RESTORE  # type: ignore[attr-defined]
    assert report.plan.restart_mode is RestartMode.ROLLING  # type: ignore[attr-defined]
    # and the phase can run again
    run(cluster, phase(stage))
    state = staged_state(cluster.data)
    assert (state.phase if state else Stage.FINISH) is stage


def test_a_rollback_without_a_staged_rotation_or_its_backup_is_refused() -> None:
    cluster = cluster_for(make_vcluster())
    with pytest.raises(NotFoundError, match="no backup taken before the last phase"):
        run(cluster, rollback())
    run(cluster, phase(Stage.TRUST))
    cluster.backups.clear()
    before = cluster.snapshot()
    with pytest.raises(NotFoundError, match="the last phase done is trust"):
        run(cluster, rollback())
    assert cluster.snapshot() == before


def test_a_staged_rotation_with_a_ca_that_expired_is_refused() -> None:
    cluster = cluster_for(make_vcluster())
    from kubectl_vcerts.errors import InvalidPkiError

    wf, clock = workflow(cluster)
    clock.t += timedelta(days=3651)
    with pytest.raises(InvalidPkiError, match="a staged rotation keeps trusting it"):
        wf.run(cluster.vcluster, phase(Stage.TRUST))  # type: ignore[arg-type]


def test_a_one_step_rotate_ca_during_a_staged_rotation_is_refused_naming_both_ways_on() -> None:
    cluster = cluster_for(make_vcluster())
    run(cluster, phase(Stage.TRUST))
    before = cluster.snapshot()
    with pytest.raises(StageOrderError) as info:
        run(cluster, request(Operation.ROTATE_CA))
    assert "a staged CA rotation is under way (its last phase done is trust)" in info.value.message
    assert "--phase switch" in (info.value.hint or "") and "--phase rollback" in (info.value.hint or "")
    assert cluster.snapshot() == before


def test_a_leaf_renewal_in_trust_keeps_admin_conf_on_the_new_ca_and_the_phase_as_it_is() -> None:
    from kubectl_vcerts.pki.parse import load_certificates, signed_by
    from tests.support.pki_builder import kubeconfig_cert

    cluster = cluster_for(make_vcluster())
    run(cluster, phase(Stage.TRUST))
    trusted = cluster.snapshot()
    run(cluster, request(Operation.ROTATE))
    new_ca = load_certificates(cluster.data["ca.crt"])[1]
    assert cluster.data["apiserver.crt"] != trusted["apiserver.crt"]
    admin = kubeconfig_cert(cluster.data["admin.conf"])
    assert admin != kubeconfig_cert(trusted["admin.conf"]) and signed_by(admin, new_ca)
    state = staged_state(cluster.data)
    assert state is not None and state.phase is Stage.TRUST


def test_staged_runs_the_phase_due_but_never_finish() -> None:
    cluster = cluster_for(make_vcluster())
    first = run(cluster, request(Operation.ROTATE_CA, stage_due=True))
    second = run(cluster, request(Operation.ROTATE_CA, stage_due=True))
    assert (first.plan.stage, second.plan.stage) == ("trust", "switch")  # type: ignore[attr-defined]
    before = cluster.snapshot()
    with pytest.raises(StageOrderError, match="the phase due is finish") as info:
        run(cluster, request(Operation.ROTATE_CA, stage_due=True))
    assert "--phase finish --dry-run" in (info.value.hint or "")
    assert cluster.snapshot() == before


def test_a_new_ca_is_chosen_in_trust_only() -> None:
    from kubectl_vcerts.errors import UsageError

    cluster = cluster_for(make_vcluster())
    run(cluster, phase(Stage.TRUST))
    with pytest.raises(UsageError, match="not for the switch phase"):
        run(cluster, request(Operation.ROTATE_CA, stage_due=True, ca_validity=timedelta(days=900)))
