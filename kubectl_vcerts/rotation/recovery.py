"""The operation record kept on `NAME-certs` while an operation is under way (crash recovery).

Every write of new PKI data also writes the annotation `vcerts.io/operation-in-progress` with a JSON
record (operation, id, backup name, phase, restart mode, start time) in the same resourceVersion-guarded
replace. The record is removed only after the control plane came back and the result was verified. So
after a crash (SIGKILL at any step) the cluster itself says what was half done: a re-run of the same
command finds the record and resumes from the restart; a backup of the state before the write always
exists (created before the write), so nothing is lost.

Pure: stdlib only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import InvalidPkiError


class Operation(StrEnum):
    ROTATE = "rotate"
    ROTATE_CA = "rotate-ca"
    RESTORE = "restore"


class Phase(StrEnum):
    RESTART = "restart"  # new data written; pods must be restarted, waited for and verified
    ROLLBACK = "rollback"  # the backup was written back; pods must be restarted and waited for


class RestartMode(StrEnum):
    ROLLING = "rolling"  # one pod at a time (deployed etcd first), waiting for Ready: stays available
    TOGETHER = "together"  # every control-plane and etcd pod at once (CA change, degraded, rollback)


@dataclass(frozen=True)
class OperationRecord:
    operation: Operation
    id: str
    backup: str
    phase: Phase
    restart: RestartMode
    started: datetime
    ca_change: bool
    holder: str = ""
    source: str = ""  # restore: the backup name or directory put back
    # fingerprint of the CA written with this record ("" in records of older versions): a resume
    # checks NAME-certs still holds it, since vCluster's own writers patch the data but not annotations
    ca: str = ""
    # rotate-ca --phase: the staged phase this run did ("" for every other run); a resume keeps it
    stage: str = ""

    def encode(self) -> str:
        return json.dumps(
            {
                "operation": str(self.operation),
                "id": self.id,
                "backup": self.backup,
                "phase": str(self.phase),
                "restart": str(self.restart),
                "started": timefmt.rfc3339(self.started),
                "caChange": self.ca_change,
                "holder": self.holder,
                "source": self.source,
                **({"ca": self.ca} if self.ca else {}),
                **({"stage": self.stage} if self.stage else {}),
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str, *, where: str) -> OperationRecord:
        try:
            raw = json.loads(text)
            return cls(
                operation=Operation(raw["operation"]),
                id=str(raw["id"]),
                backup=str(raw["backup"]),
                phase=Phase(raw["phase"]),
                restart=RestartMode(raw.get("restart", "together")),
                started=datetime.strptime(raw["started"], "%Y-%m-%dT%H:%M:%S%z"),
                ca_change=bool(raw.get("caChange", True)),
                holder=str(raw.get("holder", "")),
                source=str(raw.get("source", "")),
                ca=str(raw.get("ca", "")),
                stage=str(raw.get("stage", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidPkiError(
                f"{where} has an unreadable {contract.OPERATION_ANNOTATION} annotation",
                hint="inspect it with kubectl; remove the annotation if no kubectl vcerts operation is "
                "running, then run again",
            ) from exc


def read_record(annotations: dict[str, str], *, where: str) -> OperationRecord | None:
    text = annotations.get(contract.OPERATION_ANNOTATION)
    return None if not text else OperationRecord.decode(text, where=where)
