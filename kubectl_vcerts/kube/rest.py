"""A small HTTPS client for the API server, for the commands that read (`check`, completion, the
exporter) and the one create they send (Events).

Why: importing the `kubernetes` package costs about half a second — more than the whole request —
and `check` should cost little more than `kubectl get secret`. This client reads the kubeconfig itself
(the subset kubectl users have in plain files: server, certificate-authority[-data],
insecure-skip-tls-verify, client-certificate[-data]/client-key[-data], token/tokenFile, basic auth) and
sends GETs with the standard library, directly or through an http:// proxy (kubectl's proxy rules,
kube/proxy.py). It reads the kubeconfig through kube/kubeconfig.py, as the kubernetes-client path does.
In a pod without a kubeconfig it uses the ServiceAccount (KUBERNETES_SERVICE_HOST/PORT, the mounted
token and CA) as client-go's in-cluster config does; a token file (in-cluster or `tokenFile`) is read
again every minute, as client-go does, so that rotated ServiceAccount tokens keep a long-running
exporter authenticated. `open_rest(target)` returns None for anything it does not cover (exec plugins,
auth providers, impersonation, https and socks proxies): callers then use the kubernetes client.
A server certificate that fails verification is refused at once, with the same error as that path.

Errors are ours (same messages as kube/translate.py); transient failures (connection errors, 429,
5xx) are retried a bounded number of times with backoff and jitter. Never imports kubernetes.
"""

from __future__ import annotations

import base64
import functools
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
    UnreachableError,
    UsageError,
    VcertsError,
)
from kubectl_vcerts.kube.client import KubeTarget
from kubectl_vcerts.kube.kubeconfig import load_user_kubeconfig, select_context
from kubectl_vcerts.kube.proxy import proxy_for
from kubectl_vcerts.kube.translate import TRANSIENT_STATUS, Target, error_for_status, tls_failure

ATTEMPTS = 4
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_RELOAD_SECONDS = 60.0


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
    proxy: str | None = field(default=None, repr=False)  # an http:// proxy (may hold credentials)
    tls_server_name: str | None = None  # the name to verify instead of the server's host
    token_file: str | None = None  # read again every TOKEN_RELOAD_SECONDS (rotated tokens)


def _bytes(section: Mapping[str, Any], key: str) -> bytes | None:
    """`key-data` (base64) or the file `key` (kube/kubeconfig.py made its path absolute)."""
    data = section.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    path = section.get(key)
    return Path(path).read_bytes() if path else None


# Authentication only the kubernetes client implements (plugins, impersonation).
_NEEDS_CLIENT = ("exec", "auth-provider", "as", "as-uid", "as-groups", "as-user-extra", "impersonate")


def in_cluster_config(target: KubeTarget, env: Mapping[str, str], *,
                      account: Path = SERVICE_ACCOUNT_DIR) -> RestConfig | None:
    """client-go's in-cluster config: the API server from KUBERNETES_SERVICE_HOST/PORT, the mounted
    ServiceAccount token and CA; None outside a pod (then `connect` words the error)."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    token_file = account / "token"
    if not host or not port or not token_file.is_file():
        return None
    server = f"https://{f'[{host}]' if ':' in host else host}:{port}"
    proxy = proxy_for(server, None, env)
    if proxy is not None and urlsplit(proxy).scheme != "http":
        return None
    try:
        namespace = (account / "namespace").read_text().strip() if (account / "namespace").is_file() else ""
        return RestConfig(server=server, namespace=target.namespace or namespace or "default",
                          context_name=None, ca_data=(account / "ca.crt").read_bytes(),
                          token=token_file.read_text().strip(), token_file=str(token_file),
                          request_timeout=target.request_timeout, proxy=proxy)
    except OSError:
        return None


def load_rest_config(target: KubeTarget, *, environ: Mapping[str, str] | None = None,
                     account: Path = SERVICE_ACCOUNT_DIR) -> RestConfig | None:
    """The connection settings of the context kubectl would use, or None when this client cannot
    honour them (then the kubernetes client does). Kubeconfig errors are raised as `connect` raises
    them: both read the files through kube/kubeconfig.py."""
    env = os.environ if environ is None else environ
    if target.in_cluster:
        return in_cluster_config(target, env, account=account)
    config = load_user_kubeconfig(target.kubeconfig, environ=env)
    if config.empty and not target.kubeconfig:
        # connect's rule: in a pod, its ServiceAccount; elsewhere connect says "no kubeconfig found"
        return in_cluster_config(target, env, account=account) if "KUBERNETES_SERVICE_HOST" in env else None
    chosen = select_context(config, target.context)
    cluster, user = chosen.cluster, chosen.user
    if any(user.get(k) for k in _NEEDS_CLIENT):
        return None
    proxy = proxy_for(chosen.server, cluster.get("proxy-url"), env)
    if proxy is not None and (urlsplit(proxy).scheme != "http" or not chosen.server.startswith("https:")):
        return None  # https and socks proxies, plain-http servers: the kubernetes client (urllib3)
    try:
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = Path(user["tokenFile"]).read_text().strip()
        basic = (str(user["username"]), str(user.get("password", ""))) if user.get("username") else None
        return RestConfig(
            server=chosen.server.rstrip("/"),
            namespace=target.namespace or chosen.namespace or "default",
            context_name=chosen.context_name,
            ca_data=_bytes(cluster, "certificate-authority"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            client_cert=_bytes(user, "client-certificate"),
            client_key=_bytes(user, "client-key"),
            token=token or None,
            basic=basic,
            request_timeout=target.request_timeout,
            proxy=proxy,
            tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
            token_file=None if user.get("token") else user.get("tokenFile"),
        )
    except (OSError, ValueError, KeyError):
        return None  # unreadable files and bad data: the kubernetes client reports them


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
    """kube.translate's mapping, for a raw HTTP status and body."""
    return error_for_status(status, _message(body), target)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl() \
        if parts.hostname else url


@functools.cache
def _tls_connection_class() -> type:
    import http.client

    class TlsConnection(http.client.HTTPSConnection):
        """HTTPS to the API server, directly or through an http:// proxy's CONNECT tunnel, verifying the
        certificate against `server_name` (the kubeconfig's tls-server-name, else the server's host)."""

        def __init__(self, host: str, port: int, *, timeout: float, context: Any, server_name: str,
                     proxy: str | None) -> None:
            if proxy is None:
                super().__init__(host, port, timeout=timeout, context=context)
            else:
                parts = urlsplit(proxy)
                super().__init__(parts.hostname or "", parts.port or 80, timeout=timeout, context=context)
                headers = {}
                if parts.username is not None:
                    from urllib.parse import unquote

                    raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
                    headers["Proxy-Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
                self.set_tunnel(host, port, headers=headers)
            self.tls = context
            self.server_name = server_name

        def connect(self) -> None:
            # TCP to the server or the proxy (plus CONNECT when tunnelling), then TLS with our name.
            http.client.HTTPConnection.connect(self)
            self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.server_name)

    return TlsConnection


class _Transient(Exception):
    def __init__(self, error: VcertsError) -> None:
        super().__init__(error.message)
        self.error = error


class RestClient:
    """GETs (and POSTs) JSON to the API server over one kept-alive HTTPS connection."""

    def __init__(self, config: RestConfig, *, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._sleep = sleep
        self._monotonic = monotonic
        self._token_read = monotonic()
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
                connection_class = _tls_connection_class()
                self._connection = connection_class(
                    self._host, self._port or 443, timeout=timeout, context=_ssl_context(self.config),
                    server_name=self.config.tls_server_name or self._host, proxy=self.config.proxy)
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        return self._connection

    def _fresh_token(self) -> None:
        """Read the token file again once a minute: the kubelet rotates a pod's ServiceAccount token."""
        if not self.config.token_file or self._monotonic() - self._token_read < TOKEN_RELOAD_SECONDS:
            return
        try:
            token = Path(self.config.token_file).read_text().strip()
        except OSError:
            return  # keep the one we have; the API server says when it has expired
        self._token_read = self._monotonic()
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _once(self, method: str, url: str, target: Target, body: bytes | None = None) -> Any:
        self._fresh_token()
        connection = self._connect()
        headers = self._headers if body is None else {**self._headers, "Content-Type": "application/json"}
        try:
            connection.request(method, url, body=body, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, TimeoutError) as exc:
            self.close()
            untrusted = tls_failure(exc, target)
            if untrusted is not None:
                raise untrusted from None  # never retried: kubectl refuses this server too
            via = f" through proxy {_without_credentials(self.config.proxy)}" if self.config.proxy else ""
            raise _Transient(UnreachableError(
                f"cannot reach the API server{via} to {target.verb} {target.describe()}")) from exc
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
        return self._retried("GET", url, target)

    def post(self, path: str, document: Mapping[str, Any], target: Target) -> Any:
        """POST `document` (a create) and return the created object. Retried like GETs: only for
        creates that may run twice, where the second one is a 409 AlreadyExists (ConflictError)."""
        return self._retried("POST", self._prefix + path, target, json.dumps(document).encode())

    def _retried(self, method: str, url: str, target: Target, body: bytes | None = None) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                return self._once(method, url, target, body)
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
