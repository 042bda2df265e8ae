"""Shared pytest fixtures: the real local control plane, per-test namespaces, vCluster fixtures.

  kube_cluster   (session)  tests.support.devcluster.DevCluster, started on first use. Its name is
                            $VCERTS_TEST_CLUSTER (default vcerts-test); a cluster of that name that already
                            runs is reused and left running. A cluster this session created is deleted at
                            the end unless VCERTS_KEEP_CLUSTER=1.
  namespace      (function) a fresh namespace name (created; deleted after the test).
  kube_session   (function) kubectl_vcerts.kube.client.KubeSession on the cluster, .namespace = namespace.
  make_vcluster  (function) factory: make_vcluster(name="vc", **VClusterSpec fields) -> FixtureVCluster,
                            created in `namespace` and waited for (tests.support.vcluster).

Hooks: failing comparisons of secret data are reported as digests, never values; tests that need the
real binaries or the cluster get INTEGRATION_TIMEOUT, every other test the short default of pyproject.toml.

Other fixtures belong in conftest.py files of subdirectories.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from kubectl_vcerts.kube.client import KubeSession, KubeTarget, connect
from tests.support.devcluster import DevCluster, cluster_name_from_env
from tests.support.redact import redacted_compare
from tests.support.vcluster import (
    FixtureVCluster,
    MakeVCluster,
    VClusterSpec,
    create_vcluster,
    delete_volumes,
)

INTEGRATION_TIMEOUT = 900  # seconds: a cold cluster start plus a rotation with restarts


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> list[str] | None:
    return redacted_compare(op, left, right)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needs_cluster = item.get_closest_marker("cluster") or item.get_closest_marker("binaries")
        if needs_cluster and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT))


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[DevCluster]:
    cluster = DevCluster(cluster_name_from_env())
    created_here = not cluster.exists()
    cluster.up()
    yield cluster
    if created_here and os.environ.get("VCERTS_KEEP_CLUSTER") != "1":
        cluster.down()


@pytest.fixture(scope="session")
def _admin_session(kube_cluster: DevCluster) -> Iterator[KubeSession]:
    session = connect(KubeTarget(kubeconfig=str(kube_cluster.kubeconfig)))
    yield session
    session.close()


def _namespace_name(node_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", node_name.lower().removeprefix("test_")).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, _admin_session: KubeSession) -> Iterator[str]:
    name = _namespace_name(request.node.name)
    _admin_session.core.create_namespace({"metadata": {"name": name, "labels": {"vcerts.io/test": "true"}}})
    yield name
    # The namespace controller removes what is inside; no need to wait for it.
    _admin_session.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def kube_session(kube_cluster: DevCluster, namespace: str) -> Iterator[KubeSession]:
    session = connect(KubeTarget(kubeconfig=str(kube_cluster.kubeconfig), namespace=namespace))
    yield session
    session.close()


@pytest.fixture
def make_vcluster(kube_session: KubeSession, namespace: str) -> Iterator[MakeVCluster]:
    made: list[FixtureVCluster] = []

    def factory(name: str = "vc", **variant: Any) -> FixtureVCluster:
        vcluster = create_vcluster(kube_session, name=name, namespace=namespace, spec=VClusterSpec(**variant))
        made.append(vcluster)
        return vcluster

    yield factory
    for vcluster in made:
        delete_volumes(kube_session, vcluster)
