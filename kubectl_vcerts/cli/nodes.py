"""`kubectl vcerts nodes NAME`: the virtual cluster's nodes, each classified as automatically provisioned
(Karpenter / vCluster Platform labels) or manually joined — what `rotate-ca --delete-manual-nodes` acts on.

Reaches the virtual API server with the vCluster's admin credentials (kube.virtual: --vcluster-server,
else the server in vc-NAME, else a port-forward to the control-plane pod's port 8443).
Output: table (NAME, CLASS, REASON, READY, SCHEDULABLE) or `-o json|yaml`:
  apiVersion "vcerts.io/v1"; kind "NodeList"; vcluster {name, namespace};
  items [{name, class ("auto" | "manual"), reason, ready ("True" | "False" | "Unknown" | null),
          kubeletStopped, unschedulable, labels}]
"""

from __future__ import annotations

from typing import Any

import typer

from kubectl_vcerts.cli.deps import get_deps
from kubectl_vcerts.cli.operation import ManualSelectorOption, NameArgument, VclusterServerOption
from kubectl_vcerts.cli.options import OutputFormat, OutputOption
from kubectl_vcerts.rotation.nodes import Classified

API_VERSION = "vcerts.io/v1"


def node_document(name: str, namespace: str, nodes: list[Classified]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "NodeList",
        "vcluster": {"name": name, "namespace": namespace},
        "items": [
            {
                "name": c.node.name,
                "class": c.kind.value,
                "reason": c.reason,
                "ready": c.node.ready,
                "kubeletStopped": c.node.kubelet_stopped,
                "unschedulable": c.node.unschedulable,
                "labels": dict(sorted(c.node.labels.items())),
            }
            for c in nodes
        ],
    }


def node_rows(nodes: list[Classified]) -> tuple[list[str], list[list[str]]]:
    headers = ["NAME", "CLASS", "REASON", "READY", "SCHEDULABLE"]
    rows = [
        [c.node.name, c.kind.value, c.reason, c.node.ready or "-", "no" if c.node.unschedulable else "yes"]
        for c in nodes
    ]
    return headers, rows


def command(
    ctx: typer.Context,
    name: NameArgument,
    manual_selector: ManualSelectorOption = None,
    vcluster_server: VclusterServerOption = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """List the nodes of a vCluster with private nodes, as automatically provisioned or manually joined."""
    from kubectl_vcerts.cli.render import emit_document, print_table
    from kubectl_vcerts.kube.virtual import open_gateway
    from kubectl_vcerts.rotation.nodes import classify_all, parse_selector

    if manual_selector is not None:
        parse_selector(manual_selector)
    deps = get_deps(ctx)
    session = deps.session()
    gateway = open_gateway(
        session,
        namespace=session.namespace,
        vcluster=name,
        server=vcluster_server,
        request_timeout=deps.target.request_timeout,
    )
    try:
        nodes = classify_all(gateway.list_nodes(), manual_selector=manual_selector)
    finally:
        gateway.close()
    if output in (OutputFormat.JSON, OutputFormat.YAML):
        emit_document(deps, node_document(name, session.namespace, nodes), output)
    elif nodes:
        headers, rows = node_rows(nodes)
        print_table(deps, headers, rows)
    else:
        deps.err.print(f"vCluster {session.namespace}/{name} has no nodes.", markup=False, highlight=False)
