"""The CLI side of fleets and metrics without a cluster: -l validation, when a command is a fleet run,
options refused for fleets, the fleet document, and the exporter's snapshot (a failed read keeps the
last good series)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.exporter import Exporter, parse_listen
from kubectl_vcerts.cli.fleet import Selection, fleet_document, refuse_single_only, result_text
from kubectl_vcerts.cli.formats import check_selector
from kubectl_vcerts.errors import UsageError
from kubectl_vcerts.kube.client import KubeTarget
from kubectl_vcerts.rotation.fleet import FleetResult, FleetRun, FleetTarget, Outcome
from kubectl_vcerts.rotation.lock import holder_identity
from kubectl_vcerts.rotation.model import VCluster, WorkloadKind
from kubectl_vcerts.rotation.operation import OperationReport, OperationRequest
from kubectl_vcerts.rotation.plan import RotationPlan
from kubectl_vcerts.rotation.ports import EventSubject
from kubectl_vcerts.rotation.recovery import Operation, RestartMode
from tests.support.pki_builder import Options, cached_pki
from tests.unit.read_fakes import FakeReader, certs_secret, config_secret, pod, workload

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["a=b", "a", "!a", "a!=b", "a==b", "tier in (x, y)",
                                  "env notin (prod),team=a", "app.kubernetes.io/name=v-1", "a="])
def test_label_selectors_the_api_server_parses_are_accepted(text: str) -> None:
    assert check_selector(text) == text


@pytest.mark.parametrize("text", ["", "bad selector!!", "a=b,", ",a", "a in x", "a=b c", "-a=b", "a=(b)"])
def test_other_selectors_are_refused_before_any_request(text: str) -> None:
    with pytest.raises(UsageError, match="not a label selector"):
        check_selector(text)


@pytest.mark.parametrize(
    ("selection", "fleet"),
    [
        (Selection(names=("vc",)), False),
        (Selection(names=()), True),
        (Selection(names=("a", "b")), True),
        (Selection(names=("vc",), all_namespaces=True), True),
        (Selection(names=("vc",), selector="a=b"), True),
        (Selection(names=("vc",), expiring_within="30d"), True),
    ],
)
def test_one_name_alone_is_the_single_vcluster_command(selection: Selection, fleet: bool) -> None:
    assert selection.is_fleet is fleet


def test_bad_fleet_values_are_refused() -> None:
    with pytest.raises(UsageError, match="--expiring-within"):
        Selection(expiring_within="soon").check()
    with pytest.raises(UsageError, match="not a label selector"):
        Selection(selector="a b").check()
    assert Selection(expiring_within="30d").window() == timedelta(days=30)


def test_options_of_one_vcluster_are_refused_for_a_fleet() -> None:
    refuse_single_only({"--kubeconfig-out": False})
    with pytest.raises(UsageError, match="--kubeconfig-out, --platform-vci apply to one vCluster"):
        refuse_single_only({"--kubeconfig-out": True, "--update-kubeconfig": False, "--platform-vci": True})


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9402") == ("127.0.0.1", 9402)
    assert parse_listen(":9402") == ("0.0.0.0", 9402)  # noqa: S104 - what the flag means
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("9402", "host:", "host:99999", "host:x"):
        with pytest.raises(UsageError):
            parse_listen(bad)


# ------------------------------------------------------------------------------------------ documents
def _plan(name: str) -> RotationPlan:
    vc = VCluster(name=name, namespace="ns", kind=WorkloadKind.STATEFULSET, version="0.33.0",
                  status="Running", replicas=1, persistence=True)
    return RotationPlan(operation=Operation.ROTATE, vcluster=vc, source_resource_version="1", backup_name="b",
                        changes=(), old_ca_fingerprint=None, new_ca_fingerprint="sha256:x",
                        restart_mode=RestartMode.ROLLING, restart_steps=(), restart=True, ca_change=False,
                        new_data={})


def test_the_fleet_document_has_one_item_per_vcluster_in_the_plans_order() -> None:
    targets = [FleetTarget("ns", n, NOW + timedelta(days=i)) for i, n in enumerate(["a", "b", "c", "d"])]
    started, finished = NOW, NOW + timedelta(seconds=1.25)
    results = (
        FleetResult(targets[0], Outcome.DONE, plan=_plan("a"), started=started, finished=finished,
                    report=OperationReport(plan=_plan("a"), applied=True, backup="x")),
        FleetResult(targets[1], Outcome.FAILED, 19, "rolled back: timeout", plan=_plan("b"), started=started,
                    finished=finished),
        FleetResult(targets[2], Outcome.NOT_STARTED, message="stopped by Ctrl-C", plan=_plan("c")),
        FleetResult(targets[3], Outcome.FAILED, 12, "not Running"),
    )
    run = FleetRun(results=results, dry_run=False, max_parallel=2, interrupted=True, peak_parallel=2)
    request = OperationRequest(operation=Operation.ROTATE, holder=holder_identity("rotate"))
    doc = fleet_document(run, request)
    assert (doc["kind"], doc["exitCode"], doc["interrupted"], doc["maxParallel"]) == \
        ("OperationResultList", 19, True, 2)
    items = doc["items"]
    assert [i["name"] for i in items] == ["a", "b", "c", "d"]
    assert [i["order"] for i in items] == [1, 2, 3, None]  # d was never planned
    assert [i["result"] for i in items] == ["done", "failed", "not started", "failed"]
    assert items[0]["report"]["backup"] == "x" and items[1]["report"] is None
    assert items[0]["startedAt"] == "2026-12-03T12:00:00.000Z" and items[0]["seconds"] == 1.25
    assert result_text(results[1]).startswith("rolled back (exit 19)")
    assert result_text(results[3]) == "failed (exit 12): not Running"


# ------------------------------------------------------------------------------------------ exporter
class _Recorder:
    def __init__(self) -> None:
        self.names: set[str] = set()

    def record_once(self, subject: EventSubject, *, name: str, reason: str, message: str,
                    now: datetime) -> bool:
        new = name not in self.names
        self.names.add(name)
        return new


def _reader() -> FakeReader:
    fresh = cached_pki(Options(name="ok", now=NOW - timedelta(days=10)))
    ending = cached_pki(Options(name="soon", now=NOW - timedelta(days=350)))
    return FakeReader(
        workloads=[workload("ok"), workload("soon")],
        pods=[("team-a", {"app": "vcluster", "release": n}, pod(f"{n}-0")) for n in ("ok", "soon")],
        secrets=[config_secret("ok"), config_secret("soon"), certs_secret(fresh, "ok"),
                 certs_secret(ending, "soon")],
    )


def test_the_exporter_serves_the_last_good_read_and_says_when_reads_fail() -> None:
    reader, recorder = _reader(), _Recorder()
    deps = Deps(target=KubeTarget(), now=lambda: NOW)
    exporter = Exporter(deps, all_namespaces=True, selector="", warn_within=timedelta(days=30),
                        emit_events=True, reader=reader, recorder=recorder)

    def parsed() -> dict[str, list[tuple[dict[str, str], float]]]:
        return {f.name: [(dict(s.labels), s.value) for s in f.samples]
                for f in text_string_to_metric_families(exporter.metrics())}

    before = parsed()
    assert before["vcerts_scrape_success"] == [({}, 0.0)] and "vcerts_certificate_status" not in before
    assert exporter.refresh() is True
    first = parsed()
    assert first["vcerts_scrape_success"] == [({}, 1.0)] and first["vcerts_vclusters"] == [({}, 2.0)]
    assert first["vcerts_scrape_timestamp_seconds"] == [({}, NOW.timestamp())]
    assert recorder.names == {"soon.vcerts-expiring-20261203"}
    calls = sum(reader.calls.values())

    reader.forbid = {"list_workloads"}
    assert exporter.refresh() is False
    failed = parsed()
    assert failed["vcerts_scrape_success"] == [({}, 0.0)]
    assert failed["vcerts_certificate_expiry_timestamp_seconds"] == first[
        "vcerts_certificate_expiry_timestamp_seconds"]  # kept: alerts neither flap nor go silent
    assert failed["vcerts_scrape_timestamp_seconds"] == first["vcerts_scrape_timestamp_seconds"]

    reader.forbid = set()
    assert exporter.refresh() is True
    assert sum(reader.calls.values()) - calls <= 6  # a fixed number of lists per read (+1 forbidden)
    assert recorder.names == {"soon.vcerts-expiring-20261203"}


# ------------------------------------------------------------------------------------------ progress
def _deps(terminal: bool, *, verbose: bool = False) -> tuple[Deps, io.StringIO]:

    from rich.console import Console

    sink = io.StringIO()
    deps = Deps(target=KubeTarget(), verbose=verbose, now=lambda: NOW)
    deps._err = Console(file=sink, force_terminal=terminal, width=120, soft_wrap=True)
    return deps, sink


def _finished(name: str, outcome: Outcome = Outcome.DONE, code: int = 0) -> FleetResult:
    return FleetResult(FleetTarget("ns", name, NOW), outcome, code, "" if code == 0 else "rolled back",
                       started=NOW, finished=NOW + timedelta(seconds=2))


def test_progress_off_a_terminal_is_a_plain_line_per_start_and_end() -> None:
    from kubectl_vcerts.cli.fleet import FleetProgress
    from kubectl_vcerts.rotation.ports import ProgressEvent

    deps, sink = _deps(terminal=False)
    display = FleetProgress(deps)
    with display.live(total=2):
        display.start(FleetTarget("ns", "a", NOW))
        display.step(FleetTarget("ns", "a", NOW), ProgressEvent("write", "wrote a-certs", done=True))
        display.done(_finished("a"))
        display.done(_finished("b", Outcome.FAILED, 19))
    assert sink.getvalue().splitlines() == ["ns/a: started", "✓ ns/a: done (2.0s)",
                                            "✗ ns/b: rolled back (exit 19): rolled back (2.0s)"]
    verbose, chatty = _deps(terminal=False, verbose=True)
    event = ProgressEvent("write", "wrote a-certs", done=True)
    FleetProgress(verbose).step(FleetTarget("ns", "a", NOW), event)
    assert chatty.getvalue() == "ns/a: write: wrote a-certs done\n"


def test_progress_on_a_terminal_is_a_live_display_that_leaves_the_finished_lines() -> None:
    from kubectl_vcerts.cli.fleet import FleetProgress
    from kubectl_vcerts.rotation.ports import ProgressEvent

    deps, sink = _deps(terminal=True)
    display = FleetProgress(deps)
    with display.live(total=1):
        display.start(FleetTarget("ns", "a", NOW))
        display.step(FleetTarget("ns", "a", NOW), ProgressEvent("wait", "0/1 pods Ready"))
        display.done(_finished("a"))
    text = sink.getvalue()
    assert "✓ ns/a: done (2.0s)" in text and "\x1b[" in text  # drawn with terminal control sequences
