"""KubeRotationPorts.list_pods against the real control plane: one request, the same pods as discovery."""

from __future__ import annotations

import pytest

from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.discovery import KubeReader
from kubectl_vcerts.kube.rotation import KubeRotationPorts
from kubectl_vcerts.rotation.discovery import find_vcluster
from tests.support.vcluster import MakeVCluster

pytestmark = pytest.mark.cluster


def test_pods_are_split_into_control_plane_and_etcd_and_other_releases_are_left_out(
    kube_session: KubeSession, make_vcluster: MakeVCluster
) -> None:
    ha = make_vcluster("vc", replicas=2, deployed_etcd=True)
    other = make_vcluster("other")
    ports = KubeRotationPorts(kube_session, refresh=lambda vc: vc)
    reader = KubeReader(kube_session)

    for made, control, etcd in (
        (ha, ["vc-0", "vc-1"], ["vc-etcd-0", "vc-etcd-1"]),
        (other, ["other-0"], []),
    ):
        found = find_vcluster(reader, name=made.name, namespace=made.namespace)

        cp, etcd_pods = ports.list_pods(found)

        assert [p.name for p in cp] == control
        assert [p.name for p in etcd_pods] == etcd
        # discovery lists each group with its own equality selector: the same pods, same states
        assert (cp, etcd_pods) == (found.pods, found.etcd_pods)
