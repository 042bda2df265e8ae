"""The light read client (kube/rest.py): which kubeconfigs it takes, how it maps HTTP failures, and that
it retries an unreachable server a bounded number of times (a closed loopback port, no fake server)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_vcerts.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
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
        pytest.param({"token": "t"}, None, {"in_cluster": True}, id="in-cluster config needs it"),
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
