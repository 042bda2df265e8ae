"""decide(): what the hook does with an instance, table-driven."""

from __future__ import annotations

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.rotation.recycle_record import Instance, RecreatePolicy, RecycleRecord
from kubectl_vcerts.rotation.recycle_record import parse_time as t
from platform_hook.decide import ActionKind, decide

ROT = contract.CA_ROTATED_ANNOTATION
REC = contract.NODECLAIMS_RECYCLED_ANNOTATION
RECORD = contract.RECYCLE_RECORD_ANNOTATION
VALID_RECORD = RecycleRecord(marker="2026-11-01T00:00:00Z", policy=RecreatePolicy.MISSING,
                             started=t("2026-11-01T00:00:05Z", what="x"), gone_at=None, claims=()).to_json()


def inst(annotations: dict[str, str]) -> Instance:
    return Instance(namespace="p-default", name="vc", uid="u1", resource_version="1", annotations=annotations)


CASES = [
    ("an instance without any CA change is skipped", {}, ActionKind.SKIP, None),
    ("a first CA change starts a recycle", {ROT: "2026-11-01T00:00:00Z"}, ActionKind.RECYCLE,
     "2026-11-01T00:00:00Z"),
    ("a CA change newer than the last recycle starts a recycle",
     {ROT: "2026-11-02T00:00:00Z", REC: "2026-11-01T00:00:00Z"}, ActionKind.RECYCLE, "2026-11-02T00:00:00Z"),
    ("a recycle already done for this CA change is skipped",
     {ROT: "2026-11-02T00:00:00Z", REC: "2026-11-02T00:00:00Z"}, ActionKind.SKIP, None),
    ("times are compared as instants, not as text",
     {ROT: "2026-11-02T01:00:00+01:00", REC: "2026-11-02T00:00:00Z"}, ActionKind.SKIP, None),
    ("a recycled mark newer than the change is skipped",
     {ROT: "2026-11-01T00:00:00Z", REC: "2026-11-03T00:00:00Z"}, ActionKind.SKIP, None),
    ("an unparseable ca-rotated value is invalid", {ROT: "yesterday"}, ActionKind.INVALID, None),
    ("a ca-rotated time without zone is invalid", {ROT: "2026-11-01T00:00:00"}, ActionKind.INVALID, None),
    ("an unparseable nodeclaims-recycled value is invalid",
     {ROT: "2026-11-01T00:00:00Z", REC: "done"}, ActionKind.INVALID, None),
    ("a record under way is resumed with its own marker",
     {ROT: "2026-11-05T00:00:00Z", RECORD: VALID_RECORD}, ActionKind.RESUME, "2026-11-01T00:00:00Z"),
    ("a record that is not JSON is invalid", {ROT: "2026-11-05T00:00:00Z", RECORD: "{oops"},
     ActionKind.INVALID, None),
    ("a record of an unknown version is invalid", {RECORD: '{"version": 9}'}, ActionKind.INVALID, None),
    ("a record with an unknown policy is invalid",
     {RECORD: VALID_RECORD.replace('"missing"', '"sometimes"')}, ActionKind.INVALID, None),
]


@pytest.mark.parametrize(("annotations", "kind", "marker"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_hook_decides_from_the_instance_annotations(
    annotations: dict[str, str], kind: ActionKind, marker: str | None
) -> None:
    action = decide(inst(annotations))
    assert action.kind is kind, action.reason
    if marker is not None:
        assert action.marker == marker


def test_a_deleted_instance_is_skipped() -> None:
    assert decide(None).kind is ActionKind.SKIP


def test_an_invalid_value_is_named_in_the_reason() -> None:
    action = decide(inst({ROT: "yesterday"}))
    assert "yesterday" in action.reason and ROT in action.reason
