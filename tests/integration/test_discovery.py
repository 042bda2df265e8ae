"""Discovery against the real control plane: every fixture variant is found with the right fields, by
both readers (kubernetes client and the light REST client), whatever the vCluster's state."""

from __future__ import annotations

import secrets as secrets_module
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubectl_vcerts.errors import NotFoundError
from kubectl_vcerts.kube.client import KubeSession, KubeTarget
from kubectl_vcerts.kube.discovery import JsonReader, KubeReader, RestReader
from kubectl_vcerts.kube.rest import open_rest
from kubectl_vcerts.rotation.discovery import find_vcluster, list_vclusters
from kubectl_vcerts.rotation.model import BackingStore, Distro, VCluster, WorkloadKind
from tests.support.devcluster import DevCluster
from tests.support.vcluster import MakeVCluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def readers(kube_cluster: DevCluster, kube_session: KubeSession) -> Iterator[list[JsonReader]]:
    """Both readers: the kubernetes client's and the light REST client's."""
    client = open_rest(KubeTarget(kubeconfig=str(kube_cluster.kubeconfig), namespace=kube_session.namespace))
    assert client is not None, "the dev cluster's kubeconfig is a plain one: the REST reader must take it"
    rest = RestReader(client)
    yield [KubeReader(kube_session), rest]
    rest.close()


def _facts(vc: VCluster) -> dict[str, Any]:
    return {
        "kind": vc.kind,
        "version": vc.version,
        "status": vc.status,
        "replicas": vc.replicas,
        "persistence": vc.persistence,
        "distro": vc.distro,
        "backing_store": vc.backing_store,
        "private_nodes": vc.private_nodes,
        "pods": len(vc.pods),
        "etcd_pods": len(vc.etcd_pods),
        "running": vc.is_running,
    }


DEFAULT = {
    "kind": WorkloadKind.STATEFULSET,
    "version": "0.36.1",
    "status": "Running",
    "replicas": 1,
    "persistence": True,
    "distro": Distro.K8S,
    "backing_store": BackingStore.EMBEDDED_DATABASE,
    "private_nodes": False,
    "pods": 1,
    "etcd_pods": 0,
    "running": True,
}


@pytest.mark.parametrize(
    ("variant", "changes"),
    [
        pytest.param({}, {}, id="the default vCluster is a persistent StatefulSet"),
        pytest.param(
            {"persistence": False},
            {"kind": WorkloadKind.DEPLOYMENT, "persistence": False},
            id="without persistence it is a Deployment with emptyDir",
        ),
        pytest.param(
            {"deployed_etcd": True, "replicas": 3},
            {
                "backing_store": BackingStore.DEPLOYED_ETCD,
                "replicas": 3,
                "pods": 3,
                "etcd_pods": 3,
            },
            id="HA with deployed etcd lists both sets of pods",
        ),
        pytest.param(
            {"private_nodes": True}, {"private_nodes": True}, id="private nodes are read from vc-config"
        ),
        pytest.param(
            {"distro": "k3s", "version": "0.24.0"},
            {"distro": Distro.K3S, "version": "0.24.0"},
            id="an old k3s vCluster is k3s",
        ),
        pytest.param(
            {"pod_running": False},
            {"status": "CrashLoopBackOff", "running": False},
            id="a crash-looping control plane is found and not Running",
        ),
    ],
)
def test_each_variant_is_discovered_with_the_right_fields(
    readers: list[JsonReader],
    kube_session: KubeSession,
    make_vcluster: MakeVCluster,
    variant: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    made = make_vcluster("vc", **variant)
    for reader in readers:
        vc = find_vcluster(reader, name="vc", namespace=made.namespace)
        assert (vc.name, vc.namespace) == ("vc", made.namespace)
        assert _facts(vc) == {**DEFAULT, **changes}, type(reader).__name__


def test_a_scaled_down_vcluster_is_scaled_down(
    readers: list[JsonReader], kube_session: KubeSession, make_vcluster: MakeVCluster
) -> None:
    made = make_vcluster("vc", persistence=False)
    kube_session.apps.patch_namespaced_deployment("vc", made.namespace, {"spec": {"replicas": 0}})
    for reader in readers:
        for _ in range(60):  # the pod takes a moment to go away
            vc = find_vcluster(reader, name="vc", namespace=made.namespace)
            if not vc.pods:
                break
            time.sleep(0.5)
        assert (vc.status, vc.replicas, vc.is_running) == ("ScaledDown", 0, False)


def test_not_found_names_the_namespace_that_has_it(
    readers: list[JsonReader], kube_session: KubeSession, make_vcluster: MakeVCluster
) -> None:
    name = f"vc-{secrets_module.token_hex(3)}"  # unique: namespaces of earlier tests may still be going
    made = make_vcluster(name)
    for reader in readers:
        with pytest.raises(NotFoundError) as caught:
            find_vcluster(reader, name=name, namespace="no-such-namespace")
        assert caught.value.message == (
            f"vcluster {name} not found in namespace no-such-namespace; found in: {made.namespace}"
        )
        assert caught.value.hint == f"use -n {made.namespace}"


def test_list_finds_several_vclusters_in_the_namespace(
    readers: list[JsonReader], kube_session: KubeSession, make_vcluster: MakeVCluster
) -> None:
    make_vcluster("one")
    make_vcluster("two", persistence=False)
    for reader in readers:
        found = list_vclusters(reader, namespace=kube_session.namespace)
        assert sorted((vc.name, vc.kind) for vc in found) == [
            ("one", WorkloadKind.STATEFULSET),
            ("two", WorkloadKind.DEPLOYMENT),
        ]
        everywhere = list_vclusters(reader, namespace=None)
        assert {vc.ref for vc in found} <= {vc.ref for vc in everywhere}


def test_readers_decode_the_certs_secret_like_the_fixture_wrote_it(
    readers: list[JsonReader], kube_session: KubeSession, make_vcluster: MakeVCluster
) -> None:
    made = make_vcluster("vc")
    for reader in readers:
        secret = reader.read_secret(namespace=made.namespace, name="vc-certs")
        assert secret is not None
        assert secret.data == made.certs
        assert secret.labels == {"app": "vcluster", "vcluster-name": "vc"}
        assert secret.owner_references and secret.owner_references[0]["kind"] == "Service"
        assert reader.read_secret(namespace=made.namespace, name="nope") is None
        listed = reader.list_secrets(namespace=made.namespace, selector="app=vcluster,vcluster-name=vc")
        assert sorted(s.name for s in listed) == ["vc-certs", "vc-vc"]
