"""The hook's small parts: settings, leader moves, work queue, metrics exposition, health."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from kubectl_vcerts.errors import UsageError
from kubectl_vcerts.rotation.ports import LeaseRecord
from kubectl_vcerts.rotation.recycle_record import RecreatePolicy
from kubectl_vcerts.serving import Health
from platform_hook.leader import LeaseMove, next_move
from platform_hook.main import parse_args
from platform_hook.metrics import Metrics
from platform_hook.settings import from_env
from platform_hook.workqueue import WorkQueue

T0 = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


def lease(holder: str, renewed_ago: float, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(name="l", holder=holder, duration_seconds=duration, acquired=T0,
                       renewed=T0 - timedelta(seconds=renewed_ago), resource_version="1")


LEASE_CASES = [
    ("no lease yet is created", None, LeaseMove.CREATE),
    ("our own lease is renewed", lease("me", 3), LeaseMove.RENEW),
    ("our own expired lease is still ours to renew", lease("me", 60), LeaseMove.RENEW),
    ("someone else's live lease is left alone", lease("other", 3), LeaseMove.WAIT),
    ("someone else's expired lease is taken over", lease("other", 16), LeaseMove.TAKE),
    ("a released lease (no holder) is taken at once", lease("", 0), LeaseMove.TAKE),
]


@pytest.mark.parametrize(("current", "move"), [c[1:] for c in LEASE_CASES], ids=[c[0] for c in LEASE_CASES])
def test_the_next_leader_election_move_follows_the_lease(
    current: LeaseRecord | None, move: LeaseMove
) -> None:
    assert next_move(current, "me", T0) is move


def test_settings_come_from_the_environment() -> None:
    s = from_env({"HOOK_NAMESPACES": "p-a, p-b", "HOOK_RECREATE": "never", "HOOK_GRACE_SECONDS": "2.5",
                  "POD_NAME": "hook-0", "POD_NAMESPACE": "vcerts-system", "HOOK_DRY_RUN": "true"})
    assert s.namespaces == ("p-a", "p-b") and s.recreate is RecreatePolicy.NEVER
    assert s.grace_seconds == 2.5 and s.identity == "hook-0" and s.lease_namespace == "vcerts-system"
    assert s.dry_run


@pytest.mark.parametrize(("env", "text"), [({"HOOK_RECREATE": "sometimes"}, "HOOK_RECREATE"),
                                           ({"HOOK_GRACE_SECONDS": "soon"}, "HOOK_GRACE_SECONDS"),
                                           ({"HOOK_WORKERS": "0"}, "HOOK_WORKERS")],
                         ids=["an unknown policy is refused", "a non-number is refused",
                              "zero workers are refused"])
def test_bad_settings_are_refused(env: dict[str, str], text: str) -> None:
    with pytest.raises(UsageError, match=text):
        from_env(env)


def test_flags_override_the_environment() -> None:
    s = parse_args(["--recreate", "always", "--namespace", "p-x", "--dry-run"], from_env({}))
    assert s.recreate is RecreatePolicy.ALWAYS and s.namespaces == ("p-x",) and s.dry_run


def test_the_queue_hands_a_key_to_one_worker_at_a_time() -> None:
    clock = [0.0]
    queue = WorkQueue(monotonic=lambda: clock[0])
    queue.add("a")
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.add("a")  # while active: remembered, not handed out twice
    assert queue.get(timeout=0) is None
    queue.done("a")
    assert queue.get(timeout=0) == "a"


def test_the_queue_holds_delayed_keys_until_due() -> None:
    clock = [0.0]
    queue = WorkQueue(monotonic=lambda: clock[0])
    queue.add_after("b", 5)
    assert queue.get(timeout=0) is None
    clock[0] = 5.0
    assert queue.get(timeout=0) == "b"


def test_metrics_are_prometheus_text() -> None:
    metrics = Metrics(api_calls=lambda: 7)
    metrics.recycles.inc()
    metrics.errors.inc(kind="invalid")
    metrics.reconcile_seconds.observe(0.02)
    text = metrics.render()
    assert "vcerts_hook_recycles_total 1\n" in text
    assert 'vcerts_hook_errors_total{kind="invalid"} 1\n' in text
    assert 'vcerts_hook_reconcile_seconds_bucket{le="0.025"} 1\n' in text
    assert 'vcerts_hook_reconcile_seconds_bucket{le="0.01"} 0\n' in text
    assert "vcerts_hook_api_requests_total 7\n" in text
    assert "# TYPE vcerts_hook_reconcile_seconds histogram" in text


def test_health_turns_bad_when_a_loop_stops_beating() -> None:
    clock = [0.0]
    health = Health(monotonic=lambda: clock[0])
    health.beat("watch", 10)
    assert health.healthy()[0]
    clock[0] = 11
    ok, text = health.healthy()
    assert not ok and "watch" in text


def test_the_hook_never_loads_the_cli_typer_or_rich() -> None:
    code = ("import sys, platform_hook.main, platform_hook.watch, platform_hook.reconcile, "
            "kubectl_vcerts.kube.platform\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click') "
            "or m.startswith('kubectl_vcerts.cli'))\n"
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
