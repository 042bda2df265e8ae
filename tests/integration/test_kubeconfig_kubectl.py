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


def _doc(
    clusters: dict[str, Any] | None = None,
    users: dict[str, Any] | None = None,
    contexts: dict[str, Any] | None = None,
    current: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    for section, body, entries in (
        ("clusters", "cluster", clusters),
        ("users", "user", users),
        ("contexts", "context", contexts),
    ):
        if entries is not None:
            doc[section] = [{"name": name, body: value} for name, value in entries.items()]
    if current is not None:
        doc["current-context"] = current
    return doc


# Each case: the files of KUBECONFIG in order (None: the path does not exist; "": an empty file), as
# (relative path, document). Files the documents name ("pki/ca.crt", "token") are made next to them.
MERGE_CASES: dict[str, list[tuple[str, dict[str, Any] | str | None]]] = {
    "the first file has no current-context; the second sets it": [
        (
            "a/config",
            _doc(
                {"c": {"server": "https://a:1"}},
                {"u": {"token": "tok-a"}},
                {"x": {"cluster": "c", "user": "u", "namespace": "ns-a"}},
            ),
        ),
        ("b/config", _doc(contexts={"second": {"cluster": "c", "user": "u"}}, current="x")),
    ],
    "names defined in two files: the first file's definitions win whole": [
        (
            "a/config",
            _doc(
                {"c": {"server": "https://a:1"}},
                {"u": {"token": "tok-a"}},
                {"x": {"cluster": "c", "user": "u"}},
                current="x",
            ),
        ),
        (
            "b/config",
            _doc(
                {
                    "c": {"server": "https://b:1", "insecure-skip-tls-verify": True},
                    "d": {"server": "https://d:1"},
                },
                {"u": {"token": "tok-b", "username": "extra"}},
                {
                    "x": {"cluster": "d", "user": "u", "namespace": "ns-b"},
                    "other": {"cluster": "d", "user": "u"},
                },
                current="other",
            ),
        ),
    ],
    "relative file references are read next to the file that holds them": [
        (
            "a/config",
            _doc(
                {"c": {"server": "https://a:1", "certificate-authority": "pki/ca.crt"}},
                contexts={"x": {"cluster": "c", "user": "u", "namespace": "from-a"}},
            ),
        ),
        (
            "b/config",
            _doc(
                {"d": {"server": "https://d:1", "certificate-authority": "ca.crt"}},
                {"u": {"tokenFile": "token"}},
                {"other": {"cluster": "d", "user": "u"}},
                current="x",
            ),
        ),
    ],
    "empty, missing and repeated entries of KUBECONFIG are skipped": [
        ("empty", ""),
        ("missing", None),
        (
            "a/config",
            _doc(
                {"c": {"server": "https://a:1"}},
                {"u": {"token": "tok-a"}},
                {"x": {"cluster": "c", "user": "u"}},
                current="x",
            ),
        ),
        ("a/config", _doc()),  # the same path again: read once
    ],
}


def _lay_out(tmp_path: Path, files: list[tuple[str, dict[str, Any] | str | None]]) -> str:
    paths = []
    for relative, doc in files:
        path = tmp_path / relative
        paths.append(str(path))
        if doc is None or path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
        (path.parent / "pki").mkdir(exist_ok=True)
        (path.parent / "pki" / "ca.crt").write_text(f"CA next to {relative}")
        (path.parent / "ca.crt").write_text(f"other CA next to {relative}")
        (path.parent / "token").write_text(f"token next to {relative}")
    return os.pathsep.join(paths)


def _file_or_data(section: dict[str, Any], key: str) -> bytes | None:
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    return Path(section[key]).read_bytes() if section.get(key) else None


@pytest.mark.binaries
@pytest.mark.parametrize("files", MERGE_CASES.values(), ids=MERGE_CASES.keys())
def test_every_context_resolves_as_kubectl_config_view_shows_it(
    tmp_path: Path, files: list[tuple[str, dict[str, Any] | str | None]]
) -> None:
    env = {"KUBECONFIG": _lay_out(tmp_path, files)}
    merged = json.loads(_kubectl(env, "config", "view", "--merge", "--raw", "-o", "json").stdout)
    ours = load_user_kubeconfig(None, environ=env)

    assert ours.current_context == merged.get("current-context", "")
    for section, mine in (("clusters", ours.clusters), ("users", ours.users), ("contexts", ours.contexts)):
        assert sorted(mine) == sorted(item["name"] for item in merged.get(section) or [])
    for context in ours.contexts:
        flat = json.loads(
            _kubectl(
                env, "config", "view", "--minify", "--flatten", "--raw", "-o", "json", "--context", context
            ).stdout
        )
        chosen = select_context(ours, context)
        theirs = flat["clusters"][0]["cluster"]
        their_user = flat["users"][0]["user"] if flat.get("users") else {}
        assert chosen.server == theirs["server"]
        assert chosen.namespace == flat["contexts"][0]["context"].get("namespace")
        assert bool(chosen.cluster.get("insecure-skip-tls-verify")) == bool(
            theirs.get("insecure-skip-tls-verify")
        )
        assert _file_or_data(dict(chosen.cluster), "certificate-authority") == _file_or_data(
            theirs, "certificate-authority"
        )
        assert chosen.user.get("token") == their_user.get("token")
        assert chosen.user.get("username") == their_user.get("username")
        if their_user.get("tokenFile"):
            # kubectl keeps a tokenFile as written and reads it next to the file that holds it
            origin = Path(tmp_path / files[ours.users[chosen.user_name].file][0]).parent
            assert chosen.user["tokenFile"] == str(origin / their_user["tokenFile"])


@pytest.mark.binaries
def test_a_name_defined_twice_in_one_file_is_refused_like_kubectl(tmp_path: Path) -> None:
    twice = tmp_path / "config"
    twice.write_text(
        yaml.safe_dump(
            _doc(contexts={"x": {"cluster": "c"}}, current="x")
            | {
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://a:1"}},
                    {"name": "c", "cluster": {"server": "https://b:1"}},
                ]
            }
        )
    )
    env = {"KUBECONFIG": str(twice)}

    seen = _kubectl(env, "config", "view", "--merge", "--raw")
    ours = _plugin(env, "check", "vc")

    assert seen.returncode != 0 and 'duplicate name "c"' in seen.stderr
    assert ours.returncode == 2
    assert ours.stderr.splitlines()[0] == (
        f"kubectl vcerts: error: cannot read kubeconfig {twice}: cluster 'c' is defined twice"
    )


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
        # credentials in the proxy URL go to the proxy as Proxy-Authorization, as kubectl sends them
        with_credentials = proxy.url.replace("http://", "http://tester:s3cret@")
        config = _with_cluster(kube_cluster, tmp_path, namespace, **{"proxy-url": with_credentials})
        env = {"KUBECONFIG": str(config)}
        expected_auth = "Basic " + base64.b64encode(b"tester:s3cret").decode()
        assert _kubectl(env, "get", "statefulsets").returncode == 0
        assert proxy.requests, "kubectl did not use the proxy"
        assert set(proxy.authorizations) == {expected_auth}
        for args in COMMANDS.values():
            proxy.requests.clear()
            proxy.authorizations.clear()
            result = _plugin(env, *args)
            assert result.returncode == 0, (args, result.stderr)
            assert proxy.requests and set(proxy.requests) == {f"127.0.0.1:{_port(kube_cluster)}"}, args
            assert set(proxy.authorizations) == {expected_auth}, args


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
