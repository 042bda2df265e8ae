"""PlatformMarkHook through the real gateway: the plugin's half of the contract, then the hook's half."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import contract
from kubectl_vcerts.errors import NotFoundError
from kubectl_vcerts.kube import platform
from kubectl_vcerts.kube.client import KubeTarget, connect
from kubectl_vcerts.kube.platform import PlatformGateway
from kubectl_vcerts.rotation.model import VCluster, WorkloadKind
from kubectl_vcerts.rotation.platform_mark import PlatformMarkHook
from kubectl_vcerts.rotation.ports import CaChange
from kubectl_vcerts.rotation.recycle_record import pending_marker
from tests.support.platform import PlatformEnv, PlatformPlayer

pytestmark = pytest.mark.cluster
FP = "sha256:" + "ef" * 32


@pytest.fixture(scope="module")
def platform_env(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> PlatformEnv:
    return PlatformEnv(Path(kube_cluster.kubeconfig), tmp_path_factory.mktemp("hook-mark"))


@pytest.fixture
def gateway(platform_env: PlatformEnv) -> Iterator[PlatformGateway]:
    session = connect(KubeTarget(kubeconfig=str(platform_env.admin_kubeconfig)))
    yield PlatformGateway(session)
    session.close()


def change(host_namespace: str, name: str) -> CaChange:
    vc = VCluster(name=name, namespace=host_namespace, kind=WorkloadKind.STATEFULSET, version="0.36.1",
                  status="Running", replicas=1, persistence=True)
    return CaChange(vcluster=vc, operation="rotate-ca", old_ca_fingerprint=None, new_ca_fingerprint=FP,
                    new_data={}, at=datetime(2026, 11, 29, 4, 0, 1, tzinfo=UTC))


def test_the_mark_finds_the_instance_by_cluster_ref_and_the_hook_sees_work(
        platform_env: PlatformEnv, gateway: PlatformGateway, namespace: str) -> None:
    player = PlatformPlayer(platform_env.admin_kubeconfig, namespace)
    player.make_instance("my-vc", cluster_namespace=f"host-{namespace}", vcluster="vc")
    hook = PlatformMarkHook(gateway, vci=None)
    ca = change(f"host-{namespace}", "vc")
    hook.preflight(ca)
    assert contract.CA_ROTATED_ANNOTATION not in player.annotations("my-vc")  # dry run only
    lines = hook.after(ca)
    annotations = player.annotations("my-vc")
    assert annotations[contract.CA_ROTATED_ANNOTATION] == "2026-11-29T04:00:01Z"
    assert annotations[contract.CA_FINGERPRINT_ANNOTATION] == FP
    assert f"{namespace}/my-vc" in lines[0]
    assert pending_marker(gateway.read_instance(namespace, "my-vc")) == "2026-11-29T04:00:01Z"
    player.close()


def test_a_typo_in_the_vci_refuses_in_preflight(gateway: PlatformGateway, namespace: str,
                                                platform_env: PlatformEnv) -> None:
    with pytest.raises(NotFoundError, match="typo"):
        PlatformMarkHook(gateway, vci=f"{namespace}/typo").preflight(change("x", "vc"))


def test_claims_are_listed_page_by_page_and_filtered_by_instance(
        platform_env: PlatformEnv, gateway: PlatformGateway, namespace: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    player = PlatformPlayer(platform_env.admin_kubeconfig, namespace)
    for i in range(5):
        player.make_claim("vc", f"vc-{i}")
    player.make_claim("other", "other-0")
    player.make_claim("other", "other-1")
    monkeypatch.setattr(platform, "CLAIM_PAGE", 2)
    calls = gateway.calls
    claims = gateway.list_claims(namespace, "vc")
    assert sorted(c.name for c in claims) == [f"vc-{i}" for i in range(5)]
    assert gateway.calls - calls == 4  # 7 claims, 2 per page
    player.close()
