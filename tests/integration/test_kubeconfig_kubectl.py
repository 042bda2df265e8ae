"""The user's kubeconfig as kubectl reads it, on every path: KUBECONFIG lists merged like kubectl, and
proxies (a kubeconfig proxy-url, HTTPS_PROXY, NO_PROXY) honoured like kubectl, through a real CONNECT
proxy on loopback. Each case runs the real kubectl beside the plugin.

Binaries-only cases compare kube/kubeconfig.py with `kubectl config view`; the cluster cases run the
plugin's commands: `check` (the light read client), `rotate`/`rotate-ca`/`restore` dry runs and
`backups list` (the kubernetes client).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_vcerts.kube.kubeconfig import load_user_kubeconfig, select_context
from tests.integration.rotation_support import REPO, cli_env
from tests.support.proxy import ConnectProxy
from tests.support.testbin import binary

# A name the kwok API server's certificate carries that does not resolve on this machine: only the
# test proxy (which maps it to 127.0.0.1) can reach it.
ALIAS = "kubernetes.default.svc.cluster.local"

# Every path that reads the kubeconfig: the light client, the kubernetes client, dry runs of writes.
COMMANDS = {
    "check (light read client)": ("check", "vc", "-o", "json"),
    "rotate --dry-run (kubernetes client)": ("rotate", "vc", "--dry-run"),
    "rotate-ca --dry-run": ("rotate-ca", "vc", "--dry-run"),
    "backups list": ("backups", "list", "vc"),
}


def _kubectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary("kubectl")), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def _plugin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in cli_env(env).items()
        if k.upper() not in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY") or k in env
    }
    return subprocess.run(
        [sys.executable, "-m", "kubectl_vcerts", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=clean,
        cwd=REPO,
        check=False,
    )


def _admin(kube_cluster: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    return doc


def _split(kube_cluster: Any, tmp_path: Path, namespace: str) -> tuple[Path, Path]:
    """The admin kubeconfig split in two files: the first (no current-context) holds the cluster,
    the user and a stale context of the same name pointing nowhere, the second the context kubectl
    uses (shadowed by the first file's definition) plus the current-context — kubectl's merge picks
    the first file's context, so that one points at the real cluster with the test namespace."""
    admin = _admin(kube_cluster)
    cluster, user = admin["clusters"][0], admin["users"][0]
    first = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [user],
        "contexts": [
            {
                "name": "work",
                "context": {"cluster": cluster["name"], "user": user["name"], "namespace": namespace},
            }
        ],
    }
    second = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "work",
        "clusters": [{"name": cluster["name"], "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "work", "context": {"cluster": "nowhere", "user": "nobody"}}],
    }
    a, b = tmp_path / "a" / "config", tmp_path / "b" / "config"
    for path, doc in ((a, first), (b, second)):
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(doc))
    return a, b


@pytest.mark.cluster
@pytest.mark.parametrize("args", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_kubeconfig_list_whose_first_file_has_no_current_context_works_like_kubectl(
    kube_cluster: Any, namespace: str, make_vcluster: Any, tmp_path: Path, args: tuple[str, ...]
) -> None:
    make_vcluster()
    a, b = _split(kube_cluster, tmp_path, namespace)
    env = {"KUBECONFIG": os.pathsep.join([str(a), str(tmp_path / "missing"), str(b)])}

    seen = _kubectl(env, "get", "statefulsets", "-o", "name")  # no -n: the context's namespace
    result = _plugin(env, *args)

    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == "statefulset.apps/vc"
    assert result.returncode == 0, result.stderr
    assert "vc" in result.stdout + result.stderr


@pytest.mark.binaries
def test_merged_contexts_and_relative_files_match_kubectl_config_view(tmp_path: Path) -> None:
    (tmp_path / "a" / "pki").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "pki" / "ca.crt").write_bytes(b"CA OF A")
    (tmp_path / "b" / "ca.crt").write_bytes(b"CA OF B")
    (tmp_path / "b" / "token").write_text("token-of-b")
    a = tmp_path / "a" / "config"
    a.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://a:1", "certificate-authority": "pki/ca.crt"}}
                ],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "from-a"}}],
            }
        )
    )
    b = tmp_path / "b" / "config"
    b.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "x",
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://b:1"}},
                    {"name": "d", "cluster": {"server": "https://d:1", "certificate-authority": "ca.crt"}},
                ],
                "users": [{"name": "u", "user": {"tokenFile": "token"}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "d", "user": "u"}},
                    {"name": "other", "context": {"cluster": "d", "user": "u"}},
                ],
            }
        )
    )
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {"KUBECONFIG": os.pathsep.join(map(str, (a, empty, tmp_path / "missing", b, a)))}

    merged = json.loads(_kubectl(env, "config", "view", "--merge", "--raw", "-o", "json").stdout)
    ours = load_user_kubeconfig(None, environ=env)

    assert ours.current_context == merged["current-context"] == "x"
    for section, mine in (("clusters", ours.clusters), ("users", ours.users), ("contexts", ours.contexts)):
        assert sorted(mine) == sorted(item["name"] for item in merged[section] or [])
    for context in ("x", "other"):
        flat = json.loads(
            _kubectl(
                env, "config", "view", "--minify", "--flatten", "--raw", "-o", "json", "--context", context
            ).stdout
        )
        chosen = select_context(ours, context)
        their_cluster = flat["clusters"][0]["cluster"]
        assert chosen.server == their_cluster["server"]
        assert chosen.namespace == flat["contexts"][0]["context"].get("namespace")
        ca = Path(chosen.cluster["certificate-authority"]).read_bytes()
        assert ca == base64.b64decode(their_cluster["certificate-authority-data"])
        # kubectl keeps a tokenFile as written and reads it relative to the file that holds it
        assert flat["users"][0]["user"]["tokenFile"] == "token"
        assert chosen.user["tokenFile"] == str(tmp_path / "b" / "token")


# ------------------------------------------------------------------------------------------ proxies
def _with_cluster(kube_cluster: Any, tmp_path: Path, namespace: str, **cluster: str) -> Path:
    doc = _admin(kube_cluster)
    doc["clusters"][0]["cluster"].update(cluster)
    doc["contexts"][0]["context"]["namespace"] = namespace
    path = tmp_path / "proxied.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _port(kube_cluster: Any) -> str:
    return str(_admin(kube_cluster)["clusters"][0]["cluster"]["server"]).rsplit(":", 1)[1]


@pytest.mark.cluster
def test_a_kubeconfig_proxy_url_carries_every_request_even_to_loopback(
    kube_cluster: Any, namespace: str, make_vcluster: Any, tmp_path: Path
) -> None:
    make_vcluster()
    with ConnectProxy() as proxy:
        config = _with_cluster(kube_cluster, tmp_path, namespace, **{"proxy-url": proxy.url})
        env = {"KUBECONFIG": str(config)}
        assert _kubectl(env, "get", "statefulsets").returncode == 0
        assert proxy.requests, "kubectl did not use the proxy"
        for args in COMMANDS.values():
            proxy.requests.clear()
            result = _plugin(env, *args)
            assert result.returncode == 0, (args, result.stderr)
            assert proxy.requests and set(proxy.requests) == {f"127.0.0.1:{_port(kube_cluster)}"}, args


@pytest.mark.cluster
def test_https_proxy_is_used_for_a_named_server_and_no_proxy_turns_it_off(
    kube_cluster: Any, namespace: str, make_vcluster: Any, tmp_path: Path
) -> None:
    make_vcluster()
    port = _port(kube_cluster)
    config = _with_cluster(kube_cluster, tmp_path, namespace, server=f"https://{ALIAS}:{port}")
    with ConnectProxy(aliases=[ALIAS]) as proxy:
        env = {"KUBECONFIG": str(config), "HTTPS_PROXY": proxy.url, "NO_PROXY": "example.invalid"}
        assert _kubectl(env, "get", "statefulsets").returncode == 0
        for args in COMMANDS.values():
            proxy.requests.clear()
            result = _plugin(env, *args)
            assert result.returncode == 0, (args, result.stderr)
            assert set(proxy.requests) == {f"{ALIAS}:{port}"}, args

        proxy.requests.clear()
        direct = {**env, "NO_PROXY": "127.0.0.1,.svc.cluster.local"}
        refused = _kubectl(direct, "get", "statefulsets", "--request-timeout", "5s")
        for args in (COMMANDS["check (light read client)"], COMMANDS["rotate --dry-run (kubernetes client)"]):
            result = _plugin(direct, "--request-timeout", "5s", *args)
            assert result.returncode == 17, (args, result.stderr)  # unreachable: the name does not resolve
        assert refused.returncode != 0
        assert proxy.requests == []


@pytest.mark.cluster
def test_the_environment_proxy_is_not_used_for_a_loopback_server(
    kube_cluster: Any, namespace: str, make_vcluster: Any, tmp_path: Path
) -> None:
    make_vcluster()
    config = _with_cluster(kube_cluster, tmp_path, namespace)
    with ConnectProxy() as proxy:
        env = {"KUBECONFIG": str(config), "HTTPS_PROXY": proxy.url}
        assert _kubectl(env, "get", "statefulsets").returncode == 0
        for args in COMMANDS.values():
            result = _plugin(env, *args)
            assert result.returncode == 0, (args, result.stderr)
        assert proxy.requests == []
