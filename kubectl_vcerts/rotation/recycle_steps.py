"""The next step of a NodeClaim recycle, decided from its record and the claims present now. Pure.

`missing_claims` is what keeps the recycle from creating duplicates: a recorded claim is missing only
when no present claim covers it, and each present claim covers at most one recorded claim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from kubectl_vcerts import contract
from kubectl_vcerts.rotation.recycle_record import (
    PLATFORM_SET_SPEC_FIELDS,
    Claim,
    RecordedClaim,
    RecreatePolicy,
    RecycleRecord,
)


def signature(spec: Mapping[str, Any]) -> str:
    """What the requester of a claim sets: the spec without the fields the Platform fills in."""
    return json.dumps({k: v for k, v in spec.items() if k not in PLATFORM_SET_SPEC_FIELDS},
                      sort_keys=True, separators=(",", ":"))


def missing_claims(record: RecycleRecord, present: Sequence[Claim]) -> tuple[RecordedClaim, ...]:
    """Recorded claims nothing present covers. Never counts one present claim twice.

    A present claim (not one of the recorded uids, not being deleted) covers a recorded claim when,
    in this order: it carries `recreated-from: <recorded uid>` (we made it); it has the recorded name
    (the Platform or we recreated it under the same name); its spec matches the recorded spec apart
    from Platform-set fields (the Platform recreated it under a new name). Counting matches one to
    one is what keeps the recycle from creating duplicates.
    """
    recorded_uids = {c.uid for c in record.claims}
    candidates = [c for c in present if c.uid not in recorded_uids and not c.deleting]
    used: set[str] = set()
    uncovered = list(record.claims)

    def cover(match: Any) -> None:
        for rec in list(uncovered):
            found = next((c for c in candidates if c.uid not in used and match(rec, c)), None)
            if found is not None:
                used.add(found.uid)
                uncovered.remove(rec)

    cover(lambda rec, c: c.annotations.get(contract.RECREATED_FROM_ANNOTATION) == rec.uid)
    cover(lambda rec, c: c.name == rec.name)
    cover(lambda rec, c: signature(c.spec) == signature(rec.spec))
    return tuple(uncovered)


class StepKind(StrEnum):
    DELETE = "delete"
    WAIT = "wait"
    MARK_GONE = "mark-gone"
    CREATE = "create"
    FINISH = "finish"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    delete: tuple[Claim, ...] = ()
    create: tuple[RecordedClaim, ...] = ()
    reason: str = ""
    wait_until: datetime | None = None


def plan_step(record: RecycleRecord, claims: Sequence[Claim], *, now: datetime, grace: timedelta) -> Step:
    """The next thing to do, from the record and the claims present now. Pure."""
    by_uid = {c.uid: c for c in claims}
    still = [by_uid[r.uid] for r in record.claims if r.uid in by_uid]
    to_delete = tuple(c for c in still if not c.deleting)
    if to_delete:
        return Step(StepKind.DELETE, delete=to_delete)
    if still:
        held = sorted({f for c in still for f in c.finalizers})
        return Step(StepKind.WAIT, reason=f"{len(still)} claim(s) still terminating"
                    + (f" (finalizers: {', '.join(held)})" if held else ""))
    if record.gone_at is None:
        return Step(StepKind.MARK_GONE)
    if record.policy is RecreatePolicy.NEVER:
        return Step(StepKind.FINISH)
    missing = missing_claims(record, claims)
    if not missing:
        return Step(StepKind.FINISH)
    grace_end = record.gone_at + grace
    if record.policy is RecreatePolicy.MISSING and now < grace_end:
        return Step(StepKind.WAIT, reason=f"grace period for the Platform: {len(missing)} claim(s) missing",
                    wait_until=grace_end)
    return Step(StepKind.CREATE, create=missing)
