"""`VirtualGateway`: the few verbs private nodes need inside the VIRTUAL cluster, implementing
`rotation.nodes.VirtualNodesPort` (nodes list/cordon/delete, pods on a node, evictions, the
bootstrap-token Secret, `kube-root-ca.crt`, `kubeadm-config`). kube/virtual.py reaches the virtual API
server and hands its session here. Every request goes through `api_call`; imports kubernetes only inside
functions; never logs credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubectl_vcerts.errors import NotFoundError
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.join_tokens import TokenSecret
from kubectl_vcerts.rotation.nodes import NodeRecord, PodOnNode

if TYPE_CHECKING:
    from kubectl_vcerts.kube.portforward import Forward

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def _time(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def node_record(node: Any) -> NodeRecord:
    meta, spec, status = node.metadata, node.spec, node.status
    ready: str | None = None
    message = ""
    for condition in (status.conditions if status is not None else None) or []:
        if condition.type == "Ready":
            ready, message = condition.status, condition.message or ""
    owners = tuple((o.kind, o.name) for o in meta.owner_references or [])
    return NodeRecord(
        name=meta.name,
        labels=dict(meta.labels or {}),
        ready=ready,
        ready_message=message,
        unschedulable=bool(spec is not None and spec.unschedulable),
        owners=owners,
        created=_time(meta.creation_timestamp),
    )


class VirtualGateway:
    """Implements rotation.nodes.VirtualNodesPort on a virtual-cluster session."""

    def __init__(self, session: KubeSession, *, forward: Forward | None = None) -> None:
        self.session = session
        self.forward = forward  # the port-forward this session goes through, closed with it

    def close(self) -> None:
        self.session.close()
        if self.forward is not None:
            self.forward.close()

    def list_nodes(self) -> list[NodeRecord]:
        core = self.session.core
        nodes = api_call(Target("list", "nodes"), lambda: core.list_node(**self.session.kwargs()))
        return [node_record(n) for n in nodes.items]

    def read_node(self, name: str) -> NodeRecord | None:
        core = self.session.core
        try:
            node = api_call(
                Target("get", "nodes", name), lambda: core.read_node(name, **self.session.kwargs())
            )
        except NotFoundError:
            return None
        return node_record(node)

    def cordon(self, name: str) -> None:
        core = self.session.core
        api_call(
            Target("patch", "nodes", name),
            lambda: core.patch_node(name, {"spec": {"unschedulable": True}}, **self.session.kwargs()),
        )

    def delete_node(self, name: str) -> None:
        core = self.session.core
        try:
            api_call(Target("delete", "nodes", name), lambda: core.delete_node(name, **self.session.kwargs()))
        except NotFoundError:
            return

    def pods_on(self, node: str) -> list[PodOnNode]:
        core = self.session.core
        pods = api_call(
            Target("list", "pods"),
            lambda: core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={node}", **self.session.kwargs()
            ),
        )
        out = []
        for pod in pods.items:
            meta = pod.metadata
            owners = meta.owner_references or []
            out.append(
                PodOnNode(
                    namespace=meta.namespace,
                    name=meta.name,
                    uid=meta.uid,
                    daemonset=any(o.kind == "DaemonSet" for o in owners),
                    mirror=MIRROR_ANNOTATION in (meta.annotations or {}),
                    terminating=meta.deletion_timestamp is not None,
                    finished=(pod.status.phase if pod.status else "") in ("Succeeded", "Failed"),
                )
            )
        return out

    def evict(self, pod: PodOnNode, *, grace_seconds: int) -> bool:
        """POST pods/eviction; False when a PodDisruptionBudget forbids it now (HTTP 429)."""
        from kubernetes.client.exceptions import ApiException

        core = self.session.core
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
            "deleteOptions": {"gracePeriodSeconds": grace_seconds, "preconditions": {"uid": pod.uid}},
        }
        target = Target("create", "pods/eviction", pod.name, pod.namespace)
        try:
            core.create_namespaced_pod_eviction(pod.name, pod.namespace, body, **self.session.kwargs())
        except ApiException as exc:
            if exc.status == 429:
                return False
            if exc.status in (404, 409):  # gone, or replaced by a new pod of the same name
                return True
            from kubectl_vcerts.kube.translate import translate

            raise translate(exc, target) from exc
        except Exception as exc:
            from kubectl_vcerts.kube.translate import translate

            raise translate(exc, target) from exc
        return True

    def pod_exists(self, pod: PodOnNode) -> bool:
        core = self.session.core
        try:
            found = api_call(
                Target("get", "pods", pod.name, pod.namespace),
                lambda: core.read_namespaced_pod(pod.name, pod.namespace, **self.session.kwargs()),
            )
        except NotFoundError:
            return False
        return bool(found.metadata.uid == pod.uid)

    def read_config_map(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """(data, annotations) of a ConfigMap, None when missing."""
        core = self.session.core
        try:
            cm = api_call(
                Target("get", "configmaps", name, namespace),
                lambda: core.read_namespaced_config_map(name, namespace, **self.session.kwargs()),
            )
        except NotFoundError:
            return None
        return dict(cm.data or {}), dict(cm.metadata.annotations or {})

    def create_token_secret(self, token: TokenSecret) -> None:
        core = self.session.core
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": token.type,
            "metadata": {"name": token.name, "namespace": token.namespace, "labels": dict(token.labels)},
            "stringData": dict(token.string_data),
        }
        api_call(
            Target("create", "secrets", token.name, token.namespace),
            lambda: core.create_namespaced_secret(token.namespace, body, **self.session.kwargs()),
            attempts=1,
        )  # a create is not idempotent: never retried blindly
