"""Private nodes of a vCluster as data: node records, their classification (automatically provisioned
or joined by hand, `--manual-selector`), the port to the virtual cluster, and draining.

Facts (loft-sh/vcluster `cmd/vclusterctl/cmd/node/delete.go`, vcluster docs): private nodes are
kubeadm-joined `Node`s inside the virtual cluster; `vcluster node delete NODE` cordons, drains (grace
30 s; `--drain=false` when the kubelet stopped posting status) and deletes.

Classification: a node is automatically provisioned when it carries a Karpenter / vCluster Platform
label (`AUTO_LABELS` — inferred from the vCluster docs) or is owned by a Karpenter NodeClaim; otherwise it
was joined by hand. `--manual-selector` (a label selector) overrides: matching nodes are manual, the
others automatic.

`VirtualNodesPort` is implemented by kube.virtual_nodes.VirtualGateway. Imports nothing from kube/ or cli/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from kubectl_vcerts import contract
from kubectl_vcerts.errors import NotReadyError, UsageError
from kubectl_vcerts.rotation.join_tokens import TokenSecret
from kubectl_vcerts.rotation.ports import Clock

# Labels that mark a node provisioned by Karpenter / vCluster Platform auto nodes (from the vCluster
# auto-nodes docs).
AUTO_LABELS: tuple[str, ...] = (
    "karpenter.sh/nodepool",
    "karpenter.sh/registered",
    "karpenter.sh/initialized",
    "karpenter.sh/capacity-type",
    "vcluster.loft.sh/provider-platform",
    "vcluster.com/node-type",
)


KUBELET_STOPPED = "Kubelet stopped posting node status."  # node lifecycle controller's message


DRAIN_GRACE_SECONDS = 30  # `vcluster node delete`: GracePeriodSeconds 30


class NodeClass(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


@dataclass(frozen=True)
class NodeRecord:
    """A Node of the virtual cluster, reduced to what classification and draining need."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    ready: str | None = None  # status of the Ready condition: "True", "False", "Unknown", None
    ready_message: str = ""
    unschedulable: bool = False
    owners: tuple[tuple[str, str], ...] = ()  # (kind, name) of ownerReferences
    created: str = ""

    @property
    def kubelet_stopped(self) -> bool:
        """The kubelet stopped posting status: `vcluster node delete` would need --drain=false."""
        return self.ready == "Unknown" and KUBELET_STOPPED in self.ready_message


@dataclass(frozen=True)
class Classified:
    node: NodeRecord
    kind: NodeClass
    reason: str  # why: "label karpenter.sh/nodepool", "owned by NodeClaim x", "--manual-selector", ...


@dataclass(frozen=True)
class PodOnNode:
    namespace: str
    name: str
    uid: str
    daemonset: bool = False
    mirror: bool = False
    terminating: bool = False
    finished: bool = False


def parse_selector(text: str) -> list[tuple[str, str, str | None]]:
    """A label selector (equality/existence forms): "a=b,c!=d,e,!f" → [(key, op, value)]."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            raise UsageError(
                f"--manual-selector {text!r}: empty term", hint="e.g. --manual-selector role=manual"
            )
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append((key.strip(), "!=", value.strip()))
        elif "==" in raw or "=" in raw:
            key, value = raw.split("==", 1) if "==" in raw else raw.split("=", 1)
            terms.append((key.strip(), "=", value.strip()))
        elif raw.startswith("!"):
            terms.append((raw[1:].strip(), "!", None))
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", raw):
            terms.append((raw, "exists", None))
        else:
            raise UsageError(
                f"--manual-selector {text!r}: cannot parse {raw!r}",
                hint="use key=value, key!=value, key or !key, separated by commas",
            )
        if not terms[-1][0]:
            raise UsageError(f"--manual-selector {text!r}: a term has no key", hint="e.g. role=manual")
    return terms


def matches(labels: Mapping[str, str], terms: Sequence[tuple[str, str, str | None]]) -> bool:
    for key, op, value in terms:
        present = key in labels
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and present and labels.get(key) == value:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
    return True


def classify(node: NodeRecord, *, manual_selector: str | None = None) -> Classified:
    """Automatically provisioned (Platform/Karpenter) or manually joined; the selector overrides."""
    if manual_selector is not None:
        if matches(node.labels, parse_selector(manual_selector)):
            return Classified(node, NodeClass.MANUAL, f"matches --manual-selector {manual_selector}")
        return Classified(node, NodeClass.AUTO, f"does not match --manual-selector {manual_selector}")
    for label in AUTO_LABELS:
        if label in node.labels:
            return Classified(node, NodeClass.AUTO, f"label {label}")
    for kind, name in node.owners:
        if kind == "NodeClaim":
            return Classified(node, NodeClass.AUTO, f"owned by NodeClaim {name}")
    return Classified(node, NodeClass.MANUAL, "no Karpenter or Platform label")


def classify_all(nodes: Sequence[NodeRecord], *, manual_selector: str | None = None) -> list[Classified]:
    return [classify(n, manual_selector=manual_selector) for n in sorted(nodes, key=lambda n: n.name)]


def delete_nodeclaims_commands(
    nodes: Sequence[Classified], *, platform_context: str | None, platform_namespace: str | None
) -> list[str]:
    """The commands the docs give for auto nodes after a CA change (NodeClaim names are inferred)."""
    if not nodes:
        return []
    names = []
    for item in nodes:
        owner = next((name for kind, name in item.node.owners if kind == "NodeClaim"), None)
        names.append(owner or item.node.name)
    context = platform_context or "<platform-context>"
    namespace = platform_namespace or "<project-namespace>"
    return [
        f"kubectl --context {context} get nodeclaims.{contract.MANAGEMENT_GROUP} -A   "
        "# find the claims of this vCluster (VCLUSTER column)",
        f"kubectl --context {context} -n {namespace} delete nodeclaims.{contract.MANAGEMENT_GROUP} "
        + " ".join(sorted(set(names))),
    ]


class VirtualNodesPort(Protocol):
    """Implemented by kubectl_vcerts.kube.virtual_nodes.VirtualGateway."""

    def list_nodes(self) -> list[NodeRecord]: ...

    def read_node(self, name: str) -> NodeRecord | None: ...

    def cordon(self, name: str) -> None: ...

    def delete_node(self, name: str) -> None: ...

    def pods_on(self, node: str) -> list[PodOnNode]: ...

    def evict(self, pod: PodOnNode, *, grace_seconds: int) -> bool:
        """False when a PodDisruptionBudget forbids the eviction now."""
        ...

    def pod_exists(self, pod: PodOnNode) -> bool: ...

    def read_config_map(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None: ...

    def create_token_secret(self, token: TokenSecret) -> None: ...

    def close(self) -> None: ...


class DrainError(NotReadyError):
    """A node could not be drained in time (PodDisruptionBudget, stuck pod)."""


def drain(
    port: VirtualNodesPort, node: NodeRecord, *, clock: Clock, timeout: timedelta, poll_seconds: float = 1.0
) -> list[str]:
    """Evict every pod (not DaemonSet/mirror pods) and wait until they are gone; bounded."""
    deadline = clock.now() + timeout
    # Finished pods are evicted too (kubectl drain deletes them); DaemonSet and mirror pods stay.
    pending = [p for p in port.pods_on(node.name) if not p.daemonset and not p.mirror]
    evicted: list[PodOnNode] = []  # every pod whose eviction was accepted
    while True:
        blocked = [p for p in pending if not port.evict(p, grace_seconds=DRAIN_GRACE_SECONDS)]
        evicted += [p for p in pending if p not in blocked]
        pending = blocked  # a budget may allow them later: ask again next round
        remaining = [p for p in evicted if port.pod_exists(p)] + blocked
        if not remaining:
            return [f"{p.namespace}/{p.name}" for p in evicted]
        if clock.now() >= deadline:
            what = ", ".join(f"{p.namespace}/{p.name}" for p in remaining)
            why = (
                "a PodDisruptionBudget forbids evicting "
                + ", ".join(f"{p.namespace}/{p.name}" for p in blocked)
                if blocked
                else f"pods still terminating: {what}"
            )
            raise DrainError(
                f"cannot drain node {node.name} within {int(timeout.total_seconds())}s: {why}",
                hint="the node is cordoned and the CA was not changed; fix the budget or the pods and run "
                "the command again",
            )
        clock.sleep(poll_seconds)
