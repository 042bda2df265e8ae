"""The reconciler: decide, one recycle pass, Events and metrics; failures back off."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from kubectl_vcerts import contract
from kubectl_vcerts.errors import UnreachableError
from kubectl_vcerts.rotation.recycle_record import Claim, Instance
from platform_hook.decide import ActionKind
from platform_hook.metrics import Metrics
from platform_hook.reconcile import Reconciler
from platform_hook.settings import Settings
from tests.support.recycle_fakes import MARK, NS, T0, FakePlatform, platform_with

SETTINGS = replace(Settings(), grace_seconds=0.0, poll_seconds=1.0, max_backoff_seconds=4.0)


class FlakyPlatform(FakePlatform):
    """Lists fail until `failures` is used up: the API server is away."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def list_claims(self, namespace: str, vcluster: str) -> list[Claim]:
        if self.failures > 0:
            self.failures -= 1
            raise UnreachableError("cannot reach the API server")
        return super().list_claims(namespace, vcluster)


class DownPlatform(FlakyPlatform):
    """The API server is away for Events too (it is one server)."""

    def record_event(self, instance: Instance, *, reason: str, message: str, warning: bool = False) -> None:
        if self.failures > 0:
            raise UnreachableError("cannot reach the API server")
        super().record_event(instance, reason=reason, message=message, warning=warning)


def reconciler(port: FakePlatform, settings: Settings = SETTINGS) -> tuple[Reconciler, Metrics]:
    metrics = Metrics()
    clock = [0.0]
    return Reconciler(port, settings, metrics, now=lambda: T0 + timedelta(seconds=clock[0]),
                      monotonic=lambda: clock[0]), metrics


def test_a_pending_instance_is_recycled_to_the_end_and_counted() -> None:
    fake = platform_with(2)
    rec, metrics = reconciler(fake)
    outcome = rec.reconcile(f"{NS}/vc")
    while outcome.requeue_after is not None:
        outcome = rec.reconcile(f"{NS}/vc")
    assert fake.instances["vc"].annotations[contract.NODECLAIMS_RECYCLED_ANNOTATION] == MARK
    assert metrics.recycles.value() == 1 and metrics.claims_deleted.value() == 2
    assert metrics.claims_recreated.value() == 2
    assert rec.reconcile(f"{NS}/vc").action.kind is ActionKind.SKIP  # a second look does nothing


def test_failures_back_off_exponentially_and_surface_as_events_and_metrics() -> None:
    fake = FlakyPlatform(failures=4)
    fake.add_instance("vc", {contract.CA_ROTATED_ANNOTATION: MARK})
    fake.add_claim("vc", "vc-0")
    rec, metrics = reconciler(fake)
    delays = [rec.reconcile(f"{NS}/vc").requeue_after for _ in range(4)]
    assert delays == [1.0, 2.0, 4.0, 4.0]  # poll_seconds doubling, capped by max_backoff_seconds
    assert metrics.errors.value(kind="UnreachableError") == 4
    assert [r for r, _ in fake.events].count("RecycleFailed") == 4
    outcome = rec.reconcile(f"{NS}/vc")
    assert outcome.error == "" and "RecycleStarted" in [r for r, _ in fake.events]


def test_an_invalid_instance_is_reported_once_per_version() -> None:
    fake = platform_with(1)
    fake.instances["vc"] = replace(fake.instances["vc"], annotations={contract.CA_ROTATED_ANNOTATION: "soon"})
    rec, metrics = reconciler(fake)
    for _ in range(3):
        assert rec.reconcile(f"{NS}/vc").requeue_after is None
    assert [r for r, _ in fake.events] == ["InvalidObject"]
    assert metrics.errors.value(kind="invalid") == 1
    assert "delete" not in fake.calls


def test_dry_run_plans_without_writing_or_events() -> None:
    fake = platform_with(2)
    rec, _ = reconciler(fake, replace(SETTINGS, dry_run=True))
    outcome = rec.reconcile(f"{NS}/vc")
    assert outcome.action.kind is ActionKind.RECYCLE and outcome.requeue_after is None
    assert fake.events == [] and "annotate" not in fake.calls and "delete" not in fake.calls


def test_a_vanished_instance_is_skipped() -> None:
    rec, _ = reconciler(FakePlatform())
    assert rec.reconcile(f"{NS}/gone").action.kind is ActionKind.SKIP


def test_an_event_that_fails_with_the_api_still_backs_off_instead_of_crashing_the_pass() -> None:
    fake = DownPlatform(failures=2)
    fake.add_instance("vc", {contract.CA_ROTATED_ANNOTATION: MARK})
    fake.add_claim("vc", "vc-0")
    rec, metrics = reconciler(fake)
    outcome = rec.reconcile(f"{NS}/vc")  # list fails, then the RecycleFailed Event fails too
    assert outcome.requeue_after == 1.0 and "cannot reach" in outcome.error
    assert metrics.errors.value(kind="UnreachableError") == 1 and metrics.errors.value(kind="event") == 1
