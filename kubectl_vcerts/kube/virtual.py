"""How to reach the VIRTUAL cluster (inside a vCluster): its address, credentials and sessions.

How the plugin reaches the virtual API server, in this order:
  1. `--vcluster-server URL` when given (credentials and CA still come from the vCluster's PKI);
  2. the server written in `vc-NAME` (key `config`) by vCluster's leader, when it answers;
  3. otherwise (no server written, or it does not answer one bounded probe) a port-forward through the
     host API to the newest Ready control-plane pod's port 8443, as `vcluster connect` does
     (`kube.portforward`; used by `open_gateway`, which closes it with the gateway). The server is
     then https://127.0.0.1:<port>: the serving certificate has localhost/127.0.0.1 SANs.

Credentials: the admin kubeconfig of `vc-NAME`, or `admin.conf` from `NAME-certs` (or, after a CA
change, from the new PKI the workflow wrote). `_reach` is the one implementation of that order, for the
gateway (kube/virtual_nodes.py) and for `check --live`'s served certificate. Every request goes through
`api_call`.
Imports kubernetes only inside functions; never logs credentials.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kubectl_vcerts import contract, kubeyaml
from kubectl_vcerts.errors import (
    InvalidPkiError,
    NotFoundError,
    UnauthorizedError,
    UnreachableError,
    UntrustedServerError,
    VcertsError,
)
from kubectl_vcerts.kube.client import KubeSession, use_proxy
from kubectl_vcerts.kube.proxy import proxy_for
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.kube.virtual_nodes import VirtualGateway

if TYPE_CHECKING:
    from kubectl_vcerts.kube.portforward import Forward

T = TypeVar("T")

PROBE_TIMEOUT = 5.0  # seconds for the reachability probe (GET /version)


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


def _stored_admin(host: KubeSession, *, namespace: str, vcluster: str) -> dict[str, Any] | None:
    """admin.conf of NAME-certs (None when it holds none)."""
    from kubectl_vcerts.kube.backups import read_secret_value

    admin = read_secret_value(host, namespace=namespace, name=contract.certs_secret_name(vcluster),
                              key="admin.conf")
    return _load(admin, where="admin.conf") if admin else None


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
        stored = _stored_admin(host, namespace=namespace, vcluster=vcluster)
        if stored is None:
            raise NotFoundError(
                f"no admin credentials for vCluster {namespace}/{vcluster} (neither "
                f"{contract.kubeconfig_secret_name(vcluster)} nor admin.conf in "
                f"{contract.certs_secret_name(vcluster)})",
                hint="is the vCluster running? check `kubectl vcerts check`",
            )
        base = stored
    return base, vc_doc


def _same_credentials(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two kubeconfigs trust the same CAs and hold the same users."""

    def parts(doc: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
        clusters = [((c or {}).get("cluster") or {}) for c in doc.get("clusters") or ()]
        return ([c.get("certificate-authority-data") for c in clusters],
                [(u or {}).get("user") for u in doc.get("users") or ()])

    return parts(one) == parts(other)


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
        except UnauthorizedError as exc:
            session.close()
            # vCluster's syncer answers 401 to a client certificate its client-ca does not verify: the
            # admin credentials and the running pods belong to different CAs
            raise UnauthorizedError(
                f"the virtual API server at {endpoint.server} (from {endpoint.source}) rejected the "
                "vCluster's admin credentials (HTTP 401 Unauthorized)",
                hint="their CA is not the one the running pods trust: after a CA change the pods must "
                "restart (`kubectl vcerts check` names the pods not restarted), and vCluster rewrites "
                "its kubeconfig secret once they serve",
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


def _reach(
    host: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    server: str | None,
    vc_doc: Mapping[str, Any] | None,
    through: Callable[[str, str], T],
    forwarded: Callable[[Forward], T],
) -> T:
    """The one way to the virtual API server (the module docstring's order): `--vcluster-server` alone
    when given; else the server vc-NAME names, and when it names none or does not answer from here, a
    port-forward to the control-plane pod's port 8443. `through(server, source)` tries one address
    (raising UnreachableError when it does not answer); `forwarded(forward)` owns the open forward."""
    if server:
        return through(server, "--vcluster-server")
    written = server_in(vc_doc) if vc_doc is not None else ""
    if written:
        try:
            return through(written, contract.kubeconfig_secret_name(vcluster))
        except UnreachableError:
            pass  # not reachable from here: fall back to the port-forward, as `vcluster connect` does
    from kubectl_vcerts.kube.portforward import open_forward

    return forwarded(open_forward(host, namespace=namespace, vcluster=vcluster))


def _forward_source(forward: Forward) -> str:
    return f"port-forward to pod {forward.pod}:{forward.port}"


def served_certificate(
    host: KubeSession, *, namespace: str, vcluster: str, server: str | None = None
) -> tuple[bytes, str, str]:
    """(DER of the certificate the virtual API serves, the server asked, where that came from); the
    port-forward, when one is needed, is closed again once the handshake is done."""

    def through(address: str, source: str) -> tuple[bytes, str, str]:
        return fetch_served_certificate(address), address, source

    def forwarded(forward: Forward) -> tuple[bytes, str, str]:
        with forward:
            return fetch_served_certificate(forward.server), forward.server, _forward_source(forward)

    vc_doc = read_vc_kubeconfig(host, namespace=namespace, vcluster=vcluster)
    return _reach(host, namespace=namespace, vcluster=vcluster, server=server, vc_doc=vc_doc,
                  through=through, forwarded=forwarded)


def open_gateway(
    host: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    server: str | None = None,
    credentials: bytes | None = None,
    request_timeout: float | None = None,
) -> VirtualGateway:
    """Reach (one probe per address), connect and wrap: the usual way commands get a VirtualGateway.
    `credentials`: an admin kubeconfig (e.g. admin.conf of a new PKI) to use instead of vc-NAME's."""
    base, vc_doc = admin_kubeconfig(host, namespace=namespace, vcluster=vcluster, credentials=credentials)

    def connect(server: str, source: str) -> KubeSession:
        """vc-NAME's credentials first; when the server refuses them or they do not trust it, those of
        NAME-certs' admin.conf: vCluster's leader rewrites vc-NAME only a moment after it starts, so
        just after a CA change vc-NAME still holds the previous CA's (while after --no-restart it is
        vc-NAME that matches the running pods)."""
        try:
            return connect_virtual(VirtualEndpoint(server=server, source=source,
                                                   kubeconfig=with_server(base, server)),
                                   request_timeout=request_timeout)
        except (UntrustedServerError, UnauthorizedError):
            stored = _stored_admin(host, namespace=namespace, vcluster=vcluster) if base is vc_doc else None
            if stored is None or _same_credentials(stored, base):
                raise
        return connect_virtual(VirtualEndpoint(server=server, source=source,
                                               kubeconfig=with_server(stored, server)),
                               request_timeout=request_timeout)

    def through(address: str, source: str) -> VirtualGateway:
        return VirtualGateway(connect(address, source))

    def forwarded(forward: Forward) -> VirtualGateway:
        try:
            session = connect(forward.server, _forward_source(forward))
        except BaseException:
            forward.close()
            raise
        return VirtualGateway(session, forward=forward)  # closed with the gateway

    return _reach(host, namespace=namespace, vcluster=vcluster, server=server, vc_doc=vc_doc,
                  through=through, forwarded=forwarded)
