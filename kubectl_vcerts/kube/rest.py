"""A small read-only HTTPS client for the API server, for commands that only read (`check`, completion).

Why: importing the `kubernetes` package costs about half a second — more than the whole request —
and `check` should cost little more than `kubectl get secret`. This client reads the kubeconfig itself
(the subset kubectl users have in plain files: server, certificate-authority[-data],
insecure-skip-tls-verify, client-certificate[-data]/client-key[-data], token/tokenFile, basic auth) and
sends GETs with the standard library. `open_rest(target)` returns None for anything it does not cover
(exec plugins, auth providers, proxies, in-cluster config): callers then use the kubernetes client.

Errors are ours (same messages as kube/translate.py); transient failures (connection errors, 429,
5xx) are retried a bounded number of times with backoff and jitter. Never imports kubernetes.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from kubectl_vcerts.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnreachableError,
    UsageError,
    VcertsError,
)
from kubectl_vcerts.kube.client import KubeTarget
from kubectl_vcerts.kube.translate import TRANSIENT_STATUS, Target

ATTEMPTS = 4


@dataclass(frozen=True)
class RestConfig:
    """What a plain kubeconfig says about one context (files already resolved to bytes)."""

    server: str
    namespace: str
    context_name: str | None
    ca_data: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    client_cert: bytes | None = field(default=None, repr=False)
    client_key: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    basic: tuple[str, str] | None = field(default=None, repr=False)
    request_timeout: float | None = None


def _kubeconfig_path(target: KubeTarget) -> Path | None:
    """The file `kube.client.connect` would read (first existing entry of a KUBECONFIG list)."""
    value = target.kubeconfig or os.environ.get("KUBECONFIG") or None
    if value and os.pathsep in value:
        existing = [p for p in value.split(os.pathsep) if p and Path(p).exists()]
        value = existing[0] if existing else None
    if value is None:
        default = Path.home() / ".kube" / "config"
        return default if default.exists() else None
    return Path(value)


def _named(items: Any, name: str | None) -> Mapping[str, Any] | None:
    for item in items or ():
        if isinstance(item, Mapping) and item.get("name") == name:
            return item
    return None


def _bytes(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """`key-data` (base64) or the file `key` (relative to the kubeconfig's directory)."""
    data = section.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    path = section.get(key)
    if path:
        full = Path(path) if Path(path).is_absolute() else base / path
        return full.read_bytes()
    return None


def load_rest_config(target: KubeTarget) -> RestConfig | None:
    """The connection settings, or None when this client cannot honour the kubeconfig."""
    if target.in_cluster:
        return None
    path = _kubeconfig_path(target)
    if path is None or not path.exists():
        return None  # let kube.client.connect report it (or use in-cluster config)
    from kubectl_vcerts import kubeyaml  # parses kubectl's kubeconfigs without importing PyYAML

    try:
        doc = kubeyaml.load(path.read_text())
    except (OSError, kubeyaml.YamlError):
        return None
    if not isinstance(doc, Mapping):
        return None
    context_name = target.context or doc.get("current-context")
    context_entry = _named(doc.get("contexts"), context_name)
    if context_entry is None:
        return None
    context = context_entry.get("context") or {}
    cluster = (_named(doc.get("clusters"), context.get("cluster")) or {}).get("cluster") or {}
    user = (_named(doc.get("users"), context.get("user")) or {}).get("user") or {}
    if not cluster.get("server") or cluster.get("proxy-url") or cluster.get("tls-server-name"):
        return None
    if any(user.get(k) for k in ("exec", "auth-provider", "as", "as-groups", "impersonate")):
        return None
    base = path.parent
    try:
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token_path = Path(user["tokenFile"])
            token = (token_path if token_path.is_absolute() else base / token_path).read_text().strip()
        basic = (str(user["username"]), str(user.get("password", ""))) if user.get("username") else None
        return RestConfig(
            server=str(cluster["server"]).rstrip("/"),
            namespace=target.namespace or context.get("namespace") or "default",
            context_name=context_name,
            ca_data=_bytes(cluster, "certificate-authority", base),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            client_cert=_bytes(user, "client-certificate", base),
            client_key=_bytes(user, "client-key", base),
            token=token or None,
            basic=basic,
            request_timeout=target.request_timeout,
        )
    except (OSError, ValueError, KeyError):
        return None


def _ssl_context(config: RestConfig) -> Any:
    import ssl
    import tempfile

    if config.ca_data and not config.insecure:
        # Only the cluster's CA is trusted (as kubectl does); loading the system bundle costs 80 ms.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=config.ca_data.decode("ascii", "replace"))
    else:
        context = ssl.create_default_context()
    if config.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.client_cert and config.client_key:
        # ssl loads client credentials only from files: a private directory, removed at once.
        with tempfile.TemporaryDirectory(prefix="vcerts-") as tmp:
            cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
            for path, data in ((cert, config.client_cert), (key, config.client_key)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(data)
            context.load_cert_chain(str(cert), str(key))
    return context


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message") or "").strip()
    except (ValueError, AttributeError):
        return ""


def http_error(status: int, body: bytes, target: Target) -> VcertsError:
    """The same mapping as kube.translate.translate, for a raw HTTP status."""
    detail, what = _message(body), target.describe()
    if status == 404:
        return NotFoundError(f"{what} not found")
    if status == 403:
        return ForbiddenError(
            f"forbidden: cannot {target.verb} {what}" + (f" ({detail})" if detail else ""),
            hint=f"ask for RBAC permission to {target.verb} {target.resource}"
            + (f" in namespace {target.namespace}" if target.namespace else ""),
        )
    if status == 401:
        return ForbiddenError(f"unauthorized while trying to {target.verb} {what}",
                              hint="your credentials were rejected; refresh the kubeconfig")
    if status == 409:
        return ConflictError(f"conflict: {what} was changed by someone else while we tried to "
                             f"{target.verb} it", hint="nothing was changed by this command; run it again")
    if status in TRANSIENT_STATUS:
        return UnreachableError(f"API server failed to {target.verb} {what}: HTTP {status} {detail}".strip())
    return ApiError(f"cannot {target.verb} {what}: HTTP {status} {detail}".strip())


class _Transient(Exception):
    def __init__(self, error: VcertsError) -> None:
        super().__init__(error.message)
        self.error = error


class RestClient:
    """GETs JSON from the API server over one kept-alive HTTPS connection."""

    def __init__(self, config: RestConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._connection: Any = None
        parts = urlsplit(config.server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise UsageError(f"kubeconfig server {config.server!r} is not an http(s) URL")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": "kubectl-vcerts"}
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"
        elif config.basic:
            raw = f"{config.basic[0]}:{config.basic[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def _connect(self) -> Any:
        import http.client

        if self._connection is None:
            timeout = self.config.request_timeout or 30.0
            if self._scheme == "https":
                context = _ssl_context(self.config)
                self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                                               context=context)
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        return self._connection

    def _once(self, url: str, target: Target) -> Any:
        connection = self._connect()
        try:
            connection.request("GET", url, headers=self._headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, TimeoutError) as exc:
            self.close()
            raise _Transient(UnreachableError(
                f"cannot reach the API server to {target.verb} {target.describe()}")) from exc
        except Exception:
            self.close()
            raise
        if 200 <= response.status < 300:
            return json.loads(body)
        error = http_error(response.status, body, target)
        if response.status in TRANSIENT_STATUS:
            raise _Transient(error)
        raise error

    def get(self, path: str, target: Target, query: Mapping[str, str] | None = None) -> Any:
        """GET `path` (e.g. /api/v1/namespaces/x/secrets) and return the parsed JSON; retries transient
        failures up to ATTEMPTS times with exponential backoff and jitter."""
        url = self._prefix + path + (f"?{urlencode(dict(query))}" if query else "")
        for attempt in range(ATTEMPTS):
            try:
                return self._once(url, target)
            except _Transient as exc:
                if attempt == ATTEMPTS - 1:
                    raise exc.error from exc
                self._sleep(min(4.0, 0.2 * 2**attempt) + random.uniform(0, 0.1))  # noqa: S311 - jitter
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def open_rest(target: KubeTarget) -> RestClient | None:
    """A RestClient for `target`, or None when the kubeconfig needs the full kubernetes client."""
    config = load_rest_config(target)
    return None if config is None else RestClient(config)
