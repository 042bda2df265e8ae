"""The CA-change hooks of `rotate-ca` and `restore`: private nodes and vCluster Platform marking.

`build_hooks` gives cli.rotate_ca / cli.restore the factory the workflow runner calls once the vCluster
is found; `build_ca_change_hooks` is that call. It returns
  * `rotation.private_nodes.PrivateNodesHook` when `privateNodes.enabled` (it reaches the virtual
    cluster through kube.virtual: --vcluster-server, else the server in vc-NAME, else a port-forward
    to the control-plane pod), or `SkippedPrivateNodesHook` with --skip-private-nodes (touches no node,
    prints the manual re-join procedure: the way out when the virtual API cannot be reached);
  * `rotation.platform_mark.PlatformMarkHook` when --platform-context or --platform-kubeconfig is given.
Nothing is connected here: the hooks connect when the workflow calls them.

VCERTS_DRAIN_TIMEOUT (seconds, default 300) bounds the wait for each manual node's pods to be evicted
(a PodDisruptionBudget that never allows it stops the operation before the CA changes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

from kubectl_vcerts.cli.deps import Deps
from kubectl_vcerts.errors import UsageError
from kubectl_vcerts.rotation.model import VCluster
from kubectl_vcerts.rotation.ports import CaChangeHook

DRAIN_TIMEOUT_ENV = "VCERTS_DRAIN_TIMEOUT"


def drain_timeout() -> timedelta:
    text = os.environ.get(DRAIN_TIMEOUT_ENV, "")
    return timedelta(seconds=int(text)) if text.isdigit() and int(text) > 0 else timedelta(minutes=5)


def build_ca_change_hooks(
    deps: Deps,
    vcluster: VCluster,
    *,
    delete_manual_nodes: bool,
    manual_selector: str | None,
    vcluster_server: str | None,
    platform_context: str | None,
    platform_kubeconfig: str | None,
    platform_vci: str | None,
    skip_private_nodes: bool = False,
) -> list[CaChangeHook]:
    hooks: list[CaChangeHook] = []
    if skip_private_nodes and (delete_manual_nodes or manual_selector is not None):
        raise UsageError(
            "--skip-private-nodes excludes --delete-manual-nodes and --manual-selector",
            hint="either let kubectl vcerts handle the private nodes or skip them",
        )
    platform = bool(platform_context or platform_kubeconfig)
    if manual_selector is not None:
        from kubectl_vcerts.rotation.nodes import parse_selector

        parse_selector(manual_selector)  # a typo is refused before anything is read
    if vcluster.private_nodes and skip_private_nodes:
        from kubectl_vcerts.rotation.private_nodes import SkippedPrivateNodesHook

        hooks.append(SkippedPrivateNodesHook())
    elif vcluster.private_nodes:
        from kubectl_vcerts.rotation.clock import SystemClock
        from kubectl_vcerts.rotation.nodes import VirtualNodesPort
        from kubectl_vcerts.rotation.private_nodes import PrivateNodesHook

        def connect(credentials: bytes | None) -> VirtualNodesPort:
            from kubectl_vcerts.kube.virtual import open_gateway

            return open_gateway(
                deps.session(),
                namespace=vcluster.namespace,
                vcluster=vcluster.name,
                server=vcluster_server,
                credentials=credentials,
                request_timeout=deps.target.request_timeout,
            )

        namespace = platform_vci.partition("/")[0] if platform_vci and "/" in platform_vci else None
        hooks.append(
            PrivateNodesHook(
                connect=connect,
                clock=SystemClock(deps.now),
                delete_manual_nodes=delete_manual_nodes,
                manual_selector=manual_selector,
                platform_marks=platform,
                platform_context=platform_context,
                platform_namespace=namespace,
                drain_timeout=drain_timeout(),
            )
        )
    if platform:
        from kubectl_vcerts import contract
        from kubectl_vcerts.kube.platform import connect_platform
        from kubectl_vcerts.rotation.platform_mark import PlatformMarkHook

        gateway = connect_platform(
            kubeconfig=platform_kubeconfig or deps.target.kubeconfig,
            context=platform_context,
            request_timeout=deps.target.request_timeout,
            identity=contract.TOOL_NAME,
        )
        hooks.append(PlatformMarkHook(gateway, vci=platform_vci))
    return hooks


def build_hooks(
    *,
    delete_manual_nodes: bool,
    manual_selector: str | None,
    vcluster_server: str | None,
    platform_context: str | None,
    platform_kubeconfig: str | None,
    platform_vci: str | None,
    skip_private_nodes: bool = False,
) -> Callable[[Deps, VCluster], list[CaChangeHook]]:
    """A factory the workflow runner calls with (deps, vcluster) once the vCluster is found."""

    def factory(deps: Deps, vcluster: VCluster) -> list[CaChangeHook]:
        return build_ca_change_hooks(
            deps,
            vcluster,
            delete_manual_nodes=delete_manual_nodes,
            manual_selector=manual_selector,
            vcluster_server=vcluster_server,
            platform_context=platform_context,
            platform_kubeconfig=platform_kubeconfig,
            platform_vci=platform_vci,
            skip_private_nodes=skip_private_nodes,
        )

    return factory
