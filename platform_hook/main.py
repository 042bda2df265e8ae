"""Entry point of the `platform-hook` console script: wire settings, gateway, loops and signals.

Threads: the leader elector, one watcher per namespace in scope, N reconcile workers (bounded
concurrency), and the HTTP server for probes and metrics. SIGTERM/SIGINT stop the loops, let the
current passes finish, give the Lease up and exit 0.
Imports kubectl_vcerts.{kube, errors, contract, rotation.recycle*} and the hook's modules; never cli.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from kubectl_vcerts.errors import VcertsError
from kubectl_vcerts.rotation.recycle_record import RecreatePolicy
from kubectl_vcerts.serving import Health, serve
from platform_hook import logs
from platform_hook.leader import LeaderElector
from platform_hook.metrics import Metrics
from platform_hook.reconcile import Reconciler
from platform_hook.settings import Settings, from_env
from platform_hook.workqueue import WorkQueue

log = logging.getLogger("platform_hook")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def parse_args(argv: Sequence[str] | None, base: Settings) -> Settings:
    parser = argparse.ArgumentParser(prog="platform-hook", description=(
        "Recycle the NodeClaims of VirtualClusterInstances whose vcerts.io/ca-rotated is newer than "
        "vcerts.io/nodeclaims-recycled. Flags override the HOOK_* environment variables."))
    parser.add_argument("--namespace", action="append", dest="namespaces",
                        help="watch only this namespace (repeatable; default: all)")
    parser.add_argument("--selector", help="label selector for VirtualClusterInstances")
    parser.add_argument("--recreate", choices=[p.value for p in RecreatePolicy])
    parser.add_argument("--grace-seconds", type=float)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--dry-run", action="store_true", default=None,
                        help="log what would be done; change nothing")
    args = parser.parse_args(argv)
    changes: dict[str, object] = {}
    if args.namespaces:
        changes["namespaces"] = tuple(args.namespaces)
    if args.selector is not None:
        changes["label_selector"] = args.selector
    if args.recreate:
        changes["recreate"] = RecreatePolicy(args.recreate)
    if args.grace_seconds is not None:
        changes["grace_seconds"] = args.grace_seconds
    if args.workers is not None:
        changes["workers"] = max(1, args.workers)
    if args.dry_run:
        changes["dry_run"] = True
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def run(settings: Settings, stop: threading.Event) -> int:
    from kubectl_vcerts.kube.client import KubeTarget, connect
    from kubectl_vcerts.kube.platform import PlatformGateway
    from platform_hook.watch import InstanceWatcher

    session = connect(KubeTarget(request_timeout=30))
    gateway = PlatformGateway(session, identity=settings.identity)
    metrics = Metrics(api_calls=lambda: gateway.calls)
    health = Health()
    queue = WorkQueue()
    server = serve(settings.http_host, settings.http_port, health, metrics.render)
    log.info("started", extra={"fields": {
        "identity": settings.identity, "namespaces": list(settings.namespaces) or ["*"],
        "selector": settings.label_selector, "recreate": settings.recreate.value, "dry_run": settings.dry_run,
        "workers": settings.workers, "http": f"{settings.http_host}:{server.server_address[1]}"}})

    watcher = InstanceWatcher(gateway, settings, queue.add, on_listed=lambda: health.set_ready(True))

    def on_leader(leader: bool) -> None:
        metrics.is_leader.set(1.0 if leader else 0.0)
        if leader:
            watcher.request_resync()  # what happened while we were not leading

    elector = LeaderElector(gateway, namespace=settings.lease_namespace, name=settings.lease_name,
                            identity=settings.identity, duration_seconds=settings.lease_seconds,
                            renew_seconds=settings.renew_seconds, now=_utc_now, on_change=on_leader)
    reconciler = Reconciler(gateway, settings, metrics, now=_utc_now)

    def work() -> None:
        while not stop.is_set():
            key = queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                if not elector.is_leader():
                    continue  # the leader acts; we get everything again by resync on winning
                outcome = reconciler.reconcile(key)
                if outcome.requeue_after is not None:
                    queue.add_after(key, outcome.requeue_after)
            except Exception:
                # A bug must not kill the worker: log it, count it, look again later.
                metrics.errors.inc(kind="unexpected")
                log.exception("reconcile crashed", extra={"fields": {"instance": key}})
                queue.add_after(key, settings.max_backoff_seconds)
            finally:
                queue.done(key)

    renew_allow = settings.renew_seconds * 3 + 30
    threads = [
        threading.Thread(target=elector.run, args=(stop, lambda: health.beat("leader", renew_allow)),
                         name="leader", daemon=True),
        threading.Thread(target=watcher.run,
                         args=(stop, lambda: health.beat("watch", settings.watch_seconds + 120)),
                         name="watch", daemon=True),
    ] + [threading.Thread(target=work, name=f"worker-{i}", daemon=True) for i in range(settings.workers)]
    for thread in threads:
        thread.start()
    stop.wait()
    log.info("stopping")
    queue.close()
    for thread in threads[2:]:
        thread.join(timeout=30)  # let passes under way finish their current request
    elector.release()
    server.shutdown()
    session.close()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_args(argv, from_env())
    except VcertsError as exc:
        print(f"platform-hook: error: {exc}" + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)
        return int(exc.exit_code)
    logs.configure(settings.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run(settings, stop)
    except VcertsError as exc:
        log.error("fatal", extra={"fields": {"error": str(exc), "hint": exc.hint}})
        return int(exc.exit_code)
