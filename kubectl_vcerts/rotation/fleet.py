"""Fleet runs: one operation (rotate, rotate-ca) over many vClusters.

`select_targets` picks from a `check` summary (names, -A, -l, --expiring-within) and orders them: the
soonest expiry first, so that an interrupted run has done the most urgent ones. `FleetRunner.plan`
makes every target's plan (a dry run each: reads only) for the plan shown before the one question;
`FleetRunner.pending` skips that when nobody is asked (--yes: each vCluster is then planned once, under
its lock, when its turn comes). `run` runs them with at most `max_parallel` at a time; each run is the
single-vCluster workflow with its own lock, so two fleet runs or a fleet run and a single one never
touch the same vCluster at once.

Rules a fleet run keeps (README "Fleets"):
  * a failure never stops a vCluster mid-way: its own workflow rolls back or finishes; the failure
    stops the scheduling of new ones unless `keep_going`;
  * a refusal before any change (not Running, corrupt PKI, the lock held by someone else: raised
    before the workflow asked to proceed) touched nothing and says nothing about the others: it is
    reported, counts in the exit code, and does not stop the rest;
  * `stop` (set by the CLI on Ctrl-C) starts no new run; the running ones finish or roll back;
  * a vCluster whose NAME-certs changed between the plan that was confirmed and its run is not run
    (ConflictError): what the user agreed to is not what would happen.
The exit code is the most severe outcome (`SEVERITY`), then INTERRUPTED when stopped, else 0.

Never prints; `on_start`/`on_done` tell the CLI when a run starts and ends (its steps reach the CLI
through the workflow's own progress callback). No cluster access of its own: `plan_one` and
`run_one` (the CLI's wiring of the workflow) do that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ConflictError, ExitCode, VcertsError
from kubectl_vcerts.rotation.check import CheckSummary, SummaryRow
from kubectl_vcerts.rotation.model import Distro
from kubectl_vcerts.rotation.operation import OperationReport
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.ports import Clock

INTERRUPTED = 130  # what shells report for SIGINT (cli/failure.py uses the same)
DEFAULT_MAX_PARALLEL = 4

# Most severe first: an unexpected error (state unknown), then a vCluster left on new certificates that
# did not come back (--no-rollback), a rollback, refusals of the server or RBAC, and the refusals that
# left everything untouched. A code not listed ranks after these.
SEVERITY: tuple[int, ...] = (
    ExitCode.FAILURE, ExitCode.TIMEOUT, ExitCode.ROLLED_BACK, ExitCode.UNTRUSTED, ExitCode.UNREACHABLE,
    ExitCode.FORBIDDEN, ExitCode.CONFLICT, ExitCode.INVALID_PKI, ExitCode.NOT_READY, ExitCode.DATA_LOSS,
    ExitCode.STAGE_ORDER, ExitCode.UNSUPPORTED, ExitCode.NOT_FOUND, ExitCode.INVALID_INPUT,
    ExitCode.ABORTED,
)


class Outcome(StrEnum):
    DONE = "done"  # the operation ran and was verified
    PLANNED = "planned"  # dry run: the plan only
    FAILED = "failed"  # refused before any change, or failed and rolled back (see exit_code)
    SKIPPED = "skipped"  # nothing to do here: not the k8s distro, no NAME-certs
    NOT_STARTED = "not started"  # stopped before its turn: Ctrl-C, or an earlier failure


@dataclass(frozen=True)
class FleetTarget:
    namespace: str
    name: str
    earliest: datetime | None  # the certificate that ends first (among those the operation renews)
    skip: str = ""  # why it is not run, decided at selection

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class FleetResult:
    target: FleetTarget
    outcome: Outcome
    exit_code: int = 0
    message: str = ""
    report: OperationReport | None = None
    plan: RotationPlan | None = None
    started: datetime | None = None
    finished: datetime | None = None
    refused: bool = False  # failed before any change (planning, lock): does not stop the scheduling

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


@dataclass(frozen=True)
class FleetRun:
    results: tuple[FleetResult, ...]  # in the targets' order
    dry_run: bool
    max_parallel: int
    interrupted: bool = False  # Ctrl-C: no new run was started after it
    stopped_by_failure: bool = False  # a failure stopped the scheduling (no keep_going)
    peak_parallel: int = 0  # the most runs that were under way at once

    @property
    def exit_code(self) -> int:
        return worst_exit_code([r.exit_code for r in self.results], interrupted=self.interrupted)


def worst_exit_code(codes: Sequence[int], *, interrupted: bool = False) -> int:
    failed = [c for c in codes if c]
    if failed:
        rank = {code: index for index, code in enumerate(SEVERITY)}
        return min(failed, key=lambda c: (rank.get(c, len(SEVERITY)), c))
    return INTERRUPTED if interrupted else 0


# ------------------------------------------------------------------------------------------ selection
def _earliest(row: SummaryRow, *, include_ca: bool) -> datetime | None:
    pki = row.pki
    if pki is None:
        return None
    ends = [pki.earliest_leaf_not_after] + ([pki.ca_not_after] if include_ca else [])
    return min((e for e in ends if e is not None), default=None)


def select_targets(summary: CheckSummary, *, expiring_within: timedelta | None, include_ca: bool,
                   now: datetime) -> list[FleetTarget]:
    """The vClusters to run, soonest expiry first (then namespace/name). With `expiring_within`, only
    those with a certificate ending before now + that (`include_ca`: the CA counts too, as for rotate-ca;
    rotate renews leaves only). A vCluster of another distro, or without NAME-certs, is kept as skipped so
    that the plan says why; with `expiring_within` such a vCluster has no expiry and is left out."""
    targets = []
    for row in summary.rows:
        vc = row.vcluster
        earliest = _earliest(row, include_ca=include_ca)
        if expiring_within is not None and (earliest is None or earliest > now + expiring_within):
            # a corrupt PKI whose dates cannot be read is no exception: `check` reports it, and a
            # renewal job that silently rotated it would hide what needs a person
            continue
        skip = ""
        if vc.distro is not Distro.K8S:
            skip = f"distro {vc.distro.value}: only the k8s distro is rotated"
        elif row.pki is None:
            skip = f"no {contract.certs_secret_name(vc.name)} (the vCluster never started)"
        targets.append(FleetTarget(namespace=vc.namespace, name=vc.name, earliest=earliest, skip=skip))
    far = datetime.max.replace(tzinfo=now.tzinfo)
    targets.sort(key=lambda t: (t.earliest or far, t.namespace, t.name))
    return targets


# ------------------------------------------------------------------------------------------ running
PlanOne = Callable[[FleetTarget], RotationPlan]
RunOne = Callable[[FleetTarget, Callable[[RotationPlan], bool]], OperationReport]
OnStart = Callable[[FleetTarget], None]
OnDone = Callable[["FleetResult"], None]


def _ignore(_item: object) -> None:
    return None


@dataclass
class _Schedule:
    """What the scheduling loop shares with its workers (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    peak: int = 0


class FleetRunner:
    """Plans and runs one operation over many vClusters. Build once per command."""

    def __init__(self, plan_one: PlanOne, run_one: RunOne, clock: Clock, *, max_parallel: int,
                 keep_going: bool = False, stop: threading.Event | None = None,
                 on_start: OnStart = _ignore, on_done: OnDone = _ignore, poll_seconds: float = 0.2) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.plan_one, self.run_one, self.clock = plan_one, run_one, clock
        self.max_parallel = max_parallel
        self.keep_going = keep_going
        self.stop = stop or threading.Event()
        self.on_start, self.on_done = on_start, on_done  # called on the worker threads
        self.poll_seconds = poll_seconds

    # ------------------------------------------------------------------------------------ public
    def plan(self, targets: Sequence[FleetTarget]) -> list[FleetResult]:
        """A dry run of every target (in parallel: reads only). Skipped targets are not read."""
        def one(target: FleetTarget) -> FleetResult:
            if target.skip:
                return FleetResult(target, Outcome.SKIPPED, message=target.skip)
            try:
                plan = self.plan_one(target)
            except VcertsError as exc:
                return FleetResult(target, Outcome.FAILED, int(exc.exit_code), _message(exc), refused=True)
            return FleetResult(target, Outcome.PLANNED, plan=plan)

        if not targets:
            return []
        with ThreadPoolExecutor(max_workers=min(len(targets), max(self.max_parallel, 8))) as pool:
            return list(pool.map(one, targets))

    def pending(self, targets: Sequence[FleetTarget]) -> list[FleetResult]:
        """Every target to be run without a plan shown first (each plans under its own lock)."""
        return [FleetResult(t, Outcome.SKIPPED, message=t.skip) if t.skip else FleetResult(t, Outcome.PLANNED)
                for t in targets]

    def run(self, planned: Sequence[FleetResult]) -> FleetRun:
        """Run every PLANNED result's target (others are carried over as they are), at most
        `max_parallel` at a time, in order."""
        results: dict[int, FleetResult] = dict(enumerate(planned))
        queue = [i for i, r in results.items() if r.outcome is Outcome.PLANNED]
        schedule = _Schedule()
        stopped_by_failure = False
        running: dict[Future[FleetResult], int] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel) as pool:
            while queue or running:
                while queue and len(running) < self.max_parallel and not self.stop.is_set() \
                        and not stopped_by_failure:
                    index = queue.pop(0)
                    running[pool.submit(self._run_guarded, results[index], schedule)] = index
                if not running:
                    break
                done, _ = wait(running, timeout=self.poll_seconds, return_when=FIRST_COMPLETED)
                for future in done:
                    index = running.pop(future)
                    results[index] = future.result()
                    failed = results[index].exit_code and not results[index].refused
                    if failed and not self.keep_going:
                        stopped_by_failure = True
        reason = ("stopped by Ctrl-C" if self.stop.is_set()
                  else "stopped after a failure (--keep-going runs on)")
        for index in queue:
            results[index] = FleetResult(results[index].target, Outcome.NOT_STARTED, message=reason,
                                         plan=results[index].plan)
        return FleetRun(results=tuple(results[i] for i in sorted(results)), dry_run=False,
                        max_parallel=self.max_parallel, interrupted=self.stop.is_set(),
                        stopped_by_failure=stopped_by_failure and not self.stop.is_set(),
                        peak_parallel=schedule.peak)

    # ------------------------------------------------------------------------------------ private
    def _run_guarded(self, planned: FleetResult, schedule: _Schedule) -> FleetResult:
        """One target's run; every error becomes its result (a bug in one never hides the others)."""
        target, shown = planned.target, planned.plan
        with schedule.lock:
            schedule.running += 1
            schedule.peak = max(schedule.peak, schedule.running)
        started = self.clock.now()
        changed: list[str] = []
        agreed: list[bool] = []

        def confirm(plan: RotationPlan) -> bool:
            # The user confirmed `shown`; NAME-certs must be the version that plan was made from.
            if shown is not None and (plan.source_resource_version, plan.stage) != (
                    shown.source_resource_version, shown.stage):
                changed.append(plan.source_resource_version)
                return False
            agreed.append(True)
            return True

        try:
            self.on_start(target)
            report = self.run_one(target, confirm)
            result = FleetResult(target, Outcome.DONE, report=report, plan=report.plan, started=started,
                                 finished=self.clock.now())
        except VcertsError as exc:
            error = exc if not changed else ConflictError(
                f"{contract.certs_secret_name(target.name)} in {target.namespace} changed after the plan "
                "was shown: nothing was changed", hint="run again to see the new plan")
            result = FleetResult(target, Outcome.FAILED, int(error.exit_code), _message(error), plan=shown,
                                 started=started, finished=self.clock.now(), refused=not agreed)
        except Exception as exc:  # a bug: the others still finish, and the exit code says FAILURE
            result = FleetResult(target, Outcome.FAILED, int(ExitCode.FAILURE),
                                 f"unexpected error: {type(exc).__name__}: {str(exc)[:200]} (run it alone "
                                 "with -v for the traceback)", plan=shown, started=started,
                                 finished=self.clock.now())
        finally:
            with schedule.lock:
                schedule.running -= 1
        self.on_done(result)
        return result


def _message(exc: VcertsError) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message
