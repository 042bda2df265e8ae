"""The control-plane workload (StatefulSet/Deployment NAME): undo an interrupted `vcluster certs rotate`;
roll a Deployment out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.model import VCluster, WorkloadKind


def finish_interrupted_rotation(session: KubeSession, vcluster: VCluster, *, replicas: int) -> None:
    """Scale back to `replicas` and drop loft.sh/restoring, paused-replicas and paused-date, guarded by the
    resourceVersion just read (what `vcluster resume` does after a rotation, lifecycle.ResumeVCluster)."""
    namespace, name = vcluster.namespace, vcluster.name
    if vcluster.kind is WorkloadKind.STATEFULSET:
        resource, read, patch = (
            "statefulsets.apps",
            session.apps.read_namespaced_stateful_set,
            session.apps.patch_namespaced_stateful_set,
        )
    else:
        resource, read, patch = (
            "deployments.apps",
            session.apps.read_namespaced_deployment,
            session.apps.patch_namespaced_deployment,
        )
    current = api_call(
        Target("get", resource, name, namespace), lambda: read(name, namespace, **session.kwargs())
    )
    body: dict[str, Any] = {
        "metadata": {
            "resourceVersion": current.metadata.resource_version,
            "annotations": {
                contract.RESTORING_ANNOTATION: None,
                contract.PAUSED_REPLICAS_ANNOTATION: None,
                contract.PAUSED_DATE_ANNOTATION: None,
            },
        },
        "spec": {"replicas": replicas},
    }
    api_call(
        Target("patch", resource, name, namespace), lambda: patch(name, namespace, body, **session.kwargs())
    )


def roll_out(session: KubeSession, vcluster: VCluster, *, at: datetime) -> None:
    """Merge-patch the Deployment's pod template with vcluster.loft.sh/cert-rotation-at = `at`, as
    vCluster's cert watcher does (pkg/certs/watcher.go): the controller then replaces the pods by its
    rolling-update rules. Only that annotation changes, so nothing else of the spec (which Helm or the
    Platform own) is touched."""
    name, namespace = vcluster.name, vcluster.namespace
    body = {"spec": {"template": {"metadata": {"annotations": {
        contract.CERT_ROTATION_AT_ANNOTATION: timefmt.rfc3339_micro(at)}}}}}
    api_call(
        Target("patch", "deployments.apps", name, namespace),
        lambda: session.apps.patch_namespaced_deployment(name, namespace, body, **session.kwargs()),
    )
