"""Restarting the control plane and waiting for it: pods deleted step by step (uid-guarded), each step
waited for until its replacements are Running and Ready, with the operation's leases kept alive while
waiting. Used by the workflow for a change, a rollback and finishing an interrupted rotation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from kubectl_vcerts.rotation import plan as planning
from kubectl_vcerts.rotation.model import PodState, VCluster
from kubectl_vcerts.rotation.plan import RestartStep
from kubectl_vcerts.rotation.ports import Clock, PodPort
from kubectl_vcerts.rotation.recovery import RestartMode

# How long to wait, once the replacements are Ready, for the replaced pods to be gone: twice the chart's
# terminationGracePeriodSeconds (15 s). A pod stuck terminating must not fail the run.
GONE_WAIT = timedelta(seconds=30)


class Restarter:
    """One run's restarts. `emit(step, message, done=...)` reports progress; `keep_alive(now)` renews the
    leases the run holds while it waits."""

    def __init__(self, pods: PodPort, clock: Clock, emit: Callable[..., None], *, poll_seconds: float,
                 keep_alive: Callable[[datetime], None]) -> None:
        self.pods = pods
        self.clock = clock
        self.emit = emit
        self.poll = poll_seconds
        self.keep_alive = keep_alive

    def restart(
        self, vcluster: VCluster, mode: RestartMode, deadline: datetime, *, ca_change: bool,
        keep_data: bool = True,
    ) -> tuple[tuple[str, ...], bool]:
        """Delete the pods step by step and wait for replacements; (deleted pods, came back in time).

        Deployed etcd is restarted only with `ca_change`; with `keep_data`, pods whose state is on an
        emptyDir are never all deleted at once where one at a time keeps it (planning.keep_data_mode)."""
        cp, etcd = self.pods.list_pods(vcluster)
        live = replace(vcluster, pods=cp, etcd_pods=etcd)
        if (
            mode is RestartMode.ROLLING
            and planning.choose_restart_mode(live, ca_change=False, resume=None) is RestartMode.TOGETHER
        ):
            mode = RestartMode.TOGETHER  # something is already down: nothing to keep available
        if keep_data:
            mode = planning.keep_data_mode(live, mode, ca_change=ca_change)
        steps = planning.plan_restart(live, mode, ca_change=ca_change)
        expected_cp = max(vcluster.replicas, 1)
        expected_etcd = len([p for p in etcd if p.status != "Terminating"])
        uids = {p.name: p.uid for p in cp + etcd}
        deleted: set[str] = set()
        names: list[str] = []
        for step in steps:
            self._delete_step(vcluster, step, uids, deleted, names)

            def ready(deleted_now: frozenset[str] = frozenset(deleted)) -> tuple[bool, str]:
                return self._group_ready(vcluster, deleted_now, expected_cp, expected_etcd)

            if not self.wait(ready, deadline):
                return tuple(names), False
        if not steps and vcluster.replicas == 0:
            self.emit(
                "restart", "no pods (scaled to 0): the new certificates apply when it starts", done=True
            )
            return (), True
        if not steps:
            ok = self.wait(
                lambda: self._group_ready(vcluster, frozenset(), expected_cp, expected_etcd), deadline
            )
            return (), ok
        self._wait_gone(vcluster, frozenset(deleted), deadline)
        self.emit("wait", "every restarted pod is Running and Ready", done=True)
        return tuple(names), True

    def _wait_gone(self, vcluster: VCluster, deleted: frozenset[str], deadline: datetime) -> None:
        """A replaced pod keeps running through its grace period, and what it writes then (vCluster's
        cert watcher re-issuing from a secret it read before our write) would land after the
        read-back that follows: wait until the replaced pods are gone, at most GONE_WAIT."""
        def gone() -> tuple[bool, str]:
            cp, etcd = self.pods.list_pods(vcluster)
            left = [p.name for p in cp + etcd if p.uid in deleted]
            return not left, (f"{', '.join(left)} still stopping" if left else "replaced pods gone")

        self.wait(gone, min(deadline, self.clock.now() + GONE_WAIT))

    def _delete_step(
        self, vcluster: VCluster, step: RestartStep, uids: dict[str, str], deleted: set[str], names: list[str]
    ) -> None:
        if step.rollout:
            # the Deployment controller replaces them: deleted (the uids to wait out) all the same
            self.pods.roll_out(vcluster, at=self.clock.now())
            deleted.update(uids[pod] for pod in step.pods)
            names.extend(step.pods)
            self.emit("restart", f"rolling update of Deployment {vcluster.name} started: new pod(s) "
                      f"Ready before {', '.join(step.pods)} stop", done=True)
            return
        for pod in step.pods:
            self.pods.delete_pod(vcluster.namespace, pod, uid=uids[pod])
            deleted.add(uids[pod])
            names.append(pod)
        self.emit("restart", f"deleted pod(s) {', '.join(step.pods)}", done=True)

    def _group_ready(
        self, vcluster: VCluster, deleted: frozenset[str], expected_cp: int, expected_etcd: int
    ) -> tuple[bool, str]:
        cp, etcd = self.pods.list_pods(vcluster)

        def count(pods: tuple[PodState, ...]) -> int:
            # readiness, not vCluster's status string (a native sidecar shows `Init:i/n` there for good)
            return len([p for p in pods if p.uid not in deleted and p.ready and p.phase == "Running"
                        and p.status != "Terminating"])

        ready_cp, ready_etcd = count(cp), count(etcd)
        # a rolling update stops the old pods itself, after the new ones are Ready: wait for that too
        # (a deleted pod is Terminating at once)
        old = [p.name for p in cp + etcd if p.uid in deleted and p.status != "Terminating"]
        message = f"{ready_cp}/{expected_cp} control-plane pod(s) Ready"
        if expected_etcd:
            message += f", {ready_etcd}/{expected_etcd} etcd pod(s) Ready"
        if old:
            message += f"; {', '.join(old)} still running"
        return ready_cp >= expected_cp and ready_etcd >= expected_etcd and not old, message

    def wait(self, condition: Callable[[], tuple[bool, str]], deadline: datetime) -> bool:
        # Pods usually come back within a second or two: look often at first, then every poll_seconds.
        poll = min(0.2, max(self.poll, 0.01))
        last = ""
        while True:
            ok, message = condition()
            if message != last:
                self.emit("wait", message)
                last = message
            if ok:
                return True
            now = self.clock.now()
            if now >= deadline:
                return False
            self.keep_alive(now)
            self.clock.sleep(min(poll, (deadline - now).total_seconds()))
            poll = min(poll * 1.5, max(self.poll, 0.01))
