"""The platform hook as the Deployment runs it (separate process, its ServiceAccount's token, the
manifests' RBAC) against stand-in Platform CRDs on the real API server."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import contract
from tests.support.platform import (
    HOOK_NAMESPACE,
    HOOK_SERVICE_ACCOUNT,
    HookProcess,
    Hooks,
    PlatformEnv,
    PlatformPlayer,
    kubectl,
    wait_for,
)

pytestmark = pytest.mark.cluster

ROTATED = contract.CA_ROTATED_ANNOTATION
RECYCLED = contract.NODECLAIMS_RECYCLED_ANNOTATION
RECORD = contract.RECYCLE_RECORD_ANNOTATION


@pytest.fixture(scope="module")
def platform_env(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> PlatformEnv:
    return PlatformEnv(Path(kube_cluster.kubeconfig), tmp_path_factory.mktemp("hook"))


@pytest.fixture
def player(platform_env: PlatformEnv, namespace: str) -> Iterator[PlatformPlayer]:
    p = PlatformPlayer(platform_env.admin_kubeconfig, namespace)
    yield p
    p.close()


@pytest.fixture
def hooks(platform_env: PlatformEnv, namespace: str, tmp_path: Path) -> Iterator[Hooks]:
    h = Hooks(platform_env, namespace, tmp_path)
    yield h
    h.stop_all()


def stamp(offset: int = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def leader_ready(hook: HookProcess) -> None:
    hook.wait_ready()
    wait_for(f"{hook.pod_name} leads", lambda: hook.metric("vcerts_hook_leader") == 1.0, timeout=30)


def recycled(player: PlatformPlayer, name: str, marker: str) -> bool:
    return player.annotations(name).get(RECYCLED) == marker


def with_claims(player: PlatformPlayer, name: str, count: int, **kw: Any) -> dict[str, str]:
    player.make_instance(name)
    for i in range(count):
        player.make_claim(name, f"{name}-claim-{i}", **kw)
    uids = player.claim_uids(name)
    # "unchanged" assertions compare against this: an empty read would make them pass vacuously
    assert sorted(uids) == [f"{name}-claim-{i}" for i in range(count)], uids
    return uids


def test_the_manifests_apply_to_the_cluster(platform_env: PlatformEnv) -> None:
    assert platform_env.apply_result.returncode == 0
    assert "deployment.apps/vcerts-platform-hook" in platform_env.apply_result.stdout
    # The pods pass the namespace's `restricted` Pod Security level (kwok plays the kubelet).
    kubectl(platform_env.admin_kubeconfig, "-n", HOOK_NAMESPACE, "wait", "--for=condition=Available",
            "--timeout=90s", "deployment/vcerts-platform-hook")


SA = f"system:serviceaccount:{HOOK_NAMESPACE}:{HOOK_SERVICE_ACCOUNT}"
RBAC_CASES = [
    ("patch", "virtualclusterinstances.management.loft.sh", "p-any", True),
    ("watch", "virtualclusterinstances.management.loft.sh", "p-any", True),
    ("delete", "virtualclusterinstances.management.loft.sh", "p-any", False),
    ("update", "virtualclusterinstances.management.loft.sh", "p-any", False),
    ("delete", "nodeclaims.management.loft.sh", "p-any", True),
    ("create", "nodeclaims.management.loft.sh", "p-any", True),
    ("patch", "nodeclaims.management.loft.sh", "p-any", False),
    ("create", "events", "p-any", True),
    ("get", "secrets", "p-any", False),
    ("list", "configmaps", "p-any", False),
    ("update", "leases.coordination.k8s.io/vcerts-platform-hook", HOOK_NAMESPACE, True),
    ("update", "leases.coordination.k8s.io/someone-elses-lease", HOOK_NAMESPACE, False),
    ("create", "leases.coordination.k8s.io", "p-any", False),
]


@pytest.mark.parametrize(("verb", "resource", "ns", "allowed"), RBAC_CASES,
                         ids=[f"{'may' if c[3] else 'may not'} {c[0]} {c[1]} in {c[2]}" for c in RBAC_CASES])
def test_the_service_account_has_only_the_verbs_it_uses(
        platform_env: PlatformEnv, verb: str, resource: str, ns: str, allowed: bool) -> None:
    result = kubectl(platform_env.admin_kubeconfig, "auth", "can-i", verb, resource, "-n", ns, "--as", SA,
                     check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


def test_a_normal_recycle_replaces_every_claim_and_marks_the_instance(
        player: PlatformPlayer, hooks: Hooks) -> None:
    before = with_claims(player, "vc1", 3)
    player.make_instance("vc2")
    player.make_claim("vc2", "vc2-claim-0")
    other = player.claim_uids("vc2")
    hook = hooks.start("hook-a")
    leader_ready(hook)
    marker = stamp()
    player.annotate("vc1", {ROTATED: marker, contract.CA_FINGERPRINT_ANNOTATION: "sha256:" + "ab" * 32})
    wait_for("vc1 recycled", lambda: recycled(player, "vc1", marker))

    after = player.claim_uids("vc1")
    assert sorted(after) == sorted(before)
    assert all(after[name] != before[name] for name in before)
    recreated = {c["metadata"]["name"]: c for c in player.claims("vc1")}
    for name, uid in before.items():
        assert recreated[name]["metadata"]["annotations"][contract.RECREATED_FROM_ANNOTATION] == uid
        assert recreated[name]["metadata"]["annotations"]["note"] == f"claim {name}"
        assert recreated[name]["metadata"]["labels"] == {"karpenter.sh/nodepool": "pool-a"}
        assert recreated[name]["spec"]["providerRef"] == "aws"
    assert RECORD not in player.annotations("vc1")
    assert player.claim_uids("vc2") == other  # another instance's claims are not touched
    reasons = [e["reason"] for e in player.events("vc1")]
    assert "RecycleStarted" in reasons and "Recycled" in reasons
    assert hook.metric("vcerts_hook_recycles_total") == 1.0
    assert hook.metric("vcerts_hook_claims_deleted_total") == 3.0
    assert any(entry.get("msg") == "recycle done" for entry in hook.logs())  # JSON lines


def test_a_restarted_hook_does_not_recycle_twice(player: PlatformPlayer, hooks: Hooks) -> None:
    with_claims(player, "vc", 2)
    first = hooks.start("hook-a")
    leader_ready(first)
    marker = stamp()
    player.annotate("vc", {ROTATED: marker})
    wait_for("recycled", lambda: recycled(player, "vc", marker))
    assert first.stop() == 0  # SIGTERM: graceful, exit 0
    after_first = player.claim_uids("vc")

    second = hooks.start("hook-b")
    leader_ready(second)
    # It has looked at the instance (the initial list queues every instance) and done nothing.
    wait_for("second hook reconciled", lambda: second.metric("vcerts_hook_reconcile_seconds_count") >= 1)
    assert player.claim_uids("vc") == after_first
    assert second.metric("vcerts_hook_claims_deleted_total") == 0.0


def test_claims_the_platform_recreates_itself_are_not_duplicated(
        player: PlatformPlayer, hooks: Hooks) -> None:
    before = with_claims(player, "vc", 3)
    originals = {c["metadata"]["name"]: c for c in player.claims("vc")}
    hook = hooks.start("hook-a", HOOK_GRACE_SECONDS="8")
    leader_ready(hook)
    marker = stamp()
    player.annotate("vc", {ROTATED: marker})
    # Play the Platform: once the old claims are gone, recreate two of them under generated names.
    wait_for("old claims gone", lambda: not set(player.claim_uids("vc").values()) & set(before.values()))
    player.recreate_as_platform(originals["vc-claim-0"], "vc-platform-aaaaa")
    player.recreate_as_platform(originals["vc-claim-1"], "vc-platform-bbbbb")
    wait_for("recycled", lambda: recycled(player, "vc", marker), timeout=60)
    names = sorted(player.claim_uids("vc"))
    assert names == ["vc-claim-2", "vc-platform-aaaaa", "vc-platform-bbbbb"]
    assert hook.metric("vcerts_hook_claims_recreated_total") == 1.0


def test_a_finalizer_makes_the_hook_wait_until_the_claim_is_gone(
        player: PlatformPlayer, hooks: Hooks) -> None:
    before = with_claims(player, "vc", 2, finalizers=["platform.loft.sh/drain"])
    hook = hooks.start("hook-a")
    leader_ready(hook)
    marker = stamp()
    player.annotate("vc", {ROTATED: marker})
    wait_for("claims terminating",
             lambda: all(c["metadata"].get("deletionTimestamp") for c in player.claims("vc")))
    seen = hook.metric("vcerts_hook_reconcile_seconds_count")
    wait_for("more passes", lambda: hook.metric("vcerts_hook_reconcile_seconds_count") >= seen + 3)
    # Still waiting: the same claims, terminating; nothing recreated; not marked.
    assert player.claim_uids("vc") == before
    assert RECYCLED not in player.annotations("vc") and RECORD in player.annotations("vc")
    for name in before:
        player.clear_finalizers(name)
    wait_for("recycled", lambda: recycled(player, "vc", marker))
    after = player.claim_uids("vc")
    assert sorted(after) == sorted(before) and not set(after.values()) & set(before.values())


def test_a_new_hook_finishes_what_a_killed_one_started(player: PlatformPlayer, hooks: Hooks) -> None:
    before = with_claims(player, "vc", 3, finalizers=["platform.loft.sh/drain"])
    first = hooks.start("hook-a")
    leader_ready(first)
    marker = stamp()
    player.annotate("vc", {ROTATED: marker})
    wait_for("claims terminating",
             lambda: all(c["metadata"].get("deletionTimestamp") for c in player.claims("vc")))
    first.stop(signal.SIGKILL)
    for name in before:
        player.clear_finalizers(name)
    wait_for("claims gone", lambda: not player.claims("vc"))
    second = hooks.start("hook-b")
    leader_ready(second)  # takes the Lease over once the killed holder's lease expires
    wait_for("recycled", lambda: recycled(player, "vc", marker))
    assert sorted(player.claim_uids("vc")) == sorted(before)
    assert RECORD not in player.annotations("vc")


def test_of_two_replicas_only_the_leader_acts(player: PlatformPlayer, hooks: Hooks) -> None:
    with_claims(player, "vc", 3)
    a, b = hooks.start("hook-a"), hooks.start("hook-b")
    a.wait_ready()
    b.wait_ready()
    wait_for("one leader", lambda: a.metric("vcerts_hook_leader") + b.metric("vcerts_hook_leader") == 1.0)
    leader, standby = (a, b) if a.metric("vcerts_hook_leader") == 1.0 else (b, a)
    marker = stamp()
    player.annotate("vc", {ROTATED: marker})
    wait_for("recycled", lambda: recycled(player, "vc", marker))
    assert leader.metric("vcerts_hook_claims_deleted_total") == 3.0
    assert standby.metric("vcerts_hook_claims_deleted_total") == 0.0
    assert standby.metric("vcerts_hook_reconcile_seconds_count") == 0.0

    # The leader stops (SIGTERM gives the Lease up): the standby takes over and acts.
    assert leader.stop() == 0
    wait_for("standby leads", lambda: standby.metric("vcerts_hook_leader") == 1.0, timeout=30)
    second = stamp(1)
    player.annotate("vc", {ROTATED: second})
    wait_for("recycled again", lambda: recycled(player, "vc", second))
    assert standby.metric("vcerts_hook_claims_deleted_total") == 3.0


def test_the_hook_recovers_when_the_api_server_restarts(
        kube_cluster: Any, player: PlatformPlayer, hooks: Hooks) -> None:
    with_claims(player, "vc", 2)
    hook = hooks.start("hook-a")
    leader_ready(hook)
    kube_cluster.restart_apiserver()
    wait_for("watch resumed", lambda: hook.metric("vcerts_hook_leader") == 1.0
             and any(e.get("msg") == "watch failed; resuming" for e in hook.logs()), timeout=90)
    marker = stamp()
    player.annotate("vc", {ROTATED: marker})
    wait_for("recycled after the restart", lambda: recycled(player, "vc", marker), timeout=90)
    assert hook.get("/healthz")[0] == 200


@pytest.mark.parametrize(("annotations", "bad_claim", "text"), [
    ({ROTATED: "not-a-time"}, False, "not an RFC 3339 time"),
    ({ROTATED: "2026-11-29T04:00:00Z", RECYCLED: "done"}, False, "not an RFC 3339 time"),
    ({ROTATED: "2026-11-29T04:00:00Z"}, True, "spec.providerRef"),
], ids=["an unparseable ca-rotated value", "an unparseable nodeclaims-recycled value",
        "a claim without spec.providerRef"])
def test_an_invalid_object_gets_an_event_and_no_action(
        player: PlatformPlayer, hooks: Hooks, annotations: dict[str, str], bad_claim: bool,
        text: str) -> None:
    with_claims(player, "vc", 2)
    if bad_claim:
        player.make_claim("vc", "vc-broken", spec={"vClusterRef": "vc", "typeRef": "medium"})
    before = player.claim_uids("vc")
    hook = hooks.start("hook-a")
    leader_ready(hook)
    player.annotate("vc", annotations)
    wait_for("InvalidObject event", lambda: any(e["reason"] == "InvalidObject" for e in player.events("vc")))
    event = next(e for e in player.events("vc") if e["reason"] == "InvalidObject")
    assert event["type"] == "Warning" and text in event["message"]
    assert player.claim_uids("vc") == before
    current = player.annotations("vc")
    assert RECORD not in current and current.get(RECYCLED) == annotations.get(RECYCLED)
    assert hook.metric('vcerts_hook_errors_total{kind="invalid"}') == 1.0


def test_dry_run_logs_the_plan_and_changes_nothing(player: PlatformPlayer, hooks: Hooks) -> None:
    before = with_claims(player, "vc", 2)
    hook = hooks.start("hook-a", HOOK_DRY_RUN="true")
    leader_ready(hook)
    player.annotate("vc", {ROTATED: stamp()})
    wait_for("plan logged", lambda: any(e.get("msg") == "dry run: would recycle" for e in hook.logs()))
    assert player.claim_uids("vc") == before
    assert RECORD not in player.annotations("vc") and RECYCLED not in player.annotations("vc")


def test_a_label_selector_limits_what_the_hook_touches(player: PlatformPlayer, hooks: Hooks) -> None:
    player.make_instance("vc-in", labels={"team": "a"})
    player.make_claim("vc-in", "vc-in-0")
    outside = with_claims(player, "vc-out", 1)
    hook = hooks.start("hook-a", HOOK_LABEL_SELECTOR="team=a")
    leader_ready(hook)
    marker = stamp()
    player.annotate("vc-out", {ROTATED: marker})
    player.annotate("vc-in", {ROTATED: marker})
    wait_for("vc-in recycled", lambda: recycled(player, "vc-in", marker))
    assert player.claim_uids("vc-out") == outside
    assert RECORD not in player.annotations("vc-out") and RECYCLED not in player.annotations("vc-out")
