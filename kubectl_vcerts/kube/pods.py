"""Pods of a vCluster: list them as `PodState` (kubectl-printer status), delete them uid-guarded."""

from __future__ import annotations

from typing import Any

from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.model import PodState


def pod_state(pod: Any) -> PodState:
    """The status column `kubectl get pods` shows (phase, or the container's waiting/terminated reason)."""
    meta, status = pod.metadata, pod.status
    phase = (status.phase if status else None) or "Unknown"
    shown = phase
    if status and status.reason:
        shown = status.reason
    for container in (status.container_statuses if status else None) or []:
        state = container.state
        if state is None:
            continue
        if state.waiting is not None and state.waiting.reason:
            shown = state.waiting.reason
        elif state.terminated is not None:
            shown = state.terminated.reason or ("Signal" if state.terminated.signal else "Completed")
    if meta.deletion_timestamp is not None:
        shown = "Unknown" if status and status.reason == "NodeLost" else "Terminating"
    conditions = (status.conditions if status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    return PodState(name=meta.name, uid=meta.uid, status=shown, ready=ready, phase=phase)


def list_pods_by_label(
    session: KubeSession, *, namespace: str, selector: str, label: str
) -> dict[str, tuple[PodState, ...]]:
    """The pods matching ``selector``, grouped by the value of their ``label``, each group sorted by
    name: one list call where a selector per group would take one each."""
    result = api_call(
        Target("list", "pods", None, namespace),
        lambda: session.core.list_namespaced_pod(namespace, label_selector=selector, **session.kwargs()),
    )
    groups: dict[str, list[PodState]] = {}
    for pod in result.items:
        value = (pod.metadata.labels or {}).get(label, "")
        groups.setdefault(value, []).append(pod_state(pod))
    return {value: tuple(sorted(states, key=lambda p: p.name)) for value, states in groups.items()}


def delete_pod(session: KubeSession, *, namespace: str, name: str, uid: str) -> None:
    """Delete exactly the pod with this uid: a replacement of the same name is left alone."""
    from kubernetes import client as k8s

    from kubectl_vcerts.errors import ConflictError, NotFoundError

    body = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=uid))
    try:
        api_call(
            Target("delete", "pods", name, namespace),
            lambda: session.core.delete_namespaced_pod(name, namespace, body=body, **session.kwargs()),
        )
    except (NotFoundError, ConflictError):
        return  # already gone, or already replaced (uid precondition failed)
