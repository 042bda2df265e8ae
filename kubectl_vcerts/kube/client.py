"""Build the API client once, from a kubeconfig (file, context) or the in-cluster service account."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kubectl_vcerts.errors import NotFoundError, UsageError


@dataclass(frozen=True)
class KubeTarget:
    """Where to connect: kubectl's global flags."""

    kubeconfig: str | None = None  # None: $KUBECONFIG or ~/.kube/config, else in-cluster
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

    @cached_property
    def authentication(self) -> Any:
        return self._api("AuthenticationV1Api")

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


def connect(target: KubeTarget) -> KubeSession:
    """Load credentials like kubectl does and return a session. No request is sent yet."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    if target.in_cluster:
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise UsageError(f"not running inside a cluster: {exc}") from exc
        return KubeSession(
            api_client=k8s.ApiClient(configuration),
            namespace=target.namespace or _in_cluster_namespace(),
            request_timeout=target.request_timeout,
        )

    config_file = target.kubeconfig or os.environ.get("KUBECONFIG") or None
    if config_file and os.pathsep in config_file:
        # kubectl merges a list of files; the Python client reads the first that exists.
        existing = [p for p in config_file.split(os.pathsep) if p and Path(p).exists()]
        config_file = existing[0] if existing else None
    if config_file is None:
        default = Path.home() / ".kube" / "config"
        if default.exists():
            config_file = str(default)
        elif "KUBERNETES_SERVICE_HOST" in os.environ:
            return connect(KubeTarget(namespace=target.namespace, request_timeout=target.request_timeout,
                                      in_cluster=True))
        else:
            raise NotFoundError("no kubeconfig found", hint="pass --kubeconfig or set KUBECONFIG")
    if not Path(config_file).exists():
        raise NotFoundError(f"kubeconfig {config_file} does not exist", hint="check --kubeconfig/KUBECONFIG")
    import yaml

    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=config_file)
    except ConfigException as exc:
        raise UsageError(f"cannot read kubeconfig {config_file}: {exc}") from exc
    except yaml.YAMLError as exc:
        # Never echo the parser's snippet: a kubeconfig line may hold client-key-data.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(
            f"cannot read kubeconfig {config_file}: not valid YAML{where}",
            hint="check --kubeconfig/KUBECONFIG points at a kubeconfig file",
        ) from exc
    chosen = active
    if target.context:
        chosen = next((c for c in contexts if c["name"] == target.context), None)
        if chosen is None:
            raise NotFoundError(
                f"context {target.context!r} not found in {config_file}",
                hint="list contexts with `kubectl config get-contexts`",
            )
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=config_file,
            context=chosen["name"] if chosen else None,
            client_configuration=configuration,
            persist_config=False,
        )
    except ConfigException as exc:
        raise UsageError(f"cannot use kubeconfig {config_file}: {exc}") from exc
    namespace = target.namespace or ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return KubeSession(
        api_client=k8s.ApiClient(configuration),
        namespace=namespace,
        request_timeout=target.request_timeout,
        context_name=chosen["name"] if chosen else None,
    )
