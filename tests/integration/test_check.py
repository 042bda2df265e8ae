"""`kubectl vcerts check` as a user runs it (the installed entry point, a subprocess) against the real
control plane: statuses, exit codes, -A across namespaces, a crash-looping control plane, RBAC errors."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from kubectl_vcerts.errors import ExitCode, ForbiddenError
from kubectl_vcerts.kube.client import KubeSession, KubeTarget, connect
from kubectl_vcerts.kube.discovery import KubeReader
from kubectl_vcerts.rotation.discovery import find_vcluster
from tests.support.devcluster import DevCluster
from tests.support.vcluster import MakeVCluster, VClusterSpec, create_vcluster, delete_volumes

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / ".venv" / "bin" / "kubectl-vcerts"


def vcerts(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "kubectl_vcerts"]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [*command, *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def check_json(kubeconfig: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = vcerts(kubeconfig, "check", *args, "-o", "json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_healthy_vcluster_is_ok_and_exits_0(kube_cluster: DevCluster, make_vcluster: MakeVCluster) -> None:
    made = make_vcluster("vc")
    result = vcerts(kube_cluster.kubeconfig, "check", "vc", "-n", made.namespace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["FILENAME", "SUBJECT", "ISSUER", "EXPIRES", "ON", "STATUS", "REMAINING"]
    assert len(lines) == 1 + 15  # 5 CAs, 7 leaves, 3 kubeconfigs
    assert all(" OK " in line for line in lines[1:])
    code, doc = check_json(kube_cluster.kubeconfig, "vc", "-n", made.namespace)
    assert (code, doc["status"], doc["vcluster"]["distro"], doc["secret"]["found"]) == (0, "OK", "k8s", True)


def test_a_short_warning_window_and_a_long_one(kube_cluster: DevCluster, make_vcluster: MakeVCluster) -> None:
    made = make_vcluster("vc")
    code, doc = check_json(kube_cluster.kubeconfig, "vc", "-n", made.namespace, "--warn-within", "400d")
    assert (code, doc["status"]) == (ExitCode.CHECK_EXPIRING, "EXPIRING")
    expiring = {c["secretKey"] for c in doc["certificates"] if c["status"] == "EXPIRING"}
    assert "apiserver.crt" in expiring and "ca.crt" not in expiring


def test_expired_leaves_are_expired_and_exit_4_also_with_json(
    kube_cluster: DevCluster, make_vcluster: MakeVCluster
) -> None:
    made = make_vcluster("vc", expired_leaves=True)
    code, doc = check_json(kube_cluster.kubeconfig, "vc", "-n", made.namespace)
    assert (code, doc["status"]) == (ExitCode.CHECK_EXPIRED, "EXPIRED")
    statuses = {c["secretKey"]: c["status"] for c in doc["certificates"]}
    assert statuses["apiserver.crt"] == "EXPIRED" and statuses["ca.crt"] == "OK"
    table = vcerts(kube_cluster.kubeconfig, "check", "vc", "-n", made.namespace, "-o", "wide")
    assert table.returncode == ExitCode.CHECK_EXPIRED
    apiserver = next(line for line in table.stdout.splitlines() if line.startswith("apiserver.crt "))
    assert apiserver.split()[-1] == "expired"  # the FINDINGS column of -o wide


def test_a_crash_looping_control_plane_is_checked_read_only(
    kube_cluster: DevCluster, kube_session: KubeSession, make_vcluster: MakeVCluster
) -> None:
    made = make_vcluster("vc", pod_running=False, expired_leaves=True)
    before = kube_session.core.read_namespaced_secret("vc-certs", made.namespace).metadata.resource_version
    code, doc = check_json(kube_cluster.kubeconfig, "vc", "-n", made.namespace)
    assert (code, doc["status"], doc["vcluster"]["status"]) == (
        ExitCode.CHECK_EXPIRED,
        "EXPIRED",
        "CrashLoopBackOff",
    )
    table = vcerts(kube_cluster.kubeconfig, "check", "vc", "-n", made.namespace)
    assert "vCluster status is CrashLoopBackOff" in table.stderr
    after = kube_session.core.read_namespaced_secret("vc-certs", made.namespace).metadata.resource_version
    assert before == after


def test_a_k3s_vcluster_is_checked_and_its_distro_reported(
    kube_cluster: DevCluster, make_vcluster: MakeVCluster
) -> None:
    made = make_vcluster("vc", distro="k3s", version="0.24.0")
    code, doc = check_json(kube_cluster.kubeconfig, "vc", "-n", made.namespace)
    assert (code, doc["vcluster"]["distro"], doc["vcluster"]["version"]) == (0, "k3s", "0.24.0")


def test_not_found_lists_other_namespaces_and_exits_10(
    kube_cluster: DevCluster, make_vcluster: MakeVCluster
) -> None:
    name = f"vc-{os.urandom(3).hex()}"
    made = make_vcluster(name)
    result = vcerts(kube_cluster.kubeconfig, "check", name, "-n", "default")
    assert result.returncode == ExitCode.NOT_FOUND
    assert result.stderr.splitlines() == [
        f"kubectl vcerts: error: vcluster {name} not found in namespace default; found in: {made.namespace}",
        f"  hint: use -n {made.namespace}",
    ]


@pytest.fixture
def more_namespaces(kube_session: KubeSession) -> Iterator[list[str]]:
    names = [f"{kube_session.namespace[:50]}-{i}" for i in (2, 3)]
    for name in names:
        kube_session.core.create_namespace({"metadata": {"name": name, "labels": {"vcerts.io/test": "true"}}})
    yield names
    for name in names:
        kube_session.core.delete_namespace(name, propagation_policy="Background")


def test_check_all_namespaces_has_one_row_per_vcluster(
    kube_cluster: DevCluster,
    kube_session: KubeSession,
    make_vcluster: MakeVCluster,
    more_namespaces: list[str],
) -> None:
    make_vcluster("alpha")
    make_vcluster("beta", persistence=False)
    second = create_vcluster(
        kube_session, name="alpha", namespace=more_namespaces[0], spec=VClusterSpec(expired_leaves=True)
    )
    third = create_vcluster(
        kube_session, name="gamma", namespace=more_namespaces[1], spec=VClusterSpec(version="0.23.0")
    )
    try:
        # vCluster < 0.24 wrote NAME-certs without labels: the one list misses it, a get finds it.
        kube_session.core.patch_namespaced_secret(
            "gamma-certs", third.namespace, {"metadata": {"labels": {"app": None, "vcluster-name": None}}}
        )
        mine = {kube_session.namespace, *more_namespaces}
        code, doc = check_json(kube_cluster.kubeconfig, "-A")
        rows = {(i["namespace"], i["name"]): i for i in doc["items"] if i["namespace"] in mine}
        assert set(rows) == {
            (kube_session.namespace, "alpha"),
            (kube_session.namespace, "beta"),
            (second.namespace, "alpha"),
            (third.namespace, "gamma"),
        }
        assert rows[(second.namespace, "alpha")]["certificates"] == "EXPIRED"
        assert rows[(third.namespace, "gamma")]["secret"]["found"] is True
        assert rows[(third.namespace, "gamma")]["version"] == "0.23.0"
        assert rows[(kube_session.namespace, "beta")]["kind"] == "Deployment"
        assert all(i["earliestLeafNotAfter"] and i["caNotAfter"] for i in rows.values())
        assert code == ExitCode.CHECK_EXPIRED  # the expired one decides
        table = vcerts(kube_cluster.kubeconfig, "check", "-A")
        assert table.stdout.splitlines()[0].split()[:4] == ["NAMESPACE", "NAME", "VERSION", "STATUS"]
        assert any(
            line.startswith(second.namespace) and "EXPIRED" in line for line in table.stdout.splitlines()
        )
        named_code, named = check_json(kube_cluster.kubeconfig, "alpha", "beta", "-n", kube_session.namespace)
        assert (named_code, sorted(i["name"] for i in named["items"])) == (0, ["alpha", "beta"])
    finally:
        delete_volumes(kube_session, second)
        delete_volumes(kube_session, third)


# ------------------------------------------------------------------------------------------ RBAC


def _token_kubeconfig(
    kube_cluster: DevCluster, session: KubeSession, tmp_path: Path, *, rules: list[dict[str, Any]]
) -> Path:
    """A kubeconfig for a ServiceAccount allowed only `rules` in the test namespace (TokenRequest token)."""
    ns = session.namespace
    session.core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    rbac = k8s.RbacAuthorizationV1Api(session.api_client)
    rbac.create_namespaced_role(ns, {"metadata": {"name": "reader"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        },
    )
    token = session.core.create_namespaced_service_account_token(
        "reader", ns, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    admin = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:
        data = Path(cluster.pop("certificate-authority")).read_bytes()
        cluster["certificate-authority-data"] = base64.b64encode(data).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "reader",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "reader", "context": {"cluster": "c", "user": "reader", "namespace": ns}}],
    }
    path = tmp_path / "reader.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def test_only_get_on_secrets_gives_a_forbidden_error_naming_verb_and_resource(
    kube_cluster: DevCluster, kube_session: KubeSession, make_vcluster: MakeVCluster, tmp_path: Path
) -> None:
    make_vcluster("vc")
    kubeconfig = _token_kubeconfig(
        kube_cluster,
        kube_session,
        tmp_path,
        rules=[{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    )
    result = vcerts(kubeconfig, "check", "vc")
    assert result.returncode == ExitCode.FORBIDDEN, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        f"kubectl vcerts: error: forbidden: cannot list statefulsets.apps in namespace "
        f"{kube_session.namespace}"
    )
    assert lines[1] == (
        f"  hint: ask for RBAC permission to list statefulsets.apps in namespace {kube_session.namespace}"
    )
    assert "Traceback" not in result.stderr
    # The kubernetes-client reader (exec plugins, in-cluster) reports the same error for the same token.
    session = connect(KubeTarget(kubeconfig=str(kubeconfig)))
    try:
        with pytest.raises(ForbiddenError, match=r"cannot list statefulsets\.apps in namespace"):
            find_vcluster(KubeReader(session), name="vc", namespace=session.namespace)
    finally:
        session.close()


def test_read_only_rbac_is_enough_for_check(
    kube_cluster: DevCluster, kube_session: KubeSession, make_vcluster: MakeVCluster, tmp_path: Path
) -> None:
    make_vcluster("vc")
    kubeconfig = _token_kubeconfig(
        kube_cluster,
        kube_session,
        tmp_path,
        rules=[
            {"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": ["get", "list"]},
            {"apiGroups": ["apps"], "resources": ["statefulsets", "deployments"], "verbs": ["list"]},
        ],
    )
    result = vcerts(kubeconfig, "check", "vc")
    assert result.returncode == 0, result.stderr
    # -A cannot list cluster-wide: like vCluster, fall back to the context's namespace.
    code, doc = check_json(kubeconfig, "-A")
    assert (code, [(i["namespace"], i["name"]) for i in doc["items"]]) == (
        0,
        [(kube_session.namespace, "vc")],
    )


def test_version_reports_the_server_when_reachable(kube_cluster: DevCluster) -> None:
    result = vcerts(kube_cluster.kubeconfig, "version", "-o", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["server"].startswith("v1.")
    unreachable = kube_cluster.kubeconfig.parent / "nowhere.kubeconfig"
    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable.write_text(yaml.safe_dump(config))
    try:
        offline = vcerts(unreachable, "version", "--request-timeout", "2s")
    finally:
        unreachable.unlink()
    assert offline.returncode == 0
    assert "Server:         unreachable (cannot reach the API server" in offline.stdout
