"""Private nodes around a CA change: the CaChangeHook that deletes manual nodes before the change and
says how to re-join every node after it (`SkippedPrivateNodesHook` when the virtual API is unreachable).

The vCluster docs say: before the change `vcluster node delete NODE`, after it `vcluster token create`
and re-run the join command with `--force-join`; automatically provisioned nodes are replaced by
deleting their Platform NodeClaims. Nodes and draining: rotation/nodes.py; tokens: rotation/join_tokens.py.
Imports nothing from kube/, cli/, kubernetes, typer or rich.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from kubectl_vcerts import timefmt
from kubectl_vcerts.errors import UnreachableError, UsageError, VcertsError
from kubectl_vcerts.rotation.join_tokens import DEFAULT_TOKEN_TTL, FORCE_JOIN_WARNING, create_token
from kubectl_vcerts.rotation.nodes import (
    Classified,
    NodeClass,
    VirtualNodesPort,
    classify_all,
    delete_nodeclaims_commands,
    drain,
)
from kubectl_vcerts.rotation.ports import CaChange, Clock


@dataclass
class PrivateNodesHook:
    """CaChangeHook: delete manual nodes before the CA changes, print how to re-join them after.

    `connect(credentials)` opens a VirtualNodesPort; `credentials=None` uses the current admin
    kubeconfig, else the given admin.conf (the new PKI, after the change).
    """

    connect: Callable[[bytes | None], VirtualNodesPort]
    clock: Clock
    delete_manual_nodes: bool = False
    manual_selector: str | None = None
    platform_marks: bool = False  # a PlatformMarkHook runs too: it handles the auto nodes
    platform_context: str | None = None
    platform_namespace: str | None = None
    drain_timeout: timedelta = timedelta(minutes=5)
    ready_timeout: timedelta = timedelta(minutes=3)
    token_ttl: timedelta | None = DEFAULT_TOKEN_TTL
    name: str = "private-nodes"
    _nodes: list[Classified] | None = field(default=None, repr=False)
    _deleted: list[str] = field(default_factory=list, repr=False)

    def _classified(self) -> list[Classified]:
        if self._nodes is None:
            port = self.connect(None)
            try:
                self._nodes = classify_all(port.list_nodes(), manual_selector=self.manual_selector)
            finally:
                port.close()
        return self._nodes

    def _manual(self) -> list[Classified]:
        return [c for c in self._classified() if c.kind is NodeClass.MANUAL]

    def _auto(self) -> list[Classified]:
        return [c for c in self._classified() if c.kind is NodeClass.AUTO]

    def describe(self, change: CaChange) -> list[str]:
        manual, auto = self._manual(), self._auto()
        lines = []
        if manual:
            lines.append(
                "private nodes: before the CA change cordon, drain and delete the manually joined "
                f"node(s) {', '.join(c.node.name for c in manual)}; afterwards create a join token "
                "and print their join commands (--force-join)"
            )
        if auto:
            what = (
                "the Platform hook recycles their NodeClaims"
                if self.platform_marks
                else "print the commands that delete their NodeClaims"
            )
            lines.append(
                f"private nodes: automatically provisioned {', '.join(c.node.name for c in auto)}: {what}"
            )
        if not manual and not auto:
            lines.append("private nodes: the virtual cluster has no nodes")
        return lines

    def preflight(self, change: CaChange) -> None:
        manual = self._manual()
        if manual and not self.delete_manual_nodes:
            names = ", ".join(f"{c.node.name} ({c.reason})" for c in manual)
            raise UsageError(
                f"vCluster {change.vcluster.ref} has manually joined private nodes that stop working "
                f"when the CA changes: {names}",
                hint="pass --delete-manual-nodes to cordon, drain and delete them first (and get join "
                "commands afterwards), or --manual-selector to say which nodes are manual, or delete "
                "them yourself (`vcluster node delete NODE`)",
            )

    def before(self, change: CaChange) -> list[str]:
        manual = self._manual()
        if not manual:
            return []
        lines: list[str] = []
        port = self.connect(None)
        try:
            for item in manual:
                current = port.read_node(item.node.name)
                if current is None:
                    lines.append(f"node {item.node.name}: already gone")
                    self._deleted.append(item.node.name)
                    continue
                port.cordon(current.name)
                if current.kubelet_stopped:
                    lines.append(
                        f"node {current.name}: kubelet stopped posting status; deleted without "
                        "draining (like `vcluster node delete --drain=false`)"
                    )
                else:
                    evicted = drain(port, current, clock=self.clock, timeout=self.drain_timeout)
                    lines.append(f"node {current.name}: cordoned, drained ({len(evicted)} pod(s) evicted)")
                port.delete_node(current.name)
                self._deleted.append(current.name)
                lines.append(f"node {current.name}: deleted")
        finally:
            port.close()
        return lines

    def _open_new(self, change: CaChange) -> VirtualNodesPort:
        """Connect with the new admin credentials, retrying until the new control plane answers."""
        admin = change.new_data.get("admin.conf")
        deadline = self.clock.now() + self.ready_timeout
        while True:
            try:
                return self.connect(admin)
            except (UnreachableError, VcertsError):
                if self.clock.now() >= deadline:
                    raise
                self.clock.sleep(2.0)

    def after(self, change: CaChange) -> list[str]:
        lines: list[str] = []
        vc = change.vcluster
        if self._deleted:
            try:
                port = self._open_new(change)
                try:
                    created = create_token(port, now=self.clock.now(), ttl=self.token_ttl)
                finally:
                    port.close()
            except VcertsError as exc:
                lines.append(f"could not create a join token: {exc}")
                lines.append(
                    f"create one yourself: kubectl vcerts token create {vc.name} -n {vc.namespace} "
                    "(or `vcluster token create` in the virtual cluster), then on each node run the "
                    "join command with `| sh -s -- --force-join`: " + ", ".join(self._deleted)
                )
            else:
                expiry = timefmt.rfc3339(created.token.expiration) if created.token.expiration else "never"
                lines.append(
                    f"join token {created.token.token_id} created (Secret kube-system/"
                    f"{created.token.name}, expires {expiry}); re-join each deleted node by running "
                    "on it:"
                )
                for node in self._deleted:
                    lines.append(f"  {node}: {created.command(force_join=True, node_name=node)}")
                lines.append(f"warning: {FORCE_JOIN_WARNING}")
        auto = self._auto()
        if auto and not self.platform_marks:
            lines.append(
                "automatically provisioned nodes still trust the old CA; delete their Platform "
                "NodeClaims so that the Platform replaces them:"
            )
            lines += [
                f"  {cmd}"
                for cmd in delete_nodeclaims_commands(
                    auto, platform_context=self.platform_context, platform_namespace=self.platform_namespace
                )
            ]
        return lines


@dataclass
class SkippedPrivateNodesHook:
    """CaChangeHook for `--skip-private-nodes`: touches no node, tells the user the manual procedure.

    The escape hatch for a vCluster whose virtual API cannot be reached (for example because its CA
    expired), where nodes can neither be listed nor drained before the change.
    """

    name: str = "private-nodes-skipped"

    def describe(self, change: CaChange) -> list[str]:
        return ["private nodes: skipped (--skip-private-nodes); they must be re-joined by hand afterwards"]

    def preflight(self, change: CaChange) -> None:
        """Nothing to check: the user chose to handle the nodes."""

    def before(self, change: CaChange) -> list[str]:
        return []

    def after(self, change: CaChange) -> list[str]:
        ref = change.vcluster
        return [
            "private nodes were not touched (--skip-private-nodes); their kubelets still trust the old CA:",
            f"  manual nodes: `vcluster node delete NODE` (add --drain=false if the kubelet is down), then "
            f"`kubectl vcerts token create {ref.name} -n {ref.namespace}` and run the join command on "
            "each node with `--force-join` (it kills the node's running containers)",
            "  automatically provisioned nodes: delete their nodeclaims.management.loft.sh on the "
            "Platform cluster (`kubectl vcerts nodeclaims recycle` does it) so that they re-join",
        ]
