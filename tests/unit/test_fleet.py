"""Fleet runs (rotation/fleet.py): selection and order, bounded parallelism, what stops the scheduling,
Ctrl-C, plans that went stale, and the exit code of the worst outcome. Pure: the runs are fakes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from kubectl_vcerts.errors import ConflictError, ExitCode, InvalidPkiError, NotReadyError, RolledBackError
from kubectl_vcerts.pki import inspect_pki
from kubectl_vcerts.rotation.check import CheckSummary, SummaryRow
from kubectl_vcerts.rotation.clock import SystemClock
from kubectl_vcerts.rotation.fleet import (
    INTERRUPTED,
    FleetRunner,
    FleetTarget,
    Outcome,
    select_targets,
    worst_exit_code,
)
from kubectl_vcerts.rotation.model import Distro, VCluster, WorkloadKind
from kubectl_vcerts.rotation.operation import OperationReport
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.recovery import Operation, RestartMode
from tests.support.pki_builder import Options, cached_pki

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _vcluster(name: str, namespace: str = "ns", distro: Distro = Distro.K8S) -> VCluster:
    return VCluster(name=name, namespace=namespace, kind=WorkloadKind.STATEFULSET, version="0.33.0",
                    status="Running", replicas=1, persistence=True, distro=distro)


def _plan(target: FleetTarget, version: str = "1", stage: str = "") -> RotationPlan:
    return RotationPlan(operation=Operation.ROTATE, vcluster=_vcluster(target.name, target.namespace),
                        source_resource_version=version, backup_name="b", changes=(),
                        old_ca_fingerprint=None, new_ca_fingerprint="sha256:x",
                        restart_mode=RestartMode.ROLLING, restart_steps=(), restart=True, ca_change=False,
                        new_data={}, stage=stage)


def _targets(count: int) -> list[FleetTarget]:
    return [FleetTarget("ns", f"vc{i:02}", NOW + timedelta(days=i)) for i in range(count)]


class FakeFleet:
    """plan_one/run_one that record what ran and how many ran at once."""

    def __init__(self, *, seconds: float = 0.05, fail: dict[str, Exception] | None = None,
                 plan_fail: dict[str, Exception] | None = None, moved: set[str] | None = None,
                 refuse: dict[str, Exception] | None = None) -> None:
        self.seconds = seconds
        self.fail = fail or {}
        self.refuse = refuse or {}  # raised before the workflow asks to proceed (lock, planning)
        self.plan_fail = plan_fail or {}
        self.moved = moved or set()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.ran: list[str] = []
        self.started = threading.Event()

    def plan_one(self, target: FleetTarget) -> RotationPlan:
        if target.name in self.plan_fail:
            raise self.plan_fail[target.name]
        return _plan(target)

    def run_one(self, target: FleetTarget, agree: Callable[[RotationPlan], bool]) -> OperationReport:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.ran.append(target.name)
        self.started.set()
        try:
            time.sleep(self.seconds)
            if target.name in self.refuse:
                raise self.refuse[target.name]
            plan = _plan(target, version="2" if target.name in self.moved else "1")
            if not agree(plan):
                raise ConflictError("aborted: nothing was changed")  # the workflow raises AbortedError
            if target.name in self.fail:
                raise self.fail[target.name]
            return OperationReport(plan=plan, applied=True, backup=f"{target.name}-backup")
        finally:
            with self.lock:
                self.running -= 1

    def runner(self, **options: object) -> FleetRunner:
        return FleetRunner(self.plan_one, self.run_one, SystemClock(), poll_seconds=0.01,
                           **options)  # type: ignore[arg-type]


def test_every_target_runs_once_in_order_and_never_more_than_max_parallel_at_once() -> None:
    fake = FakeFleet()
    runner = fake.runner(max_parallel=3)
    run = runner.run(runner.plan(_targets(12)))
    assert sorted(fake.ran) == [f"vc{i:02}" for i in range(12)]
    assert fake.ran[:3] == ["vc00", "vc01", "vc02"]  # started in the plan's order
    assert fake.peak == 3 and run.peak_parallel == 3
    assert [r.outcome for r in run.results] == [Outcome.DONE] * 12
    assert [r.target.name for r in run.results] == [f"vc{i:02}" for i in range(12)]
    assert all(r.started is not None and r.finished is not None and r.finished >= r.started
               for r in run.results)
    assert run.exit_code == 0


def test_a_failed_run_stops_the_scheduling_but_not_the_runs_under_way() -> None:
    fake = FakeFleet(fail={"vc00": RolledBackError("rolled back")}, seconds=0.05)
    runner = fake.runner(max_parallel=2)
    run = runner.run(runner.plan(_targets(8)))
    outcomes = {r.target.name: r.outcome for r in run.results}
    assert outcomes["vc00"] is Outcome.FAILED
    assert outcomes["vc01"] is Outcome.DONE  # under way when vc00 failed: finished, not cut off
    assert Outcome.NOT_STARTED in outcomes.values()
    assert len(fake.ran) < 8 and run.stopped_by_failure and not run.interrupted
    assert run.exit_code == ExitCode.ROLLED_BACK
    skipped = [r for r in run.results if r.outcome is Outcome.NOT_STARTED]
    assert all("--keep-going" in r.message and r.exit_code == 0 for r in skipped)


def test_keep_going_runs_the_others_after_a_failure() -> None:
    fake = FakeFleet(fail={"vc00": RolledBackError("rolled back"), "vc03": ConflictError("lock held")})
    runner = fake.runner(max_parallel=2, keep_going=True)
    run = runner.run(runner.plan(_targets(6)))
    assert sorted(fake.ran) == [f"vc{i:02}" for i in range(6)]
    assert [r.exit_code for r in run.results] == [19, 0, 0, 15, 0, 0]
    assert run.exit_code == ExitCode.ROLLED_BACK and not run.stopped_by_failure


def test_planning_failures_touch_nothing_are_reported_and_do_not_stop_the_rest() -> None:
    fake = FakeFleet(plan_fail={"vc01": NotReadyError("not Running"), "vc02": InvalidPkiError("corrupt")})
    runner = fake.runner(max_parallel=2)
    planned = runner.plan(_targets(5))
    run = runner.run(planned)
    assert sorted(fake.ran) == ["vc00", "vc03", "vc04"]
    by_name = {r.target.name: r for r in run.results}
    assert (by_name["vc01"].outcome, by_name["vc01"].exit_code) == (Outcome.FAILED, ExitCode.NOT_READY)
    assert by_name["vc02"].exit_code == ExitCode.INVALID_PKI and "corrupt" in by_name["vc02"].message
    assert run.exit_code == ExitCode.INVALID_PKI  # the more severe of 12 and 13
    assert not run.stopped_by_failure


def test_a_refusal_before_any_change_does_not_stop_the_scheduling() -> None:
    fake = FakeFleet(refuse={"vc00": ConflictError("lease vcerts-vc00 is held by ops@elsewhere")})
    runner = fake.runner(max_parallel=1)
    run = runner.run(runner.pending(_targets(4)))  # --yes: no plan shown, each plans under its lock
    assert sorted(fake.ran) == ["vc00", "vc01", "vc02", "vc03"]
    first = run.results[0]
    assert (first.outcome, first.exit_code, first.refused) == (Outcome.FAILED, ExitCode.CONFLICT, True)
    assert [r.outcome for r in run.results[1:]] == [Outcome.DONE] * 3
    assert run.exit_code == ExitCode.CONFLICT and not run.stopped_by_failure


def test_pending_targets_have_no_plan_until_they_run() -> None:
    fake = FakeFleet()
    runner = fake.runner(max_parallel=2)
    pending = runner.pending([*_targets(2), FleetTarget("ns", "k3s", None, skip="distro k3s")])
    assert [(r.outcome, r.plan) for r in pending] == [(Outcome.PLANNED, None), (Outcome.PLANNED, None),
                                                      (Outcome.SKIPPED, None)]
    run = runner.run(pending)
    assert [r.outcome for r in run.results] == [Outcome.DONE, Outcome.DONE, Outcome.SKIPPED]
    assert all(r.plan is not None for r in run.results[:2])


def test_stop_starts_nothing_new_and_lets_the_running_ones_finish() -> None:
    fake = FakeFleet(seconds=0.2)
    stop = threading.Event()
    runner = fake.runner(max_parallel=2, stop=stop)
    planned = runner.plan(_targets(6))
    threading.Timer(0.05, stop.set).start()  # Ctrl-C while the first two run
    run = runner.run(planned)
    assert fake.ran == ["vc00", "vc01"]
    assert [r.outcome for r in run.results] == [Outcome.DONE] * 2 + [Outcome.NOT_STARTED] * 4
    assert run.interrupted and run.exit_code == INTERRUPTED
    assert all(r.message == "stopped by Ctrl-C" for r in run.results[2:])


def test_a_plan_that_went_stale_is_not_run_and_says_why() -> None:
    fake = FakeFleet(moved={"vc01"})
    runner = fake.runner(max_parallel=2)
    run = runner.run(runner.plan(_targets(3)))
    stale = run.results[1]
    assert (stale.outcome, stale.exit_code) == (Outcome.FAILED, ExitCode.CONFLICT)
    assert "vc01-certs in ns changed after the plan was shown" in stale.message
    assert [r.outcome for r in (run.results[0], run.results[2])] == [Outcome.DONE, Outcome.DONE]


def test_a_bug_in_one_run_is_a_failure_of_that_one_only() -> None:
    fake = FakeFleet(fail={"vc00": KeyError("boom")})
    runner = fake.runner(max_parallel=1, keep_going=True)
    run = runner.run(runner.plan(_targets(3)))
    assert run.results[0].exit_code == ExitCode.FAILURE
    assert "KeyError" in run.results[0].message and "-v" in run.results[0].message
    assert [r.outcome for r in run.results[1:]] == [Outcome.DONE, Outcome.DONE]
    assert run.exit_code == ExitCode.FAILURE


def test_skipped_targets_are_not_read_and_not_run() -> None:
    fake = FakeFleet()
    targets = [*_targets(2), FleetTarget("ns", "k3s", None, skip="distro k3s")]
    runner = fake.runner(max_parallel=2)
    run = runner.run(runner.plan(targets))
    assert run.results[2].outcome is Outcome.SKIPPED and run.results[2].message == "distro k3s"
    assert "k3s" not in fake.ran and run.exit_code == 0


def test_max_parallel_must_be_positive() -> None:
    fake = FakeFleet()
    with pytest.raises(ValueError):
        fake.runner(max_parallel=0)


@pytest.mark.parametrize(
    ("codes", "interrupted", "expected"),
    [
        ([], False, 0),
        ([0, 0], False, 0),
        ([0, 0], True, INTERRUPTED),
        ([12, 13], False, 13),
        ([15, 19, 12], True, 19),  # a failure outranks the interruption
        ([18, 19, 1], False, 1),
        ([20, 10], False, 10),
    ],
)
def test_the_exit_code_is_the_most_severe_outcome(codes: list[int], interrupted: bool, expected: int) -> None:
    assert worst_exit_code(codes, interrupted=interrupted) == expected


# ------------------------------------------------------------------------------------------ selection
def _row(name: str, *, leaf_days: int, ca_days: int = 3650, distro: Distro = Distro.K8S,
         certs: bool = True) -> SummaryRow:
    now = NOW - timedelta(days=365) + timedelta(days=leaf_days)  # leaves last 365 days from `now`
    data = cached_pki(Options(name=name, now=now, ca_validity=timedelta(days=ca_days) + (NOW - now)))
    pki = inspect_pki(data, now=NOW, warn_within=timedelta(days=30)) if certs else None
    return SummaryRow(vcluster=_vcluster(name, distro=distro), secret_name=f"{name}-certs", pki=pki)


def _summary(*rows: SummaryRow) -> CheckSummary:
    return CheckSummary(rows=rows, checked_at=NOW, warn_within=timedelta(days=30), namespace="ns")


def test_selection_orders_by_the_soonest_expiry_and_filters_by_the_window() -> None:
    summary = _summary(_row("late", leaf_days=200), _row("soon", leaf_days=10), _row("sooner", leaf_days=3))
    everything = select_targets(summary, expiring_within=None, include_ca=False, now=NOW)
    assert [t.name for t in everything] == ["sooner", "soon", "late"]
    window = select_targets(summary, expiring_within=timedelta(days=30), include_ca=False, now=NOW)
    assert [t.name for t in window] == ["sooner", "soon"]
    assert window[0].earliest is not None and window[0].earliest - NOW < timedelta(days=4)


def test_the_ca_counts_for_rotate_ca_only() -> None:
    summary = _summary(_row("ca-soon", leaf_days=200, ca_days=20))
    assert select_targets(summary, expiring_within=timedelta(days=30), include_ca=False, now=NOW) == []
    [target] = select_targets(summary, expiring_within=timedelta(days=30), include_ca=True, now=NOW)
    assert target.name == "ca-soon"


def test_other_distros_and_missing_certs_are_kept_as_skipped_without_a_window_only() -> None:
    summary = _summary(_row("k3s", leaf_days=5, distro=Distro.K3S), _row("new", leaf_days=5, certs=False))
    targets = select_targets(summary, expiring_within=None, include_ca=False, now=NOW)
    reasons = {t.name: t.skip for t in targets}
    assert "distro k3s" in reasons["k3s"] and "new-certs" in reasons["new"]
    windowed = select_targets(summary, expiring_within=timedelta(days=30), include_ca=False, now=NOW)
    assert [t.name for t in windowed] == ["k3s"]  # it has dates: shown as skipped; "new" has none

