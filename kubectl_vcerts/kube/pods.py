"""Pods of a vCluster: the one pod-status algorithm (vCluster's copy of kubectl's printer column),
pods listed as `PodState`, deleted uid-guarded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.model import PodState

REVISION_LABEL = "controller-revision-hash"  # set by the StatefulSet controller on every pod it makes


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) else 0


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or ())


def pod_status(pod: Mapping[str, Any]) -> str:
    """vCluster's pod status (pkg/cli/find `GetPodStatus`, its copy of an older kubectl printer), which
    `vcluster list` shows and its IsRunning() reads: phase or status.reason; the first init container
    not done (`Init:…`, a running native sidecar included: `Init:i/n`); else the last non-empty waiting
    or terminated reason of the containers (`Completed` next to a ready running one is `Running`);
    `Terminating` once deleted (`Unknown` when the node was lost). Waits for pods use readiness, not
    this string."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    reason: str = status.get("phase") or ""
    if status.get("reason"):
        reason = status["reason"]
    init_specs = spec.get("initContainers") or ()
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or ()):
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for container in reversed(status.get("containerStatuses") or ()):
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                signal = _int(terminated.get("signal"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason


def _data_on_emptydir(spec: Mapping[str, Any]) -> bool:
    return any(v.get("name") == "data" and v.get("emptyDir") is not None for v in spec.get("volumes") or ())


def pki_loaded_at(pod: Mapping[str, Any]) -> datetime | None:
    """When the running PKI was read: the start of the `syncer` container, which downloads NAME-certs
    at every start. The kubelet starts a crashed container again in the same pod, so that start, not
    the pod's, is what counts; None while it is not running (its next start reads the secret as it is
    then). A pod that reports no syncer container: its own start (status.startTime, else creation)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or ():
        if container.get("name") != contract.SYNCER_CONTAINER:
            continue
        running = (container.get("state") or {}).get("running")
        if running is None:
            return None
        return timefmt.parse_rfc3339(str(running.get("startedAt") or "")) or timefmt.parse_rfc3339(
            str(status.get("startTime") or ""))
    return timefmt.parse_rfc3339(str(status.get("startTime") or meta.get("creationTimestamp") or ""))


def pod_state(pod: Mapping[str, Any]) -> PodState:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    return PodState(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        status=pod_status(pod),
        ready=_condition_true(status, "Ready"),
        phase=status.get("phase") or "Unknown",
        started=pki_loaded_at(pod),
        ephemeral=_data_on_emptydir(pod.get("spec") or {}),
        revision=str((meta.get("labels") or {}).get(REVISION_LABEL, "")),
    )


def list_pods_by_label(
    session: KubeSession, *, namespace: str, selector: str, label: str
) -> dict[str, tuple[PodState, ...]]:
    """The pods matching ``selector``, grouped by the value of their ``label``, each group sorted by
    name: one list call where a selector per group would take one each."""
    def call() -> Any:
        response = session.core.list_namespaced_pod(namespace, label_selector=selector,
                                                    _preload_content=False, **session.kwargs())
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    result = api_call(Target("list", "pods", None, namespace), call)
    groups: dict[str, list[PodState]] = {}
    for pod in result.get("items") or ():
        value = ((pod.get("metadata") or {}).get("labels") or {}).get(label, "")
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
