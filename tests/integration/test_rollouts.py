"""How the control plane is replaced, by workload: a Deployment by its own rolling update (a Ready pod at
every moment), a StatefulSet under OnDelete never with a template change someone staged (real local
cluster: kube-controller-manager's Deployment and StatefulSet controllers do the replacing)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import watch

from kubectl_vcerts import contract
from tests.integration.rotation_support import backups, leases, run_cli, snapshot
from tests.support.polling import wait_until

pytestmark = pytest.mark.cluster

NOT_READY = 12


@dataclass
class PodTimeline:
    """Every change of the control-plane pods, in the order the API server made them."""

    states: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # uid -> (ready, terminating)
    ready_counts: list[int] = field(default_factory=list)  # ready, not terminating: after each event
    names: set[str] = field(default_factory=set)

    def apply(self, kind: str, pod: Any) -> None:
        uid = pod.metadata.uid
        if kind == "DELETED":
            self.states.pop(uid, None)
        else:
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())
            self.states[uid] = (ready, pod.metadata.deletion_timestamp is not None)
        self.names.add(pod.metadata.name)
        self.ready_counts.append(sum(1 for ready, gone in self.states.values() if ready and not gone))


@contextmanager
def pod_timeline(session: Any, namespace: str, name: str) -> Iterator[PodTimeline]:
    """Watch the pods `app=vcluster,release=NAME` from the current resourceVersion on (no event lost)."""
    selector = f"app=vcluster,release={name}"
    listed = session.core.list_namespaced_pod(namespace, label_selector=selector)
    timeline = PodTimeline()
    for pod in listed.items:
        timeline.apply("ADDED", pod)
    timeline.ready_counts.clear()
    watcher = watch.Watch()
    errors: list[BaseException] = []
    stopping = threading.Event()

    def run() -> None:
        try:
            for event in watcher.stream(session.core.list_namespaced_pod, namespace, label_selector=selector,
                                        resource_version=listed.metadata.resource_version,
                                        timeout_seconds=300):
                timeline.apply(event["type"], event["object"])
        except BaseException as exc:  # surfaced below: a watch broken mid-test must not pass silently
            if not stopping.is_set():
                errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield timeline
    finally:
        stopping.set()
        watcher.stop()
        thread.join(timeout=30)
    assert not errors, f"pod watch failed: {errors[0]!r}"


def template_annotations(session: Any, namespace: str, name: str) -> dict[str, str]:
    deployment = session.apps.read_namespaced_deployment(name, namespace)
    return dict(deployment.spec.template.metadata.annotations or {})


def test_a_deployment_leaf_rotation_keeps_a_ready_control_plane_pod_at_every_moment(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster(deployed_etcd=True, persistence=False)
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    assert vc.kind == "Deployment"
    before = snapshot(kube_session, ns, name)

    dry = run_cli(config, ns, "rotate", name, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"rolling update of Deployment {name}" in dry.stdout
    assert contract.CERT_ROTATION_AT_ANNOTATION not in template_annotations(kube_session, ns, name)

    with pod_timeline(kube_session, ns, name) as timeline:
        done = run_cli(config, ns, "rotate", name, "--yes", "--timeout", "90s", "-o", "json")
        assert done.returncode == 0, done.stderr

        def settled() -> bool:  # the watch may trail the CLI by an event or two
            return len(timeline.states) == 1 and all(r and not t for r, t in timeline.states.values())

        wait_until(settled, timeout=30,
                   fail=lambda: AssertionError(f"pods did not settle: {timeline.states}"))
    assert timeline.ready_counts, "the watch saw no pod change"
    assert min(timeline.ready_counts) >= 1, f"a moment without a Ready pod: {timeline.ready_counts}"
    report = json.loads(done.stdout)
    [old] = [pod for pod in before.pods if "-etcd-" not in pod]
    assert report["restart"]["steps"] == [{"group": "rollout", "pods": [old]}]
    assert report["restart"]["restarted"] == [old]
    assert contract.CERT_ROTATION_AT_ANNOTATION in template_annotations(kube_session, ns, name)

    after = snapshot(kube_session, ns, name)
    assert old not in after.pods and len([p for p in after.pods if "-etcd-" not in p]) == 1
    assert {p: u for p, u in after.pods.items() if "-etcd-" in p} == {
        p: u for p, u in before.pods.items() if "-etcd-" in p}, "a leaf rotation leaves etcd running"
    assert after.data != before.data and len(backups(kube_session, ns, name)) == 1
    assert leases(kube_session, ns) == {}
    checked = run_cli(config, ns, "check", name, "-o", "json")
    assert json.loads(checked.stdout)["notRestarted"] is None, checked.stdout


def stage_template_change(session: Any, namespace: str, name: str) -> str:
    """Switch the StatefulSet to OnDelete and stage a template change; its update revision."""
    session.apps.patch_namespaced_stateful_set(name, namespace, {"spec": {"updateStrategy": {
        "type": "OnDelete", "rollingUpdate": None}}})
    session.apps.patch_namespaced_stateful_set(name, namespace, {"spec": {"template": {"metadata": {
        "annotations": {"example.com/staged": "for the next maintenance window"}}}}})

    def staged() -> str | None:
        status = session.apps.read_namespaced_stateful_set(name, namespace).status
        if status.update_revision and status.update_revision != status.current_revision:
            return str(status.update_revision)
        return None

    return str(wait_until(staged, timeout=30, fail=lambda: AssertionError(f"no update revision for {name}")))


def test_an_ondelete_statefulset_with_a_staged_change_is_never_restarted_into_it(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any
) -> None:
    vc = make_vcluster()
    ns, name, config = vc.namespace, vc.name, kube_cluster.kubeconfig
    revision = stage_template_change(kube_session, ns, name)
    before = snapshot(kube_session, ns, name)

    for operation, args in (("rotate", ("--dry-run",)), ("rotate", ("--yes",)), ("rotate-ca", ("--yes",))):
        refused = run_cli(config, ns, operation, name, *args)
        assert refused.returncode == NOT_READY, refused.stderr
        assert f"StatefulSet {ns}/{name} (updateStrategy OnDelete)" in refused.stderr
        assert revision in refused.stderr and f"{name}-0" in refused.stderr
        assert "--no-restart" in refused.stderr and "--roll-out-staged" in refused.stderr
    assert snapshot(kube_session, ns, name) == before
    assert backups(kube_session, ns, name) == [] and leases(kube_session, ns) == {}

    written = run_cli(config, ns, "rotate", name, "--yes", "--no-restart", "-o", "json")
    assert written.returncode == 0, written.stderr
    assert any("rolls out what is staged" in note for note in json.loads(written.stdout)["notes"])
    after = snapshot(kube_session, ns, name)
    assert after.pods == before.pods and after.data != before.data

    # once the change is rolled out (the user deletes the pod), restarting applies nothing staged
    kube_session.core.delete_namespaced_pod(f"{name}-0", ns)

    def rolled_out() -> bool:
        selector = f"app=vcluster,release={name}"
        pods = kube_session.core.list_namespaced_pod(ns, label_selector=selector).items
        return any(p.metadata.labels.get("controller-revision-hash") == revision
                   and p.metadata.deletion_timestamp is None for p in pods)

    wait_until(rolled_out, timeout=60,
               fail=lambda: AssertionError(f"{name}-0 not re-created at {revision}"))
    restore = run_cli(config, ns, "restore", name, "--backup", "latest", "--no-renew", "--yes",
                      "--timeout", "90s")
    assert restore.returncode == 0, restore.stderr
    assert snapshot(kube_session, ns, name).data == before.data
