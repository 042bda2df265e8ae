"""The dependencies a command needs, built once per invocation and kept on the typer context.

Commands call `get_deps(ctx)`; tests replace pieces (clock, session factory) through `Deps`.
Connecting is lazy so that `--help` and pure commands never import the Kubernetes client.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    from kubectl_vcerts.kube.client import KubeSession, KubeTarget


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    target: KubeTarget
    verbose: bool = False
    now: Callable[[], datetime] = _utc_now
    interactive: bool = field(default_factory=lambda: sys.stdin.isatty() and sys.stderr.isatty())
    connect: Callable[[KubeTarget], KubeSession] | None = None  # tests may inject
    _session: KubeSession | None = field(default=None, repr=False)
    _out: Console | None = field(default=None, repr=False)
    _err: Console | None = field(default=None, repr=False)

    def session(self) -> KubeSession:
        """The host-cluster session (connects on first use)."""
        if self._session is None:
            if self.connect is None:
                from kubectl_vcerts.kube.client import connect

                self._session = connect(self.target)
            else:
                self._session = self.connect(self.target)
        return self._session

    @property
    def out(self) -> Console:
        """stdout: results (tables, JSON, YAML)."""
        if self._out is None:
            from rich.console import Console

            self._out = Console(soft_wrap=True)
        return self._out

    @property
    def err(self) -> Console:
        """stderr: progress, warnings, errors. Progress is shown only when this is a terminal."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, soft_wrap=True)
        return self._err


def get_deps(ctx: typer.Context) -> Deps:
    obj = ctx.find_root().obj
    if not isinstance(obj, Deps):
        raise RuntimeError("Deps missing on the typer context; commands must run under cli.app")
    return obj
