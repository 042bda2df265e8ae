"""Which CA-change hooks the CLI builds, in particular the --skip-private-nodes escape hatch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.cli.hooks import build_ca_change_hooks
from kubectl_vcerts.errors import UsageError
from kubectl_vcerts.kube.client import KubeSession, KubeTarget
from kubectl_vcerts.rotation.model import VCluster, WorkloadKind
from kubectl_vcerts.rotation.ports import CaChange
from kubectl_vcerts.rotation.private_nodes import SkippedPrivateNodesHook

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _unreachable(_target: KubeTarget) -> KubeSession:
    raise AssertionError("skipping private nodes must not contact any cluster")


def _deps() -> Deps:
    return Deps(target=KubeTarget(), connect=_unreachable, interactive=False)


def _vcluster(*, private_nodes: bool) -> VCluster:
    return VCluster(
        name="vc",
        namespace="team-a",
        kind=WorkloadKind.STATEFULSET,
        version="0.36.1",
        status="Running",
        replicas=1,
        persistence=True,
        private_nodes=private_nodes,
    )


def _build(vcluster: VCluster, **flags: object) -> list[object]:
    options: dict[str, object] = {
        "delete_manual_nodes": False,
        "manual_selector": None,
        "vcluster_server": None,
        "platform_context": None,
        "platform_kubeconfig": None,
        "platform_vci": None,
    }
    options.update(flags)
    return list(build_ca_change_hooks(_deps(), vcluster, **options))  # type: ignore[arg-type]


def test_skipping_private_nodes_builds_only_the_instructions_hook_and_contacts_nothing() -> None:
    hooks = _build(_vcluster(private_nodes=True), skip_private_nodes=True)
    assert len(hooks) == 1
    hook = hooks[0]
    assert isinstance(hook, SkippedPrivateNodesHook)
    change = CaChange(
        vcluster=_vcluster(private_nodes=True),
        operation="rotate-ca",
        old_ca_fingerprint="sha256:old",
        new_ca_fingerprint="sha256:new",
        new_data={},
        at=NOW,
    )
    hook.preflight(change)
    assert hook.before(change) == []
    assert "skipped" in hook.describe(change)[0]
    after = "\n".join(hook.after(change))
    assert "kubectl vcerts token create vc -n team-a" in after
    assert "--force-join" in after
    assert "nodeclaims.management.loft.sh" in after


def test_a_vcluster_without_private_nodes_gets_no_hook_even_when_skipping() -> None:
    assert _build(_vcluster(private_nodes=False), skip_private_nodes=True) == []


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({"delete_manual_nodes": True}, id="skipping and deleting manual nodes contradict"),
        pytest.param({"manual_selector": "role=edge"}, id="skipping and choosing manual nodes contradict"),
    ],
)
def test_skipping_private_nodes_refuses_contradicting_flags(flags: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="--skip-private-nodes excludes"):
        _build(_vcluster(private_nodes=True), skip_private_nodes=True, **flags)
