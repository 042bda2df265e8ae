"""Gateway to the VIRTUAL cluster (inside a vCluster): reach it, and the few verbs private nodes need.

How the plugin reaches the virtual API server, in this order:
  1. `--vcluster-server URL` when given (credentials and CA still come from the vCluster's PKI);
  2. the server written in `vc-NAME` (key `config`) by vCluster's leader, when it answers;
  3. otherwise (no server written, or it does not answer one bounded probe) a port-forward through the
     host API to the newest Ready control-plane pod's port 8443, as `vcluster connect` does
     (`kube.portforward`; used by `open_gateway`, which closes it with the gateway). The server is
     then https://127.0.0.1:<port>: the serving certificate has localhost/127.0.0.1 SANs.

Credentials: the admin kubeconfig of `vc-NAME`, or `admin.conf` from `NAME-certs` (or, after a CA
change, from the new PKI the workflow wrote). `VirtualGateway` implements
`rotation.nodes.VirtualNodesPort` (nodes list/cordon/delete, pods on a node, evictions, the
bootstrap-token Secret, `kube-root-ca.crt`, `kubeadm-config`). Every request goes through `api_call`.
Imports kubernetes only inside functions; never logs credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_vcerts import contract, kubeyaml
from kubectl_vcerts.errors import InvalidPkiError, NotFoundError, UnreachableError, VcertsError
from kubectl_vcerts.kube.client import KubeSession, use_proxy
from kubectl_vcerts.kube.proxy import proxy_for
from kubectl_vcerts.kube.translate import Target, api_call

if TYPE_CHECKING:
    from kubectl_vcerts.kube.portforward import Forward
from kubectl_vcerts.rotation.join_tokens import TokenSecret
from kubectl_vcerts.rotation.nodes import NodeRecord, PodOnNode

PROBE_TIMEOUT = 5.0  # seconds for the reachability probe (GET /version)
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class VirtualEndpoint:
    """Where and how to reach the virtual API server. `kubeconfig` holds credentials: never log it."""

    server: str
    source: str  # "--vcluster-server" | "vc-NAME" | "port-forward to pod NAME:8443"
    kubeconfig: dict[str, Any]

    def __repr__(self) -> str:
        return f"VirtualEndpoint(server={self.server!r}, source={self.source!r})"


def _load(text: bytes, *, where: str) -> dict[str, Any]:
    try:
        doc = kubeyaml.load_mapping(text)
    except kubeyaml.YamlError as exc:
        raise InvalidPkiError(f"{where} is not a kubeconfig ({exc})",
                              hint="check the vCluster's secrets") from exc
    if not doc.get("clusters") or not doc.get("users"):
        raise InvalidPkiError(
            f"{where} is not a kubeconfig with a cluster and a user", hint="check the vCluster's secrets"
        )
    return doc


def with_server(doc: Mapping[str, Any], server: str) -> dict[str, Any]:
    """A copy of a kubeconfig document whose every cluster points at `server`."""
    copy = deepcopy(dict(doc))
    for cluster in copy.get("clusters") or []:
        cluster.setdefault("cluster", {})["server"] = server
    return copy


def server_in(doc: Mapping[str, Any]) -> str:
    clusters = doc.get("clusters") or []
    return str(((clusters[0] or {}).get("cluster") or {}).get("server") or "") if clusters else ""



def read_vc_kubeconfig(host: KubeSession, *, namespace: str, vcluster: str) -> dict[str, Any] | None:
    """The kubeconfig vCluster's leader wrote into `vc-NAME` (None when the secret or key is missing)."""
    from kubectl_vcerts.kube.secrets import get_secret

    name = contract.kubeconfig_secret_name(vcluster)
    try:
        secret = get_secret(host, namespace=namespace, name=name)
    except NotFoundError:
        return None
    text = secret.data.get("config")
    return _load(text, where=f"secret {name} key config") if text else None


def build_session(doc: Mapping[str, Any], *, request_timeout: float | None = None) -> KubeSession:
    """A KubeSession for a kubeconfig document (client certificate or token, embedded CA)."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config_from_dict(
            dict(doc), client_configuration=configuration, persist_config=False
        )
    except ConfigException as exc:
        raise InvalidPkiError(
            f"cannot use the vCluster admin kubeconfig: {exc}",
            hint="check vc-NAME / admin.conf in NAME-certs",
        ) from exc
    # The virtual API is reached like any server kubectl talks to: the environment's proxy rules.
    use_proxy(configuration, proxy_for(configuration.host, None, os.environ))
    return KubeSession(
        api_client=k8s.ApiClient(configuration), namespace="default", request_timeout=request_timeout
    )


def probe(session: KubeSession, *, timeout: float = PROBE_TIMEOUT) -> None:
    """GET /version once (no retries): raises UnreachableError / ForbiddenError / ApiError."""
    from kubernetes import client as k8s

    api = k8s.VersionApi(session.api_client)
    api_call(Target("get", "version"), lambda: api.get_code(_request_timeout=timeout), attempts=1)


def resolve_virtual(
    host: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    server: str | None = None,
    credentials: bytes | None = None,
) -> VirtualEndpoint:
    """Pick the server and credentials to reach the virtual API server (see the module docstring).

    `credentials`: an admin kubeconfig (e.g. admin.conf of a new PKI) to use instead of vc-NAME's.
    """
    base, vc_doc = admin_kubeconfig(host, namespace=namespace, vcluster=vcluster, credentials=credentials)
    if server:
        return VirtualEndpoint(
            server=server, source="--vcluster-server", kubeconfig=with_server(base, server)
        )
    written = server_in(vc_doc) if vc_doc is not None else ""
    if not written:
        raise UnreachableError(
            f"no server for the virtual cluster of {namespace}/{vcluster}",
            hint="pass --vcluster-server URL (e.g. after `vcluster connect`, or a LoadBalancer/Ingress URL)",
        )
    return VirtualEndpoint(
        server=written,
        source=contract.kubeconfig_secret_name(vcluster),
        kubeconfig=with_server(base, written),
    )


def admin_kubeconfig(
    host: KubeSession, *, namespace: str, vcluster: str, credentials: bytes | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the admin kubeconfig to use, vc-NAME's kubeconfig or None); see resolve_virtual."""
    vc_doc = read_vc_kubeconfig(host, namespace=namespace, vcluster=vcluster)
    if credentials is not None:
        base = _load(credentials, where="admin.conf")
    elif vc_doc is not None:
        base = vc_doc
    else:
        from kubectl_vcerts.kube.backups import read_secret_value

        admin = read_secret_value(
            host, namespace=namespace, name=contract.certs_secret_name(vcluster), key="admin.conf"
        )
        if not admin:
            raise NotFoundError(
                f"no admin credentials for vCluster {namespace}/{vcluster} (neither "
                f"{contract.kubeconfig_secret_name(vcluster)} nor admin.conf in "
                f"{contract.certs_secret_name(vcluster)})",
                hint="is the vCluster running? check `kubectl vcerts check`",
            )
        base = _load(admin, where="admin.conf")
    return base, vc_doc


def connect_virtual(
    endpoint: VirtualEndpoint, *, request_timeout: float | None = None, check: bool = True
) -> KubeSession:
    """A session to the virtual API server; with `check`, one probe proves it answers."""
    session = build_session(endpoint.kubeconfig, request_timeout=request_timeout)
    if check:
        try:
            probe(session)
        except UnreachableError as exc:
            session.close()
            raise UnreachableError(
                f"cannot reach the virtual API server at {endpoint.server} (from {endpoint.source})",
                hint="pass --vcluster-server URL reachable from here (or allow `create pods/portforward` "
                "so kubectl vcerts can forward to the pod's port 8443)",
            ) from exc
        except VcertsError:
            session.close()
            raise
    return session


def fetch_served_certificate(server: str, *, timeout: float = PROBE_TIMEOUT) -> bytes:
    """DER of the leaf certificate the server presents (TLS handshake only; verified by the caller)."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    url = urlsplit(server)
    host, port = url.hostname or "", url.port or 443
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we compare the certificate ourselves (pki.served)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise UnreachableError(
            f"cannot reach the virtual API server at {server} ({type(exc).__name__})",
            hint="pass --vcluster-server URL reachable from here",
        ) from exc
    if not der:
        raise UnreachableError(f"{server} presented no certificate", hint="is it a TLS endpoint?")
    return der


def served_certificate(
    host: KubeSession, *, namespace: str, vcluster: str, server: str | None = None
) -> tuple[bytes, str, str]:
    """(DER of the certificate the virtual API serves, the server asked, where that came from).

    Same ways as `open_gateway`: --vcluster-server, else vc-NAME's server, else a port-forward to the
    control-plane pod's port 8443 (closed again once the handshake is done).
    """
    if not server:
        _, vc_doc = admin_kubeconfig(host, namespace=namespace, vcluster=vcluster)
        server = server_in(vc_doc) if vc_doc is not None else ""
        source = contract.kubeconfig_secret_name(vcluster)
    else:
        source = "--vcluster-server"
    if server:
        try:
            return fetch_served_certificate(server), server, source
        except UnreachableError:
            if source == "--vcluster-server":
                raise
    from kubectl_vcerts.kube.portforward import open_forward

    with open_forward(host, namespace=namespace, vcluster=vcluster) as forward:
        der = fetch_served_certificate(forward.server)
        return der, forward.server, f"port-forward to pod {forward.pod}:{forward.port}"


# ------------------------------------------------------------------------------------- gateway
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


def open_gateway(
    host: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    server: str | None = None,
    credentials: bytes | None = None,
    request_timeout: float | None = None,
) -> VirtualGateway:
    """Resolve, connect (one probe) and wrap: the usual way commands get a VirtualGateway.

    Without `server`, when vc-NAME names no server or it does not answer, go through a port-forward.
    """
    if server:
        endpoint = resolve_virtual(
            host, namespace=namespace, vcluster=vcluster, server=server, credentials=credentials
        )
        return VirtualGateway(connect_virtual(endpoint, request_timeout=request_timeout))
    base, vc_doc = admin_kubeconfig(host, namespace=namespace, vcluster=vcluster, credentials=credentials)
    written = server_in(vc_doc) if vc_doc is not None else ""
    if written:
        endpoint = VirtualEndpoint(
            server=written,
            source=contract.kubeconfig_secret_name(vcluster),
            kubeconfig=with_server(base, written),
        )
        try:
            return VirtualGateway(connect_virtual(endpoint, request_timeout=request_timeout))
        except UnreachableError:
            pass  # not reachable from here: fall back to the port-forward, as `vcluster connect` does
    return forwarded_gateway(
        host, namespace=namespace, vcluster=vcluster, base=base, request_timeout=request_timeout
    )


def forwarded_gateway(
    host: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    base: Mapping[str, Any],
    request_timeout: float | None = None,
) -> VirtualGateway:
    """A gateway through a port-forward to the control-plane pod's port 8443 (closed with it)."""
    from kubectl_vcerts.kube.portforward import open_forward

    forward = open_forward(host, namespace=namespace, vcluster=vcluster)
    endpoint = VirtualEndpoint(
        server=forward.server,
        source=f"port-forward to pod {forward.pod}:{forward.port}",
        kubeconfig=with_server(base, forward.server),
    )
    try:
        session = connect_virtual(endpoint, request_timeout=request_timeout)
    except BaseException:
        forward.close()
        raise
    return VirtualGateway(session, forward=forward)
