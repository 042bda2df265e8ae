"""Build the API client once, from a kubeconfig (file, context) or the in-cluster service account."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kubectl_vcerts.errors import NotFoundError, UsageError
from kubectl_vcerts.kube.kubeconfig import load_user_kubeconfig, select_context
from kubectl_vcerts.kube.proxy import proxy_for


@dataclass(frozen=True)
class KubeTarget:
    """Where to connect: kubectl's global flags."""

    kubeconfig: str | None = None  # None: $KUBECONFIG files merged, or ~/.kube/config, else in-cluster
    context: str | None = None
    namespace: str | None = None  # None: the context's namespace, else "default"
    request_timeout: float | None = None  # seconds per request
    in_cluster: bool = False


@dataclass
class KubeSession:
    """A connected API client plus the namespace kubectl would use. Build with `connect`."""

    api_client: Any
    namespace: str
    request_timeout: float | None = None
    context_name: str | None = None
    _apis: dict[str, Any] = field(default_factory=dict, repr=False)

    def _api(self, name: str) -> Any:
        if name not in self._apis:
            from kubernetes import client as k8s

            self._apis[name] = getattr(k8s, name)(self.api_client)
        return self._apis[name]

    @cached_property
    def core(self) -> Any:
        return self._api("CoreV1Api")

    @cached_property
    def apps(self) -> Any:
        return self._api("AppsV1Api")

    @cached_property
    def coordination(self) -> Any:
        return self._api("CoordinationV1Api")

    @cached_property
    def custom(self) -> Any:
        return self._api("CustomObjectsApi")

    @cached_property
    def apiextensions(self) -> Any:
        return self._api("ApiextensionsV1Api")

    @cached_property
    def policy(self) -> Any:
        return self._api("PolicyV1Api")

    def kwargs(self) -> dict[str, Any]:
        """Per-request options every call passes (the --request-timeout)."""
        return {"_request_timeout": self.request_timeout} if self.request_timeout else {}

    def close(self) -> None:
        self.api_client.close()


def _in_cluster_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    try:
        return path.read_text().strip() or "default"
    except OSError:
        return "default"


def use_proxy(configuration: Any, proxy: str | None) -> None:
    """Send the client's requests through `proxy` (None: directly), with the credentials of its URL as
    Proxy-Authorization, as kubectl does (urllib3 does not read them from the URL)."""
    configuration.proxy = proxy
    configuration.no_proxy = None  # proxy_for applied NO_PROXY already
    configuration.proxy_headers = None
    if proxy:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(proxy)
        if parts.username is not None:
            import urllib3

            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            configuration.proxy_headers = urllib3.make_headers(proxy_basic_auth=credentials)


def _in_cluster(target: KubeTarget) -> KubeSession:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise UsageError(f"not running inside a cluster: {exc}") from exc
    use_proxy(configuration, proxy_for(configuration.host, None, os.environ))
    return KubeSession(
        api_client=k8s.ApiClient(configuration),
        namespace=target.namespace or _in_cluster_namespace(),
        request_timeout=target.request_timeout,
    )


def connect(target: KubeTarget) -> KubeSession:
    """Load credentials like kubectl does (kube/kubeconfig.py) and return a session. No request is sent
    yet."""
    if target.in_cluster:
        return _in_cluster(target)
    config = load_user_kubeconfig(target.kubeconfig)
    if config.empty and not target.kubeconfig:
        if "KUBERNETES_SERVICE_HOST" in os.environ:
            return _in_cluster(target)
        raise NotFoundError("no kubeconfig found", hint="pass --kubeconfig or set KUBECONFIG")
    chosen = select_context(config, target.context)
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config_from_dict(
            chosen.as_document(),
            context=chosen.context_name,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError) as exc:
        # The loader's messages name fields and files, never their values.
        raise UsageError(f"cannot use context {chosen.context_name!r} of {config.label()}: "
                         f"{type(exc).__name__}: {exc}"[:500]) from exc
    # The client reads no proxy-url and prefers HTTP_PROXY over HTTPS_PROXY; kubectl's rules instead.
    use_proxy(configuration, proxy_for(chosen.server, chosen.cluster.get("proxy-url"), os.environ))
    return KubeSession(
        api_client=k8s.ApiClient(configuration),
        namespace=target.namespace or chosen.namespace or "default",
        request_timeout=target.request_timeout,
        context_name=chosen.context_name,
    )
