"""`decide`: what the hook does with one VirtualClusterInstance, from what it observes. Pure.

Imports contract, errors and rotation.recycle_record only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kubectl_vcerts import contract
from kubectl_vcerts.errors import InvalidInputError
from kubectl_vcerts.rotation.recycle_record import Instance, parse_record, pending_marker


class ActionKind(StrEnum):
    SKIP = "skip"  # nothing to do
    INVALID = "invalid"  # an Event, and no action until the object changes
    RECYCLE = "recycle"  # start a recycle for `marker`
    RESUME = "resume"  # a recorded recycle is under way: continue it


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    reason: str
    marker: str | None = None


def decide(instance: Instance | None) -> Action:
    """Classify one instance (None: it was deleted)."""
    if instance is None:
        return Action(ActionKind.SKIP, "instance is gone")
    where = f"virtualclusterinstance {instance.name} in namespace {instance.namespace}"
    record = instance.annotations.get(contract.RECYCLE_RECORD_ANNOTATION)
    if record is not None:
        try:
            parsed = parse_record(record, where=where)
        except InvalidInputError as exc:
            return Action(ActionKind.INVALID, exc.message)
        return Action(ActionKind.RESUME, "a recorded recycle is under way", marker=parsed.marker)
    try:
        marker = pending_marker(instance)
    except InvalidInputError as exc:
        return Action(ActionKind.INVALID, exc.message)
    if marker is None:
        if contract.CA_ROTATED_ANNOTATION not in instance.annotations:
            return Action(ActionKind.SKIP, "no CA change recorded")
        return Action(ActionKind.SKIP, "nodeclaims already recycled for the last CA change")
    return Action(ActionKind.RECYCLE, f"CA changed at {marker}", marker=marker)
