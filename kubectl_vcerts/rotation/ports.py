"""The Protocols through which the workflow talks to the outside world.

`kubectl_vcerts.kube` implements them against the API server; unit tests implement them in memory.
Imports nothing from kube/, cli/, kubernetes, typer or rich.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kubectl_vcerts.rotation.model import VCluster


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a workflow, for the progress display (stderr) and -v logs."""

    step: str  # stable short name: "lock", "backup", "write", "restart", "wait", "verify", ...
    message: str
    done: bool = False


Progress = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """A Progress that drops events (the default)."""


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class CaChange:
    """What a CA-changing operation (rotate-ca, or a restore that changes the CA) is about to do."""

    vcluster: VCluster
    operation: str  # "rotate-ca" | "restore"
    old_ca_fingerprint: str | None
    new_ca_fingerprint: str
    new_data: Mapping[str, bytes]  # the complete new NAME-certs data (holds keys: never log it)
    at: datetime


class CaChangeHook(Protocol):
    """Extra work around a CA change (private nodes, Platform marking).

    The workflow calls `preflight` before taking any action (raise a VcertsError to refuse; nothing has
    been changed yet), `before` after the backup and before NAME-certs is written, and `after` once the
    new control plane is Ready. `after` returns lines telling the user what happened or what is left
    to do; it must not raise for things the user can finish by hand (return the instructions instead).
    `describe` returns the plan lines shown by --dry-run.
    """

    name: str

    def describe(self, change: CaChange) -> list[str]: ...

    def preflight(self, change: CaChange) -> None: ...

    def before(self, change: CaChange) -> list[str]: ...

    def after(self, change: CaChange) -> list[str]: ...
