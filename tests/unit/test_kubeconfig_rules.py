"""kube/kubeconfig.py merges several files by kubectl's rules; tests/integration/test_kubeconfig_kubectl.py
holds the same cases against the real `kubectl config view`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubectl_vcerts.errors import NotFoundError, UsageError
from kubectl_vcerts.kube.kubeconfig import read_kubeconfig, select_context


def _write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc) if doc is not None else "")
    return path


def _config(
    clusters: dict[str, dict[str, object]],
    users: dict[str, dict[str, object]] | None = None,
    contexts: dict[str, dict[str, object]] | None = None,
    current: str | None = None,
) -> dict[str, object]:
    doc: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current is not None:
        doc["current-context"] = current
    return doc


def test_the_first_file_to_define_a_name_wins_whole_and_current_context_comes_from_the_first_that_sets_it(
    tmp_path: Path,
) -> None:
    first = _write(
        tmp_path / "a" / "config",
        _config(
            {"c": {"server": "https://first:1"}},
            {"u": {"token": "one"}},
            {"x": {"cluster": "c", "user": "u", "namespace": "ns-a"}},
        ),
    )
    second = _write(
        tmp_path / "b" / "config",
        _config(
            {
                "c": {"server": "https://second:1", "insecure-skip-tls-verify": True},
                "d": {"server": "https://d:1"},
            },
            {"u": {"token": "two", "username": "extra"}},
            {"x": {"cluster": "d", "user": "u"}, "y": {"cluster": "d", "user": "u"}},
            current="x",
        ),
    )

    config = read_kubeconfig([first, second])
    chosen = select_context(config, None)

    assert config.current_context == "x"
    assert (chosen.context_name, chosen.server, chosen.namespace) == ("x", "https://first:1", "ns-a")
    assert dict(chosen.cluster) == {"server": "https://first:1"}  # nothing of the second file's "c"
    assert dict(chosen.user) == {"token": "one"}
    assert select_context(config, "y").server == "https://d:1"
    assert {name: entry.file for name, entry in config.clusters.items()} == {"c": 0, "d": 1}


def test_relative_file_references_are_resolved_against_the_file_that_holds_them(tmp_path: Path) -> None:
    first = _write(
        tmp_path / "a" / "config",
        _config(
            {"c": {"server": "https://a:1", "certificate-authority": "pki/ca.crt"}},
            {
                "u": {
                    "client-certificate": "u.crt",
                    "client-key": "/abs/u.key",
                    "tokenFile": "../tok",
                    "exec": {"command": "./bin/login", "apiVersion": "client.authentication.k8s.io/v1"},
                },
                "v": {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}},
            },
            {"x": {"cluster": "c", "user": "u"}},
        ),
    )
    second = _write(
        tmp_path / "b" / "config",
        _config({"d": {"server": "https://b:1", "certificate-authority": "ca.crt"}}, current="x"),
    )

    config = read_kubeconfig([first, second])
    user = config.users["u"].body

    assert config.clusters["c"].body["certificate-authority"] == str(tmp_path / "a" / "pki" / "ca.crt")
    assert config.clusters["d"].body["certificate-authority"] == str(tmp_path / "b" / "ca.crt")
    assert user["client-certificate"] == str(tmp_path / "a" / "u.crt")
    assert user["client-key"] == "/abs/u.key"
    assert user["tokenFile"] == str(tmp_path / "a" / ".." / "tok")
    assert user["exec"]["command"] == str(tmp_path / "a" / "bin" / "login")
    assert config.users["v"].body["exec"]["command"] == "aws"  # a bare command is looked up on PATH


def test_empty_files_are_empty_configs(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty", None)
    real = _write(
        tmp_path / "config",
        _config({"c": {"server": "https://a:1"}}, contexts={"x": {"cluster": "c", "user": "u"}}, current="x"),
    )

    config = read_kubeconfig([empty, real])

    assert config.current_context == "x"
    assert select_context(config, None).user == {}  # a user nobody defines: no credentials
    assert read_kubeconfig([empty]).empty


@pytest.mark.parametrize(
    ("doc", "context", "error", "text"),
    [
        pytest.param(
            _config({"c": {"server": "https://a:1"}}, contexts={"x": {"cluster": "c"}}),
            None,
            UsageError,
            "no current context in",
            id="no current context and no --context",
        ),
        pytest.param(
            _config({"c": {"server": "https://a:1"}}, current="x"),
            None,
            NotFoundError,
            "context 'x' not found in",
            id="a current context nobody defines",
        ),
        pytest.param(
            _config({}, contexts={"x": {"cluster": "ghost"}}, current="x"),
            None,
            UsageError,
            "context 'x' names cluster 'ghost', which has no server",
            id="a context without its cluster",
        ),
        pytest.param(
            {"clusters": [{"name": "c", "cluster": {}}, {"name": "c", "cluster": {}}]},
            None,
            UsageError,
            "cluster 'c' is defined twice",
            id="a name twice in one file, as kubectl refuses",
        ),
        pytest.param("[1, 2]", None, UsageError, "not a kubeconfig", id="a YAML list is not a kubeconfig"),
    ],
)
def test_kubeconfigs_kubectl_cannot_use_are_errors_that_name_the_file(
    tmp_path: Path, doc: object, context: str | None, error: type[Exception], text: str
) -> None:
    path = tmp_path / "config"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))

    with pytest.raises(error) as info:
        select_context(read_kubeconfig([path]), context)

    assert text in str(info.value)
    assert str(path) in str(info.value)


def test_a_broken_file_is_named_without_its_contents(tmp_path: Path) -> None:
    good = _write(tmp_path / "good", _config({"c": {"server": "https://a:1"}}))
    bad = tmp_path / "bad"
    bad.write_text("users:\n- name: u\n  user: {client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t\n")

    with pytest.raises(UsageError) as info:
        read_kubeconfig([good, bad])

    assert str(bad) in info.value.message
    assert "LS0t" not in info.value.message
