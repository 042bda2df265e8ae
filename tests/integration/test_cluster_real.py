"""The local control plane is a real Kubernetes: CRDs and watches, RBAC, StatefulSet pods come back."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from kubectl_vcerts.kube.client import KubeSession
from tests.support.devcluster import DevCluster
from tests.support.polling import wait_until
from tests.support.vcluster import MakeVCluster, pod_ready, pod_status

pytestmark = pytest.mark.cluster


def _wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    return wait_until(check, timeout=timeout,
                      fail=lambda: AssertionError(f"{what} not reached within {timeout:.0f}s"))


def test_the_cluster_runs_the_pinned_kubernetes_on_loopback(kube_cluster: DevCluster) -> None:
    version = kube_cluster.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.36.3"' in version
    server = kube_cluster.kubectl("config", "view", "--minify", "-o",
                                  "jsonpath={.clusters[0].cluster.server}")
    assert server.stdout.startswith("https://127.0.0.1:")


@pytest.fixture
def widget_crd(kube_session: KubeSession) -> Iterator[tuple[str, str]]:
    """A namespaced CRD with a group unique to this test (CRDs are cluster-wide)."""
    group = f"t{secrets.token_hex(4)}.vcerts.test"
    name = f"widgets.{group}"
    kube_session.apiextensions.create_custom_resource_definition({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
            }],
        },
    })

    def established() -> bool:
        crd = kube_session.apiextensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    _wait_for("CRD Established", established)
    yield group, name
    kube_session.apiextensions.delete_custom_resource_definition(name)


def test_a_custom_resource_can_be_created_and_watched(kube_session: KubeSession,
                                                      widget_crd: tuple[str, str]) -> None:
    from kubernetes import watch

    group, _ = widget_crd
    ns = kube_session.namespace
    custom = kube_session.custom

    def listed() -> Any:
        try:
            return custom.list_namespaced_custom_object(group, "v1", ns, "widgets")
        except Exception as exc:  # the new resource may 404 for a moment after Established
            if getattr(exc, "status", None) == 404:
                return None
            raise

    start = _wait_for("widgets served", listed)["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(group, "v1", ns, "widgets", {
        "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}})
    custom.patch_namespaced_custom_object(group, "v1", ns, "widgets", "w1", {"spec": {"size": 4}})

    seen: list[tuple[str, int]] = []
    stream = watch.Watch().stream(custom.list_namespaced_custom_object, group, "v1", ns, "widgets",
                                  resource_version=start, timeout_seconds=20)
    for event in stream:
        seen.append((event["type"], event["object"]["spec"]["size"]))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", 3), ("MODIFIED", 4)]


def _token_client(kube_cluster: DevCluster, token: str) -> Any:
    """An API client that authenticates with a bearer token only (no client certificate)."""
    from kubernetes import client, config

    admin = client.Configuration()
    config.load_kube_config(config_file=str(kube_cluster.kubeconfig), client_configuration=admin,
                            persist_config=False)
    conf = client.Configuration()
    conf.host = admin.host
    conf.ssl_ca_cert = admin.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def test_rbac_denies_a_service_account_without_rights_and_allows_what_a_role_grants(
        kube_cluster: DevCluster, kube_session: KubeSession) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ns = kube_session.namespace
    kube_session.core.create_namespaced_service_account(ns, {"metadata": {"name": "nobody"}})
    request = kube_session.core.create_namespaced_service_account_token(
        "nobody", ns, {"spec": {"expirationSeconds": 600}})
    api = _token_client(kube_cluster, request.status.token)
    try:
        core = client.CoreV1Api(api)
        who = client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        assert who.status.user_info.username == f"system:serviceaccount:{ns}:nobody"
        with pytest.raises(ApiException) as denied:
            core.list_namespaced_secret(ns)
        assert denied.value.status == 403

        rbac = client.RbacAuthorizationV1Api(kube_session.api_client)
        rbac.create_namespaced_role(ns, {"metadata": {"name": "read-pods"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
        rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": "nobody-reads-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": ns}]})

        def allowed() -> bool:
            try:
                core.list_namespaced_pod(ns)
            except ApiException as exc:
                if exc.status == 403:
                    return False
                raise
            return True

        _wait_for("the Role to take effect", allowed, timeout=30)
        with pytest.raises(ApiException) as still_denied:
            core.list_namespaced_secret(ns)
        assert still_denied.value.status == 403
    finally:
        api.close()


def test_a_deleted_statefulset_pod_is_recreated_on_a_kwok_node_and_becomes_ready(
        kube_cluster: DevCluster, kube_session: KubeSession, make_vcluster: MakeVCluster) -> None:
    vc = make_vcluster("vc")
    core = kube_session.core
    ns = kube_session.namespace
    old = core.read_namespaced_pod("vc-0", ns)
    core.delete_namespaced_pod("vc-0", ns)

    def replaced() -> Any:
        pods = core.list_namespaced_pod(ns, label_selector=vc.selector).items
        fresh = [p for p in pods if p.metadata.name == "vc-0" and p.metadata.uid != old.metadata.uid]
        if fresh and pod_status(fresh[0]) == "Running" and pod_ready(fresh[0]):
            return fresh[0]
        return None

    pod = _wait_for("vc-0 recreated and Ready", replaced)
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.name in kube_cluster.node_names()
    assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
    claim = next(v for v in pod.spec.volumes if v.name == "data").persistent_volume_claim.claim_name
    assert claim == "data-vc-0"
    assert core.read_namespaced_persistent_volume_claim(claim, ns).status.phase == "Bound"


def test_after_an_api_server_restart_the_same_client_works_and_pods_still_become_ready(
        kube_cluster: DevCluster, kube_session: KubeSession, make_vcluster: MakeVCluster) -> None:
    before = kube_cluster.component_pid("kube-apiserver")
    kube_cluster.restart_apiserver()
    after = kube_cluster.component_pid("kube-apiserver")
    assert before is not None and after is not None and after != before
    # Same URL and certificates: the session made before the restart keeps working.
    kube_session.core.read_namespace(kube_session.namespace)
    vc = make_vcluster("after-restart")  # waits until its pod is scheduled, Running and Ready
    pods = kube_session.core.list_namespaced_pod(kube_session.namespace, label_selector=vc.selector).items
    assert [pod_ready(p) for p in pods] == [True]
