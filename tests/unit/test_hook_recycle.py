"""The recycle engine (rotation.recycle) against an in-memory Platform: nothing is ever lost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import InvalidInputError, OperationTimeoutError
from kubectl_vcerts.rotation.recycle import Settings, recycle_pass, run_recycle
from kubectl_vcerts.rotation.recycle_record import (
    Claim,
    RecordedClaim,
    RecreatePolicy,
    RecycleRecord,
    parse_record,
    pending_marker,
)
from kubectl_vcerts.rotation.recycle_steps import StepKind, missing_claims, plan_step
from tests.support.recycle_fakes import GRACE, MARK, NS, T0, Crash, FakeClock, FakePlatform, platform_with


def finish(fake: FakePlatform, settings: Settings = GRACE, clock: FakeClock | None = None) -> None:
    run_recycle(fake, NS, "vc", marker=MARK, settings=settings, clock=clock or FakeClock(),
                timeout=timedelta(minutes=10))


def test_a_normal_recycle_replaces_every_claim_and_marks_the_instance() -> None:
    fake = platform_with(3)
    before = {c.name: c for c in fake.claims.values() if c.vcluster == "vc"}
    finish(fake)
    after = {c.name: c for c in fake.claims.values() if c.vcluster == "vc"}
    assert sorted(after) == sorted(before)
    for name, claim in after.items():
        assert claim.uid != before[name].uid
        assert claim.spec == before[name].spec and claim.labels == before[name].labels
        assert claim.annotations[contract.RECREATED_FROM_ANNOTATION] == before[name].uid
        assert claim.annotations["note"] == before[name].annotations["note"]
    annotations = fake.instances["vc"].annotations
    assert annotations[contract.NODECLAIMS_RECYCLED_ANNOTATION] == MARK
    assert contract.RECYCLE_RECORD_ANNOTATION not in annotations
    assert fake.names("other") == ["other-0"]
    assert [r for r, _ in fake.events] == ["RecycleStarted", "Recycled"]


def test_the_record_is_written_before_the_first_delete() -> None:
    fake = platform_with(2)
    recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0)
    assert fake.calls.index("annotate") < fake.calls.index("delete")


def test_claims_the_platform_recreated_under_new_names_are_not_duplicated() -> None:
    fake = platform_with(3)
    result = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0)
    assert sorted(result.deleted) == ["vc-0", "vc-1", "vc-2"]
    record = parse_record(fake.instances["vc"].annotations[contract.RECYCLE_RECORD_ANNOTATION], where="t")
    # The Platform recreates two of the three, with generated names and its own typeRef.
    for rec in record.claims[:2]:
        fake.add_claim("vc", f"platform-{rec.name}", spec={**rec.spec, "typeRef": "large"})
    clock = FakeClock()
    clock.at = T0 + timedelta(seconds=31)
    finish(fake, clock=clock)
    assert fake.names("vc") == ["platform-vc-0", "platform-vc-1", "vc-2"]


def test_a_finalizer_makes_the_recycle_wait_until_the_claim_is_gone() -> None:
    fake = platform_with(2, finalizers=("platform/drain",))
    result = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0)
    assert not result.done and "platform/drain" in result.waiting
    again = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0 + timedelta(seconds=5))
    assert not again.done and again.deleted == ()  # no second delete of a terminating claim
    fake.release("vc-0")
    fake.release("vc-1")
    finish(fake, clock=FakeClock())
    assert fake.names("vc") == ["vc-0", "vc-1"]


def test_the_grace_period_gives_the_platform_time_before_recreating() -> None:
    fake = platform_with(1)
    recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0)
    recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0)  # all gone: notes the time
    waiting = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0 + timedelta(seconds=29))
    assert not waiting.done and waiting.recreated == ()
    done = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0 + timedelta(seconds=30))
    assert done.done and done.recreated == ("vc-0",)


def clean_run_requests() -> int:
    """How many requests a clean recycle of 3 claims makes: the crash test crashes at each of them."""
    fake, clock = platform_with(3), FakeClock()
    while True:
        result = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=clock.now())
        if result.done:
            return len(fake.calls)
        clock.sleep(result.requeue_after or 1)


@pytest.mark.parametrize("crash_at", range(1, clean_run_requests() + 1))
def test_a_crash_at_any_request_loses_no_claim(crash_at: int) -> None:
    fake = platform_with(3)
    originals = sorted(fake.names("vc"))
    fake.crash_at = crash_at
    clock = FakeClock()
    with pytest.raises(Crash):
        for _ in range(40):
            result = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=clock.now())
            assert not result.done, "finished before the crash point"
            clock.sleep(result.requeue_after or 1)
    # A new instance of the hook takes over from whatever is on the instance.
    finish(fake, clock=clock)
    assert fake.names("vc") == originals
    assert fake.instances["vc"].annotations[contract.NODECLAIMS_RECYCLED_ANNOTATION] == MARK


def test_a_second_run_after_completion_changes_nothing() -> None:
    fake = platform_with(2)
    finish(fake)
    uids = sorted(fake.claims)
    # The guard against a second recycle is the marker: it now says this CA change is handled.
    assert pending_marker(fake.instances["vc"]) is None
    assert sorted(fake.claims) == uids


def test_recreate_never_only_deletes() -> None:
    fake = platform_with(2)
    finish(fake, settings=replace(GRACE, policy=RecreatePolicy.NEVER))
    assert fake.names("vc") == []
    assert fake.instances["vc"].annotations[contract.NODECLAIMS_RECYCLED_ANNOTATION] == MARK


def test_recreate_always_does_not_wait_for_the_platform() -> None:
    fake = platform_with(2)
    settings = replace(GRACE, policy=RecreatePolicy.ALWAYS, grace=timedelta(hours=1))
    first = recycle_pass(fake, NS, "vc", marker=MARK, settings=settings, now=T0)
    assert first.done and sorted(first.recreated) == ["vc-0", "vc-1"]


def test_a_claim_without_provider_is_invalid_and_nothing_is_deleted() -> None:
    fake = platform_with(1)
    fake.add_claim("vc", "broken", spec={"vClusterRef": "vc"})
    with pytest.raises(InvalidInputError, match="providerRef"):
        recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0)
    assert "delete" not in fake.calls and "annotate" not in fake.calls


def test_a_taken_name_gets_a_generated_one_and_no_claim_is_overwritten() -> None:
    fake = platform_with(1)
    recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0)
    fake.add_claim("someone-else", "vc-0", spec={"providerRef": "gcp", "vClusterRef": "someone-else"})
    run_recycle(fake, NS, "vc", marker=MARK, settings=replace(GRACE, policy=RecreatePolicy.ALWAYS),
                clock=FakeClock(), timeout=timedelta(minutes=1))
    names = fake.names("vc")
    assert len(names) == 1 and names[0].startswith("vc-0-")


def test_the_one_shot_gives_up_after_its_timeout_and_keeps_the_record() -> None:
    fake = platform_with(1, finalizers=("platform/drain",))
    with pytest.raises(OperationTimeoutError):
        run_recycle(fake, NS, "vc", marker=MARK, settings=GRACE, clock=FakeClock(),
                    timeout=timedelta(seconds=10))
    assert contract.RECYCLE_RECORD_ANNOTATION in fake.instances["vc"].annotations


def test_dry_run_changes_nothing_and_lists_every_claim() -> None:
    fake = platform_with(2)
    result = recycle_pass(fake, NS, "vc", marker=MARK, settings=GRACE, now=T0, dry_run=True)
    assert not result.done and any("vc-0" in line for line in result.plan)
    assert "annotate" not in fake.calls and "delete" not in fake.calls


def rec(name: str, uid: str, provider: str = "aws") -> RecordedClaim:
    return RecordedClaim(name=name, uid=uid, spec={"providerRef": provider, "vClusterRef": "vc"})


def present(name: str, uid: str, provider: str = "aws", **annotations: str) -> Claim:
    return Claim(NS, name, uid, {"providerRef": provider, "vClusterRef": "vc", "typeRef": "x"},
                 annotations=annotations)


RECORD = RecycleRecord(marker=MARK, policy=RecreatePolicy.MISSING, started=T0, gone_at=T0,
                       claims=(rec("a", "u-a"), rec("b", "u-b"), rec("c", "u-c", provider="gcp")))
MISSING_CASES = [
    ("nothing present means every recorded claim is missing", [], ["a", "b", "c"]),
    ("a claim with the same name covers its record", [present("b", "n1")], ["a", "c"]),
    ("one claim with the same spec covers one record, not two", [present("zz", "n1")], ["b", "c"]),
    ("a claim marked recreated-from covers exactly that record",
     [present("q", "n1", **{contract.RECREATED_FROM_ANNOTATION: "u-b"})], ["a", "c"]),
    ("a different provider covers nothing of another provider", [present("zz", "n1", provider="azure")],
     ["a", "b", "c"]),
    ("a recorded uid still present covers nothing", [present("a", "u-a")], ["a", "b", "c"]),
    ("enough platform claims cover everything",
     [present("p1", "n1"), present("p2", "n2"), present("p3", "n3", provider="gcp")], []),
]


@pytest.mark.parametrize(("claims", "expected"), [c[1:] for c in MISSING_CASES],
                         ids=[c[0] for c in MISSING_CASES])
def test_claims_the_record_names_but_the_cluster_lacks_are_missing(
    claims: list[Claim], expected: list[str]
) -> None:
    assert [r.name for r in missing_claims(RECORD, claims)] == expected


def test_plan_step_deletes_only_claims_not_yet_terminating() -> None:
    terminating = replace(present("a", "u-a"), deleting=True, finalizers=("f",))
    step = plan_step(RECORD, [terminating, present("b", "u-b")], now=T0, grace=timedelta(0))
    assert step.kind is StepKind.DELETE and [c.name for c in step.delete] == ["b"]


def test_the_record_round_trips() -> None:
    record = replace(RECORD, gone_at=None)
    assert parse_record(record.to_json(), where="t") == record


class RacingPlatform(FakePlatform):
    """Another actor (the CLI, say) recreates `vc-0` from the same record just before we do."""

    def create_claim(self, namespace: str, *, name: str | None, generate_name: str | None,
                     spec: Mapping[str, Any], labels: Mapping[str, str],
                     annotations: Mapping[str, str]) -> Claim:
        if name == "vc-0" and not any(c.name == "vc-0" for c in self.claims.values()):
            super().create_claim(namespace, name=name, generate_name=None, spec=spec, labels=labels,
                                 annotations=annotations)
        return super().create_claim(namespace, name=name, generate_name=generate_name, spec=spec,
                                    labels=labels, annotations=annotations)


def test_losing_a_create_race_for_the_own_name_creates_no_duplicate() -> None:
    fake = RacingPlatform()
    fake.add_instance("vc", {contract.CA_ROTATED_ANNOTATION: MARK})
    for i in range(2):
        fake.add_claim("vc", f"vc-{i}")
    finish(fake, settings=replace(GRACE, policy=RecreatePolicy.ALWAYS))
    assert fake.names("vc") == ["vc-0", "vc-1"]
