"""The shipped manifests (kubectl_vcerts/deploy/) as a test uses them: rendered by the real kustomize
(`kubectl kustomize`), moved into the test's namespace with cluster-scoped names made unique, their
ServiceAccount and RBAC applied, and a kubeconfig holding that ServiceAccount's token (TokenRequest) —
so that a program run here runs with exactly the permissions the manifests grant."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.testbin import binary

DEPLOY = Path(__file__).resolve().parents[2] / "kubectl_vcerts" / "deploy"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


def render(directory: str) -> list[dict[str, Any]]:
    """`kubectl kustomize kubectl_vcerts/deploy/<directory>`: the documents a user applies."""
    out = subprocess.run([str(binary("kubectl")), "kustomize", str(DEPLOY / directory)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def relocate(docs: list[dict[str, Any]], *, namespace: str, prefix: str) -> list[dict[str, Any]]:
    """The documents as if rendered for `namespace` (every namespace field, subjects included), with
    cluster-scoped objects (and references to them) prefixed so that tests never share them."""
    source = {d["metadata"]["namespace"] for d in docs if d["metadata"].get("namespace")}
    assert len(source) == 1, source
    [old] = source
    cluster_scoped = {d["metadata"]["name"] for d in docs
                      if d["kind"] in ("ClusterRole", "ClusterRoleBinding")}
    text = yaml.safe_dump_all(docs)
    moved = [d for d in yaml.safe_load_all(text.replace(f"namespace: {old}\n", f"namespace: {namespace}\n"))
             if d]
    for doc in moved:
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"]["name"] = f"{prefix}-{doc['metadata']['name']}"
        ref = doc.get("roleRef")
        if ref and ref["kind"] == "ClusterRole" and ref["name"] in cluster_scoped:
            ref["name"] = f"{prefix}-{ref['name']}"
    return moved


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def container_args(docs: list[dict[str, Any]]) -> list[str]:
    """The args of the one container of the Deployment or CronJob in `docs`."""
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] in ("Deployment", "CronJob"):
            [container] = spec["template"]["spec"]["containers"]
            return list(container["args"])
    raise AssertionError("no Deployment or CronJob")


def _ns(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["namespace"])


@contextmanager
def applied_rbac(session: Any, docs: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Create the ServiceAccount and RBAC objects of `docs`; delete the cluster-scoped ones afterwards."""
    from kubernetes import client as k8s

    rbac = k8s.RbacAuthorizationV1Api(session.api_client)
    made = [d for d in docs if d["kind"] in RBAC_KINDS]
    create = {
        "ServiceAccount": lambda d: session.core.create_namespaced_service_account(_ns(d), d),
        "Role": lambda d: rbac.create_namespaced_role(_ns(d), d),
        "RoleBinding": lambda d: rbac.create_namespaced_role_binding(_ns(d), d),
        "ClusterRole": rbac.create_cluster_role,
        "ClusterRoleBinding": rbac.create_cluster_role_binding,
    }
    for doc in sorted(made, key=lambda d: RBAC_KINDS.index(d["kind"])):
        create[doc["kind"]](doc)
    try:
        yield made
    finally:
        for doc in made:
            if doc["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(doc["metadata"]["name"])
            elif doc["kind"] == "ClusterRole":
                rbac.delete_cluster_role(doc["metadata"]["name"])


def service_account_kubeconfig(kube_cluster: Any, session: Any, *, namespace: str, name: str,
                               path: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount `name` (a TokenRequest token), context
    namespace `namespace` — what the pod's in-cluster config would give it."""
    token = session.core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    cluster = dict(admin["clusters"][0]["cluster"])
    if "certificate-authority" in cluster:
        data = Path(cluster.pop("certificate-authority")).read_bytes()
        cluster["certificate-authority-data"] = base64.b64encode(data).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": name, "namespace": namespace}}],
    }))
    path.chmod(0o600)
    return path
