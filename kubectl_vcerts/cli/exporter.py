"""`kubectl vcerts exporter`: a long-running Prometheus exporter of the vClusters' certificate expiry.

Every --interval it reads the vClusters the way `check -A` does (a fixed number of list calls, whatever
their number), keeps the result, and serves it on /metrics (cli/prometheus.py: the same series as
`check -o prometheus`); a scrape never reaches the API server, so it costs the same for 5 vClusters or
500. /healthz answers 200 while the read loop runs on time; /readyz once the first read succeeded.
A failed read keeps the last good series (with vcerts_scrape_success 0 and the time of the last
success), so alerts neither flap nor go silent on a brief API outage.

With --emit-events (the default) it records the Warning Events of rotation/expiry_events.py after each
read, once per vCluster, condition and day. It reads Secrets that hold private keys (that is where the
certificates are): it keeps only dates, names and statuses, and never logs or exports key material.
Logs: one plain line per event on stderr. SIGTERM or SIGINT stop it (exit 0).
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_vcerts.cli.checking import parse_warn_within
from kubectl_vcerts.cli.deps import Deps, get_deps
from kubectl_vcerts.cli.formats import check_selector, parse_duration
from kubectl_vcerts.errors import UsageError, VcertsError

if TYPE_CHECKING:
    from kubectl_vcerts.rotation.check import SummaryRow
    from kubectl_vcerts.rotation.ports import EventRecorder, VClusterReader

DEFAULT_LISTEN = "0.0.0.0:9402"


@dataclass
class _Snapshot:
    """What the last reads left, for /metrics."""

    series: str = ""  # certificate and vCluster lines of the last successful read
    success: bool = False
    seconds: float = 0.0
    last_success: datetime | None = None
    vclusters: int = 0


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT", hint="e.g. --listen 0.0.0.0:9402")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - a pod's exporter serves its pod IP


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {message}", file=sys.stderr, flush=True)


class Exporter:
    """One read of the vClusters (`refresh`, the lists of `check -A`) and what /metrics serves from the
    last one (`metrics`, called on the HTTP server's threads)."""

    def __init__(self, deps: Deps, *, all_namespaces: bool, selector: str, warn_within: timedelta,
                 emit_events: bool, reader: VClusterReader | None = None,
                 recorder: EventRecorder | None = None) -> None:
        from kubectl_vcerts.kube.discovery import open_reader

        self.deps = deps
        # the light REST client (plain kubeconfigs, and in a pod its ServiceAccount): half the memory of
        # the kubernetes client, which only exec plugins and the like still need
        self._reader: Any = reader if reader is not None else open_reader(deps.target, deps.session)
        self._recorder = recorder
        self.namespace = None if all_namespaces else self._reader.default_namespace
        self.selector = selector
        self.warn_within = warn_within
        self.emit_events = emit_events
        self.snapshot = _Snapshot()
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        from kubectl_vcerts.cli.prometheus import certificate_lines
        from kubectl_vcerts.rotation.check import check_all

        started = time.monotonic()
        try:
            summary = check_all(self._reader, namespace=self.namespace, now=self.deps.now(),
                                warn_within=self.warn_within, selector=self.selector)
        except VcertsError as exc:
            seconds = time.monotonic() - started
            with self._lock:  # the last good series stay: alerts neither flap nor go silent
                self.snapshot = dataclasses.replace(self.snapshot, success=False, seconds=seconds)
            _log(f"read failed after {seconds:.2f}s: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            return False
        series = "\n".join(certificate_lines(summary.rows))
        seconds = time.monotonic() - started
        with self._lock:
            self.snapshot = _Snapshot(series=series, success=True, seconds=seconds,
                                      last_success=self.deps.now(), vclusters=len(summary.rows))
        _log(f"read {len(summary.rows)} vCluster(s) in {seconds:.2f}s")
        if self.emit_events:
            self._events(summary.rows)
        return True

    def _event_recorder(self) -> EventRecorder:
        from kubectl_vcerts.kube.discovery import RestReader
        from kubectl_vcerts.kube.events import KubeEventRecorder, RestEventRecorder

        if self._recorder is None:
            instance = socket.gethostname()
            # the reader's own connection when it is the light client: no kubernetes import (memory)
            self._recorder = (RestEventRecorder(self._reader.client, instance=instance)
                              if isinstance(self._reader, RestReader)
                              else KubeEventRecorder(self.deps.session(), instance=instance))
        return self._recorder

    def _events(self, rows: Sequence[SummaryRow]) -> None:
        from kubectl_vcerts.rotation.expiry_events import record_expiry_events

        try:
            recorder = self._event_recorder()
            created = record_expiry_events(recorder, rows, now=self.deps.now())
        except VcertsError as exc:  # the metrics still serve; the next read tries again
            _log(f"could not record Events: {exc.message}")
            return
        if created:
            _log(f"recorded {created} Warning Event(s)")

    def metrics(self) -> str:
        from kubectl_vcerts.cli.prometheus import scrape_lines

        with self._lock:
            snap = self.snapshot
        lines = [snap.series] if snap.series else []
        lines += scrape_lines(success=snap.success, seconds=snap.seconds, last_success=snap.last_success,
                              vclusters=snap.vclusters)
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        close = getattr(self._reader, "close", None)
        if close is not None:
            close()


def command(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every vCluster in every namespace.")
    ] = False,
    selector: Annotated[
        str | None,
        typer.Option("--selector", "-l", help="Only vClusters whose StatefulSet/Deployment matches this."),
    ] = None,
    listen: Annotated[str, typer.Option("--listen", help="Address of /metrics, /healthz, /readyz.")]
    = DEFAULT_LISTEN,
    interval: Annotated[str, typer.Option("--interval", help="How often the vClusters are read.")] = "5m",
    warn_within: Annotated[
        str, typer.Option("--warn-within", help="Certificates ending within this are expiring.")
    ] = "30d",
    emit_events: Annotated[
        bool,
        typer.Option("--emit-events/--no-emit-events",
                     help="Record Warning Events on vClusters whose certificates expire, ended or are "
                     "invalid (once per condition and day)."),
    ] = True,
) -> None:
    """Serve the certificate expiry of every vCluster as Prometheus metrics (/metrics), reading the
    host cluster every --interval; /healthz and /readyz for probes."""
    from kubectl_vcerts.serving import Health, serve

    deps = get_deps(ctx)
    every = parse_duration(interval, flag="--interval")
    if every < timedelta(seconds=1):
        raise UsageError("--interval must be at least 1s", hint="e.g. --interval 5m")
    host, port = parse_listen(listen)
    if selector:
        check_selector(selector)
    exporter = Exporter(deps, all_namespaces=all_namespaces, selector=selector or "",
                        warn_within=parse_warn_within(warn_within), emit_events=emit_events)
    health = Health()
    allowance = every.total_seconds() * 2 + 60  # a read may be slow; twice missed is a hung loop
    stop = threading.Event()

    def stopping(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    try:
        server = serve(host, port, health, exporter.metrics)
    except OSError as exc:
        raise UsageError(f"--listen {listen}: {exc.strerror}", hint="choose another address or port") from exc
    bound_host, bound_port = server.server_address[:2]
    where = "all namespaces" if all_namespaces else f"namespace {exporter.namespace}"
    _log(f"serving /metrics on {bound_host!s}:{bound_port}; reading {where} every {interval}")
    try:
        while not stop.is_set():
            health.beat("read", allowance)
            if exporter.refresh():
                health.set_ready(True)
            health.beat("read", allowance)
            stop.wait(every.total_seconds())
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()
        _log("stopped")
