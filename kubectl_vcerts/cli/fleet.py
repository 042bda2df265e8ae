"""Fleet runs of rotate and rotate-ca: `rotate -A`, `rotate A B`, `rotate` (the namespace), `-l`,
`--expiring-within`. The scheduling rules live in rotation/fleet.py; this module selects (one `check`
read), plans, asks once, shows progress on stderr, and renders the summary and the documents.

Progress: on a terminal a live display (one line per running vCluster and an overall bar); otherwise a
plain line when each vCluster starts and ends (every step too with -v). Ctrl-C during the run starts no
new vCluster; the running ones finish or roll back, then the summary is printed and the exit code is the
worst outcome (130 when nothing worse happened). A second Ctrl-C does not abandon them either: kill the
process for that (each vCluster's operation record lets the next run finish or roll back its work).

Schema of `-o json|yaml` (kind OperationResultList): apiVersion; kind; operation; stage (rotate-ca
--phase/--staged, else null); dryRun; maxParallel; peakParallel; interrupted; stoppedByFailure; exitCode;
items [{namespace, name, order (1-based, the order of the plan), result (done | planned | failed |
skipped | not started), exitCode, message, earliestNotAfter, startedAt, finishedAt (RFC 3339 with
milliseconds), seconds, report (the single-vCluster document of `rotate -o json`, or null)}].
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import FrameType
from typing import Annotated, Any

import typer

from kubectl_vcerts import timefmt
from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.formats import check_selector
from kubectl_vcerts.cli.options import OutputFormat, parse_duration
from kubectl_vcerts.cli.render import (
    confirm,
    emit_document,
    format_expiry,
    format_remaining,
    print_table,
    spinner,
    stderr_is_terminal,
)
from kubectl_vcerts.cli.report import TITLES, plan_lines, report_document
from kubectl_vcerts.errors import AbortedError, ExitCode, UsageError
from kubectl_vcerts.rotation.fleet import (
    DEFAULT_MAX_PARALLEL,
    FleetResult,
    FleetRun,
    FleetRunner,
    FleetTarget,
    Outcome,
    select_targets,
)
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.operation import OperationReport, OperationRequest
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.ports import CaChangeHook, ProgressEvent
from kubectl_vcerts.rotation.recovery import Operation

API_VERSION = "vcerts.io/v1"

AllNamespacesOption = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="Every vCluster in every namespace.")
]
SelectorOption = Annotated[
    str | None,
    typer.Option("--selector", "-l",
                 help="Only vClusters whose StatefulSet/Deployment matches this label selector."),
]
ExpiringWithinOption = Annotated[
    str | None,
    typer.Option("--expiring-within",
                 help="Only vClusters with a certificate ending within this (e.g. 30d); what a renewal "
                 "job wants."),
]
MaxParallelOption = Annotated[
    int, typer.Option("--max-parallel", min=1, max=64, help="How many vClusters run at once.")
]
KeepGoingOption = Annotated[
    bool, typer.Option("--keep-going", help="A failure does not stop the scheduling of the others.")
]


@dataclass(frozen=True)
class Selection:
    """Which vClusters a rotate or rotate-ca runs on (the arguments `check` takes, plus expiry)."""

    names: tuple[str, ...] = ()
    all_namespaces: bool = False
    selector: str | None = None
    expiring_within: str | None = None
    max_parallel: int = DEFAULT_MAX_PARALLEL
    keep_going: bool = False

    @property
    def is_fleet(self) -> bool:
        """One named vCluster and nothing else is the single-vCluster command of before."""
        return (len(self.names) != 1 or self.all_namespaces or self.selector is not None
                or self.expiring_within is not None)

    def check(self) -> None:
        """Refuse bad values before anything is read."""
        if self.selector is not None:
            check_selector(self.selector)
        self.window()

    def window(self) -> timedelta | None:
        if self.expiring_within is None:
            return None
        value = parse_duration(self.expiring_within, flag="--expiring-within")
        if value < timedelta(0):
            raise UsageError("--expiring-within must not be negative", hint="e.g. --expiring-within 30d")
        return value


def refuse_single_only(flags: dict[str, bool]) -> None:
    """Options that name one vCluster's things (a file, a server, a Platform instance) make no sense for
    many: refuse them before anything is read."""
    given = [flag for flag, set_ in flags.items() if set_]
    if given:
        raise UsageError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to one vCluster, "
                         "not to a fleet run",
                         hint="name exactly one vCluster (no -A, -l, --expiring-within)")


# ------------------------------------------------------------------------------------------ wiring
def _find(deps: Deps, namespace: str, name: str) -> VCluster:
    from kubectl_vcerts.kube.discovery import KubeReader
    from kubectl_vcerts.rotation.discovery import find_vcluster

    return find_vcluster(KubeReader(deps.session()), name=name, namespace=namespace, for_rotation=True)


def _workflow(deps: Deps, vcluster: VCluster, progress: Callable[[ProgressEvent], None],
              hooks: Callable[[Deps, VCluster], Sequence[CaChangeHook]] | None) -> Any:
    from kubectl_vcerts.kube.rotation import KubeRotationPorts
    from kubectl_vcerts.rotation.clock import SystemClock
    from kubectl_vcerts.rotation.lock import local_holder_dead
    from kubectl_vcerts.rotation.workflow import Ports, Workflow

    # one session for every thread: the client's connection pool is thread-safe; the ports keep no state
    ports = KubeRotationPorts(deps.session(), refresh=lambda vc: _find(deps, vc.namespace, vc.name))
    return Workflow(Ports(ports, ports, ports, ports, ports), SystemClock(deps.now), progress=progress,
                    hooks=hooks(deps, vcluster) if hooks else (), holder_dead=local_holder_dead)


def select(deps: Deps, selection: Selection, operation: Operation) -> list[FleetTarget]:
    """One `check` read (a fixed number of lists), then the targets in the order they run."""
    from kubectl_vcerts.kube.discovery import KubeReader
    from kubectl_vcerts.rotation.check import DEFAULT_WARN_WITHIN, check_all

    window = selection.window()
    session = deps.session()
    with spinner(deps, "reading vClusters"):
        namespace = None if selection.all_namespaces else session.namespace
        summary = check_all(KubeReader(session), namespace=namespace,
                            names=list(dict.fromkeys(selection.names)), now=deps.now(),
                            warn_within=window if window is not None else DEFAULT_WARN_WITHIN,
                            selector=selection.selector or "")
    return select_targets(summary, expiring_within=window, include_ca=operation is Operation.ROTATE_CA,
                          now=deps.now())


# ------------------------------------------------------------------------------------------ command
def run_fleet(
    ctx: typer.Context,
    selection: Selection,
    request: OperationRequest,
    *,
    output: OutputFormat,
    yes: bool,
    hooks: Callable[[Deps, VCluster], Sequence[CaChangeHook]] | None = None,
) -> FleetRun:
    """Select, plan, confirm once, run; render the summary. Raises typer.Exit with the worst code."""
    from kubectl_vcerts.cli.operation import check_can_confirm
    from kubectl_vcerts.rotation.clock import SystemClock

    deps = get_deps(ctx)
    selection.check()
    check_can_confirm(deps, yes=yes, dry_run=request.dry_run)
    targets = select(deps, selection, request.operation)
    if not targets:
        _nothing(deps, selection)
        emit = output in (OutputFormat.JSON, OutputFormat.YAML)
        run = FleetRun(results=(), dry_run=request.dry_run, max_parallel=selection.max_parallel)
        if emit:
            emit_document(deps, fleet_document(run, request), output)
        return run

    def plan_one(target: FleetTarget) -> RotationPlan:
        vcluster = _find(deps, target.namespace, target.name)
        workflow = _workflow(deps, vcluster, lambda _e: None, hooks)
        report: OperationReport = workflow.run(vcluster, replace(request, dry_run=True))
        return report.plan

    display = FleetProgress(deps)

    def run_one(target: FleetTarget, agree: Callable[[RotationPlan], bool]) -> OperationReport:
        vcluster = _find(deps, target.namespace, target.name)
        workflow = _workflow(deps, vcluster, lambda event: display.step(target, event), hooks)
        report: OperationReport = workflow.run(vcluster, request, confirm=agree)
        return report

    stop = threading.Event()
    runner = FleetRunner(plan_one, run_one, SystemClock(deps.now), max_parallel=selection.max_parallel,
                         keep_going=selection.keep_going, stop=stop, on_start=display.start,
                         on_done=display.done)
    if yes and not request.dry_run:
        planned = runner.pending(targets)  # nobody to show a plan to: each plans under its lock
    else:
        with spinner(deps, f"planning {len(targets)} vCluster(s)"):
            planned = runner.plan(targets)
    if request.dry_run:
        run = FleetRun(results=tuple(planned), dry_run=True, max_parallel=selection.max_parallel)
        render_fleet(deps, run, request, output=output)
        _exit(run)
        return run
    runnable = [r for r in planned if r.outcome is Outcome.PLANNED]
    if not yes and runnable:
        for line in fleet_plan_lines(planned, request, max_parallel=selection.max_parallel, now=deps.now()):
            deps.err.print(line, markup=False, highlight=False)
        if not confirm(deps, f"Proceed with {len(runnable)} vCluster(s)?", yes=False):
            raise AbortedError("aborted: nothing was changed")
    with display.live(total=len(runnable)), _stop_on_interrupt(stop, display):
        run = runner.run(planned)
    render_fleet(deps, run, request, output=output)
    _exit(run)
    return run


def _exit(run: FleetRun) -> None:
    if run.exit_code:
        raise typer.Exit(run.exit_code)


def _nothing(deps: Deps, selection: Selection) -> None:
    where = "any namespace" if selection.all_namespaces else f"namespace {deps.session().namespace}"
    what = (f" with a certificate ending within {selection.expiring_within}" if selection.expiring_within
            else "")
    labels = f" matching {selection.selector}" if selection.selector else ""
    deps.err.print(f"No vClusters{labels}{what} in {where}: nothing to do.", markup=False, highlight=False)


@contextmanager
def _stop_on_interrupt(stop: threading.Event, display: FleetProgress) -> Iterator[None]:
    """Ctrl-C sets `stop` instead of raising: the scheduling loop then starts nothing new and waits for
    the running vClusters, which must finish or roll back rather than be cut off mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        again = stop.is_set()
        stop.set()
        display.interrupted(again)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------------------ progress
class FleetProgress:
    """What the user sees on stderr while the fleet runs (called from the worker threads)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.terminal = stderr_is_terminal(deps)
        self._lock = threading.Lock()
        self._progress: Any = None
        self._overall: Any = None
        self._tasks: dict[str, Any] = {}
        self._done = 0
        self._total = 0

    def _count_text(self) -> str:
        return f"{self._done}/{self._total} vCluster(s) done"

    @contextmanager
    def live(self, *, total: int) -> Iterator[None]:
        if not self.terminal or total == 0:
            yield
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn

        self._total = total
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), console=self.deps.err,
                                  transient=True)
        self._overall = self._progress.add_task(self._count_text(), total=total)
        with self._progress:
            yield
        self._progress = None

    def _line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self.deps.err.print(text, markup=False, highlight=False)

    def start(self, target: FleetTarget) -> None:
        with self._lock:
            if self._progress is not None:
                self._tasks[target.ref] = self._progress.add_task(f"{target.ref}: starting", total=None)
            else:
                self._line(f"{target.ref}: started")

    def step(self, target: FleetTarget, event: ProgressEvent) -> None:
        with self._lock:
            if self._progress is not None and target.ref in self._tasks:
                self._progress.update(self._tasks[target.ref], description=f"{target.ref}: {event.step}: "
                                      f"{event.message}")
            elif self._progress is None and self.deps.verbose:
                self._line(f"{target.ref}: {event.step}: {event.message}{' done' if event.done else ''}")

    def done(self, result: FleetResult) -> None:
        with self._lock:
            self._done += 1
            ref = result.target.ref
            if self._progress is not None:
                task = self._tasks.pop(ref, None)
                if task is not None:
                    self._progress.remove_task(task)
                self._progress.update(self._overall, advance=1, description=self._count_text())
            mark = "✓" if result.outcome is Outcome.DONE else "✗"
            self._line(f"{mark} {ref}: {result_text(result)}"
                       + (f" ({result.seconds:.1f}s)" if result.seconds is not None else ""))

    def interrupted(self, again: bool) -> None:
        # a signal handler: write straight to the file descriptor, not through a console lock another
        # frame of this thread may hold
        text = ("kubectl vcerts: still waiting for the running vClusters to finish or roll back "
                "(kill the process to abandon them; the next run resumes their work)\n" if again else
                "kubectl vcerts: interrupted: no new vCluster is started; waiting for the running ones to "
                "finish or roll back\n")
        os.write(2, text.encode())


# ------------------------------------------------------------------------------------------ rendering
def result_text(result: FleetResult) -> str:
    if result.outcome is Outcome.DONE:
        return "done"
    if result.outcome is Outcome.PLANNED:
        return "planned"
    if result.exit_code == ExitCode.ROLLED_BACK:
        return f"rolled back (exit 19): {result.message}"
    if result.exit_code:
        return f"{result.outcome} (exit {result.exit_code}): {result.message}"
    return f"{result.outcome}: {result.message}" if result.message else str(result.outcome)


def _plan_summary(plan: RotationPlan) -> str:
    if plan.resume is not None:
        return f"finish the interrupted {plan.resume.operation}"
    pods = len(plan.restart_pods)
    restart = (f"{plan.restart_mode} restart of {pods} pod(s)" if plan.restart else "no restart")
    return f"{len(plan.changes)} entries, {restart}"


def fleet_plan_lines(planned: Sequence[FleetResult], request: OperationRequest, *, max_parallel: int,
                     now: datetime) -> list[str]:
    runnable = [r for r in planned if r.outcome is Outcome.PLANNED]
    title = TITLES[request.operation]
    if request.stage is not None or request.stage_due:
        title = f"staged CA rotation ({f'phase {request.stage}' if request.stage else 'the phase due'})"
    lines = [f"Plan: {title} of {len(runnable)} vCluster(s), at most {max_parallel} at a time, in this order "
             "(soonest expiry first); each one backed up, locked, verified and rolled back on failure:"]
    for order, result in enumerate(runnable, 1):
        assert result.plan is not None
        ends = result.target.earliest
        when = "no date" if ends is None else f"{'ended' if ends <= now else 'ends'} {format_expiry(ends)}"
        phase = f" [phase {result.plan.stage}]" if result.plan.stage else ""
        lines.append(f"  {order:>3}. {result.target.ref}{phase}: {when}; {_plan_summary(result.plan)}")
    others = [r for r in planned if r.outcome is not Outcome.PLANNED]
    if others:
        lines.append("Not run:")
        lines += [f"  - {r.target.ref}: {result_text(r)}" for r in others]
    return lines


def _ms(value: datetime | None) -> str | None:
    if value is None:
        return None
    return timefmt.rfc3339_micro(value)[:-4] + "Z"  # milliseconds: the overlap of runs is measurable


def fleet_document(run: FleetRun, request: OperationRequest) -> dict[str, Any]:
    # the place in the schedule: every vCluster that was to run (not those skipped or refused at planning)
    scheduled = (r for r in run.results if r.outcome is not Outcome.SKIPPED
                 and not (r.outcome is Outcome.FAILED and r.started is None))
    order = {id(r): i for i, r in enumerate(scheduled, 1)}
    stage = str(request.stage) if request.stage is not None else ("due" if request.stage_due else None)
    return {
        "apiVersion": API_VERSION,
        "kind": "OperationResultList",
        "operation": str(request.operation),
        "stage": stage,
        "dryRun": run.dry_run,
        "maxParallel": run.max_parallel,
        "peakParallel": run.peak_parallel,
        "interrupted": run.interrupted,
        "stoppedByFailure": run.stopped_by_failure,
        "exitCode": run.exit_code,
        "items": [
            {
                "namespace": r.target.namespace,
                "name": r.target.name,
                "order": order.get(id(r)),
                "result": str(r.outcome),
                "exitCode": r.exit_code,
                "message": r.message or None,
                "earliestNotAfter": timefmt.rfc3339(r.target.earliest) if r.target.earliest else None,
                "startedAt": _ms(r.started),
                "finishedAt": _ms(r.finished),
                "seconds": None if r.seconds is None else round(r.seconds, 3),
                "report": report_document(r.report) if r.report is not None
                else report_document(OperationReport(plan=r.plan, applied=False)) if r.plan is not None
                and run.dry_run else None,
            }
            for r in run.results
        ],
    }


def render_fleet(deps: Deps, run: FleetRun, request: OperationRequest, *, output: OutputFormat) -> None:
    """The results on stdout (table, or the document), then a one-line tally on stderr."""
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        emit_document(deps, fleet_document(run, request), output)
    elif run.dry_run:
        for line in fleet_plan_lines(run.results, request, max_parallel=run.max_parallel, now=deps.now()):
            deps.out.print(line, markup=False, highlight=False)
        for result in run.results:
            if result.plan is not None:
                deps.out.print("", markup=False, highlight=False)
                for line in plan_lines(result.plan):
                    deps.out.print(line, markup=False, highlight=False)
        deps.out.print("Dry run: nothing was changed.", markup=False, highlight=False)
    else:
        print_table(deps, ["NAMESPACE", "NAME", "RESULT", "EXIT", "EXPIRY BEFORE", "TIME", "DETAIL"],
                    _result_rows(run, now=deps.now()))
    if run.dry_run:
        return
    counts: dict[str, int] = {}
    for result in run.results:
        counts[str(result.outcome)] = counts.get(str(result.outcome), 0) + 1
    tally = ", ".join(f"{n} {what}" for what, n in counts.items())
    tail = " (interrupted: no new vCluster was started after Ctrl-C)" if run.interrupted else ""
    tail += " (stopped scheduling after a failure; --keep-going runs on)" if run.stopped_by_failure else ""
    deps.err.print(f"{len(run.results)} vCluster(s): {tally}; exit code {run.exit_code}{tail}",
                   markup=False, highlight=False)


def _result_rows(run: FleetRun, *, now: datetime) -> list[list[str]]:
    rows = []
    for result in run.results:
        ends = result.target.earliest
        rows.append([
            result.target.namespace,
            result.target.name,
            "rolled back" if result.exit_code == ExitCode.ROLLED_BACK else str(result.outcome),
            str(result.exit_code),
            "-" if ends is None else f"{format_expiry(ends)} ({format_remaining(ends - now)})",
            "-" if result.seconds is None else f"{result.seconds:.1f}s",
            result.message or ("-" if result.report is None else _done_detail(result.report)),
        ])
    return rows


def _done_detail(report: OperationReport) -> str:
    parts = [f"backup {report.backup}"] if report.backup else []
    if report.final_ca_fingerprint and report.plan.ca_change:
        parts.append(f"CA {report.final_ca_fingerprint[:19]}…")
    if report.pending_restart:
        parts.append(f"restart pending: {', '.join(report.pending_restart)}")
    return "; ".join(parts) or "-"

