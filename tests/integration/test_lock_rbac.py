"""Missing RBAC for the lock Lease: a clear Forbidden naming the verb and resource, nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.rotation_support import backups, run_cli, snapshot

pytestmark = pytest.mark.cluster


def limited_kubeconfig(kube_cluster: Any, kube_session: Any, namespace: str, path: Path) -> Path:
    """A kubeconfig for a ServiceAccount that may do anything to core and apps objects, but not Leases."""
    name = "no-leases"
    kube_session.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac = kube_session.api_client
    from kubernetes import client as k8s

    api = k8s.RbacAuthorizationV1Api(rbac)
    api.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": name},
            "rules": [{"apiGroups": ["", "apps"], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    api.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = kube_session.core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    admin = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": name,
                        "context": {"cluster": cluster["name"], "user": name, "namespace": namespace},
                    }
                ],
                "current-context": name,
            }
        )
    )
    return path


def test_a_user_without_lease_permissions_gets_a_clear_forbidden_and_nothing_changes(
    kube_cluster: Any, kube_session: Any, make_vcluster: Any, tmp_path: Path
) -> None:
    vc = make_vcluster()
    config = limited_kubeconfig(kube_cluster, kube_session, vc.namespace, tmp_path / "limited.kubeconfig")
    before = snapshot(kube_session, vc.namespace, vc.name)
    result = run_cli(config, vc.namespace, "rotate", vc.name, "--yes")
    assert result.returncode == 16, result.stderr
    assert "forbidden: cannot create leases.coordination.k8s.io/vcerts-vc" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(kube_session, vc.namespace, vc.name) == before
    assert backups(kube_session, vc.namespace, vc.name) == []
