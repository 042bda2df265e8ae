"""End to end: `kubectl vcerts rotate-ca --platform-kubeconfig` marks the VirtualClusterInstance and the
platform hook (as deployed) recycles its NodeClaims for exactly that CA change."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubectl_vcerts import contract
from tests.support.platform import Hooks, PlatformEnv, PlatformPlayer, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def platform_env(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> PlatformEnv:
    return PlatformEnv(Path(kube_cluster.kubeconfig), tmp_path_factory.mktemp("hook-e2e"))


@pytest.fixture
def hooks(platform_env: PlatformEnv, namespace: str, tmp_path: Path) -> Iterator[Hooks]:
    h = Hooks(platform_env, namespace, tmp_path)
    yield h
    h.stop_all()


def test_rotate_ca_marks_the_instance_and_the_hook_recycles_its_claims(
        platform_env: PlatformEnv, hooks: Hooks, make_vcluster: Any, namespace: str) -> None:
    vc = make_vcluster("vc")
    # The Platform's project namespace is the test namespace here; clusterRef names the host side.
    player = PlatformPlayer(platform_env.admin_kubeconfig, namespace)
    player.make_instance("vc-instance", cluster_namespace=vc.namespace, vcluster=vc.name)
    for i in range(2):
        player.make_claim("vc-instance", f"vc-instance-{i}")
    before = player.claim_uids("vc-instance")
    hook = hooks.start("hook-a")
    hook.wait_ready()
    wait_for("leader", lambda: hook.metric("vcerts_hook_leader") == 1.0, timeout=30)

    kubeconfig = str(platform_env.admin_kubeconfig)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-vcerts"), "rotate-ca", vc.name, "-n", vc.namespace,
         "--kubeconfig", kubeconfig, "--platform-kubeconfig", kubeconfig, "--yes", "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    annotations = player.annotations("vc-instance")
    marker = annotations[contract.CA_ROTATED_ANNOTATION]
    assert annotations[contract.CA_FINGERPRINT_ANNOTATION] == report["ca"]["newFingerprint"]
    wait_for("claims recycled",
             lambda: player.annotations("vc-instance").get(contract.NODECLAIMS_RECYCLED_ANNOTATION) == marker,
             timeout=90)
    after = player.claim_uids("vc-instance")
    assert sorted(after) == sorted(before) and not set(after.values()) & set(before.values())
    player.close()
