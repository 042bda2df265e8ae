"""The light read client (kube/rest.py): which kubeconfigs it takes, how it maps HTTP failures, and that
it retries an unreachable server a bounded number of times (a closed loopback port, no fake server)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from kubectl_vcerts.errors import (
    ApiError,
    ConflictError,
    ExitCode,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnreachableError,
    VcertsError,
)
from kubectl_vcerts.kube.client import KubeTarget
from kubectl_vcerts.kube.rest import RestClient, RestConfig, http_error, load_rest_config
from kubectl_vcerts.kube.translate import Target


def _kubeconfig(
    tmp_path: Path,
    *,
    user: dict[str, Any],
    cluster: dict[str, Any] | None = None,
    namespace: str | None = None,
    extra_context: bool = False,
) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    contexts = [{"name": "main", "context": context}]
    if extra_context:
        contexts.append({"name": "other", "context": {"cluster": "c", "user": "u", "namespace": "elsewhere"}})
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {
                "name": "c",
                "cluster": cluster
                or {"server": "https://127.0.0.1:6443", "certificate-authority": "pki/ca.crt"},
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": contexts,
    }
    (tmp_path / "pki").mkdir(exist_ok=True)
    (tmp_path / "pki" / "ca.crt").write_bytes(b"CA FILE")
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_files_are_read_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "admin.crt").write_bytes(b"CERT")
    (tmp_path / "pki" / "admin.key").write_bytes(b"KEY")
    path = _kubeconfig(tmp_path, user={"client-certificate": "pki/admin.crt", "client-key": "pki/admin.key"})
    config = load_rest_config(KubeTarget(kubeconfig=str(path)))
    assert config is not None
    assert (config.server, config.ca_data, config.client_cert, config.client_key) == (
        "https://127.0.0.1:6443",
        b"CA FILE",
        b"CERT",
        b"KEY",
    )
    assert config.namespace == "default"
    assert "KEY" not in repr(config)


def test_inline_data_token_context_and_namespace(tmp_path: Path) -> None:
    ca = base64.b64encode(b"INLINE CA").decode()
    path = _kubeconfig(
        tmp_path,
        user={"token": "t0ken"},
        extra_context=True,
        cluster={"server": "https://127.0.0.1:6443/prefix/", "certificate-authority-data": ca},
    )
    config = load_rest_config(KubeTarget(kubeconfig=str(path), context="other"))
    assert config is not None
    assert (config.server, config.ca_data, config.token, config.namespace, config.context_name) == (
        "https://127.0.0.1:6443/prefix",
        b"INLINE CA",
        "t0ken",
        "elsewhere",
        "other",
    )
    flagged = load_rest_config(KubeTarget(kubeconfig=str(path), namespace="flag-wins", request_timeout=5.0))
    assert flagged is not None and (flagged.namespace, flagged.request_timeout) == ("flag-wins", 5.0)


@pytest.mark.parametrize(
    ("user", "cluster", "target"),
    [
        pytest.param({"exec": {"command": "aws"}}, None, {}, id="an exec plugin needs the kubernetes client"),
        pytest.param({"auth-provider": {"name": "oidc"}}, None, {}, id="an auth provider needs it too"),
        pytest.param(
            {"token": "t"},
            {"server": "https://x:1", "proxy-url": "https://proxy:3128"},
            {},
            id="an https proxy needs it",
        ),
        pytest.param(
            {"token": "t"},
            {"server": "https://x:1", "proxy-url": "socks5://proxy:1080"},
            {},
            id="a socks proxy needs it",
        ),
        pytest.param({"as": "someone-else"}, None, {}, id="impersonation needs it"),
        pytest.param({"token": "t"}, None, {"in_cluster": True}, id="in-cluster without a ServiceAccount"),
    ],
)
def test_what_it_cannot_honour_is_left_to_the_kubernetes_client(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None, target: dict[str, Any]
) -> None:
    path = _kubeconfig(tmp_path, user=user, cluster=cluster)
    assert load_rest_config(KubeTarget(kubeconfig=str(path), **target)) is None


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        pytest.param(404, NotFoundError, "secrets/vc-certs in namespace a not found", id="404 is not found"),
        pytest.param(
            403,
            ForbiddenError,
            "forbidden: cannot get secrets/vc-certs in namespace a (denied)",
            id="403 names verb and resource",
        ),
        pytest.param(401, UnauthorizedError, "unauthorized while trying to get secrets/vc-certs",
                     id="401 is unauthorized, a kind of forbidden (the same exit code)"),
        pytest.param(409, ConflictError, "conflict: secrets/vc-certs", id="409 is a conflict"),
        pytest.param(503, UnreachableError, "HTTP 503", id="503 is unreachable"),
        pytest.param(422, ApiError, "HTTP 422 denied", id="anything else is an API error"),
    ],
)
def test_http_failures_map_like_the_gateway(status: int, error: type[VcertsError], text: str) -> None:
    made = http_error(status, b'{"message": "denied"}', Target("get", "secrets", "vc-certs", "a"))
    assert isinstance(made, error)
    assert made.message.startswith(text) or text in made.message
    if status == 403:
        assert made.hint == "ask for RBAC permission to get secrets in namespace a"
    if status == 401:
        assert isinstance(made, ForbiddenError) and made.exit_code == ExitCode.FORBIDDEN


def test_an_unreachable_server_is_retried_a_bounded_number_of_times() -> None:
    sleeps: list[float] = []
    client = RestClient(
        RestConfig(server="http://127.0.0.1:1", namespace="a", context_name=None), sleep=sleeps.append
    )
    with pytest.raises(UnreachableError, match="cannot reach the API server to list pods"):
        client.get("/api/v1/pods", Target("list", "pods"))
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)
    client.close()


def test_an_http_proxy_and_a_tls_server_name_are_honoured(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, user={"token": "t"}, cluster={
        "server": "https://api.example:6443", "proxy-url": "http://user:pw@127.0.0.1:3128",
        "tls-server-name": "kubernetes.default"})

    config = load_rest_config(KubeTarget(kubeconfig=str(path)), environ={})

    assert config is not None
    assert config.proxy == "http://user:pw@127.0.0.1:3128"
    assert config.tls_server_name == "kubernetes.default"
    assert "pw" not in repr(config)


def test_an_unknown_context_is_the_same_error_on_both_paths(tmp_path: Path) -> None:
    from kubectl_vcerts.kube.client import connect

    path = _kubeconfig(tmp_path, user={"token": "t"})
    target = KubeTarget(kubeconfig=str(path), context="missing")
    errors = []
    for load in (load_rest_config, connect):
        with pytest.raises(NotFoundError) as info:
            load(target)
        errors.append(info.value.message)
    assert errors[0] == errors[1] == f"context 'missing' not found in {path}"


# ------------------------------------------------------------------------------------------ in a pod
def _account(tmp_path: Path) -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("tok-1\n")
    (account / "ca.crt").write_bytes(b"CLUSTER CA")
    (account / "namespace").write_text("vcerts-system\n")
    return account


def test_in_a_pod_the_service_account_is_used_like_client_go(tmp_path: Path) -> None:
    account = _account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
           "KUBECONFIG": str(tmp_path / "none")}
    config = load_rest_config(KubeTarget(in_cluster=True), environ=env, account=account)
    assert config is not None
    assert (config.server, config.namespace, config.ca_data, config.token) == (
        "https://10.96.0.1:443", "vcerts-system", b"CLUSTER CA", "tok-1")
    assert config.token_file == str(account / "token") and "tok-1" not in repr(config)
    # no kubeconfig at all: connect's rule, the ServiceAccount when in a pod
    implicit = load_rest_config(KubeTarget(namespace="other"), environ={**env, "HOME": str(tmp_path)},
                                account=account)
    assert implicit is not None and implicit.namespace == "other"
    v6 = load_rest_config(KubeTarget(in_cluster=True), environ={**env, "KUBERNETES_SERVICE_HOST": "fd00::1"},
                          account=account)
    assert v6 is not None and v6.server == "https://[fd00::1]:443"
    assert load_rest_config(KubeTarget(in_cluster=True), environ={}, account=account) is None


class _Api(http.server.BaseHTTPRequestHandler):
    """A loopback stand-in that records what it is sent and answers a POST of an Event (409 once it
    exists)."""

    seen: ClassVar[list[tuple[str, str, str, bytes]]] = []
    names: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers.get("Authorization", ""), b""))
        self._send(200, {"kind": "SecretList", "items": []})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(("POST", self.path, self.headers.get("Content-Type", ""), body))
        name = json.loads(body)["metadata"]["name"]
        if name in self.names:
            self._send(409, {"kind": "Status", "reason": "AlreadyExists", "message": f"{name} exists"})
        else:
            self.names.add(name)
            self._send(201, json.loads(body))

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def api() -> Any:
    _Api.seen, _Api.names = [], set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_rotated_token_file_is_read_again_after_a_minute(tmp_path: Path, api: Any) -> None:
    token = tmp_path / "token"
    token.write_text("old")
    clock = [1000.0]
    host, port = api.server_address[:2]
    client = RestClient(RestConfig(server=f"http://{host}:{port}", namespace="a", context_name=None,
                                   token="old", token_file=str(token)), monotonic=lambda: clock[0])
    target = Target("list", "secrets")
    client.get("/api/v1/secrets", target)
    token.write_text("new\n")
    clock[0] += 30
    client.get("/api/v1/secrets", target)
    clock[0] += 31
    client.get("/api/v1/secrets", target)
    client.close()
    assert [auth for _, _, auth, _ in _Api.seen] == ["Bearer old", "Bearer old", "Bearer new"]


def test_an_event_is_posted_once_and_a_second_create_is_a_conflict(api: Any) -> None:
    from kubectl_vcerts.kube.events import RestEventRecorder
    from kubectl_vcerts.rotation.ports import EventSubject

    host, port = api.server_address[:2]
    client = RestClient(RestConfig(server=f"http://{host}:{port}", namespace="a", context_name=None))
    recorder = RestEventRecorder(client, instance="pod-1")
    subject = EventSubject("apps/v1", "StatefulSet", "vc", "team-a", "uid-1")
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    kwargs: dict[str, Any] = {"name": "vc.vcerts-expired-20261203", "reason": "CertificatesExpired",
                              "message": "ended", "now": now}
    assert recorder.record_once(subject, **kwargs) is True
    assert recorder.record_once(subject, **kwargs) is False
    client.close()
    method, path, content_type, body = _Api.seen[0]
    assert (method, path, content_type) == ("POST", "/api/v1/namespaces/team-a/events", "application/json")
    event = json.loads(body)
    assert event["involvedObject"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "vc",
                                       "namespace": "team-a", "uid": "uid-1"}
    assert (event["type"], event["reason"], event["firstTimestamp"]) == (
        "Warning", "CertificatesExpired", "2026-12-03T12:00:00Z")
    with pytest.raises(ConflictError):
        RestClient(client.config).post("/api/v1/namespaces/team-a/events", event,
                                       Target("create", "events", "x", "team-a"))
