"""`PlatformMarkHook`: after a CA change, mark the vCluster's VirtualClusterInstance for the hook.

`after()` sets `contract.CA_ROTATED_ANNOTATION` (RFC 3339 UTC of the change) and
`contract.CA_FINGERPRINT_ANNOTATION` (sha256:<hex>) on the instance; the platform hook then recycles
the instance's NodeClaims. The instance is the one named "NAMESPACE/NAME", or the only one whose
spec.clusterRef names the vCluster's host namespace and release. `preflight` finds it and proves the
write is allowed with a server-side dry run, so a typo or missing RBAC refuses before the CA changes.

Imports contract, errors, rotation.ports and rotation.recycle only: no kubernetes, typer or rich.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import NotFoundError, UsageError, VcertsError
from kubectl_vcerts.rotation.ports import CaChange
from kubectl_vcerts.rotation.recycle_record import Instance


class PlatformMarkPort(Protocol):
    """Implemented by kubectl_vcerts.kube.platform.PlatformGateway."""

    def read_instance(self, namespace: str, name: str) -> Instance: ...

    def find_instances(self, *, cluster_namespace: str, vcluster: str) -> list[Instance]: ...

    def annotate_instance(self, instance: Instance, changes: Mapping[str, str | None], *,
                          dry_run: bool = False) -> Instance: ...


def parse_vci_ref(text: str) -> tuple[str, str]:
    """"NAMESPACE/NAME" → (namespace, name)."""
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise UsageError(f"--platform-vci {text!r} is not NAMESPACE/NAME",
                         hint="e.g. --platform-vci p-default/my-vcluster")
    return namespace, name


def mark_annotations(change: CaChange) -> dict[str, str | None]:
    return {contract.CA_ROTATED_ANNOTATION: timefmt.rfc3339(change.at),
            contract.CA_FINGERPRINT_ANNOTATION: change.new_ca_fingerprint}


class PlatformMarkHook:
    """A `CaChangeHook` that annotates the VirtualClusterInstance once the new CA is live."""

    name = "platform-mark"

    def __init__(self, gateway: PlatformMarkPort, *, vci: str | None) -> None:
        self.gateway = gateway
        self.vci = parse_vci_ref(vci) if vci else None

    def _find(self, change: CaChange) -> Instance:
        if self.vci is not None:
            namespace, name = self.vci
            try:
                return self.gateway.read_instance(namespace, name)
            except NotFoundError as exc:
                raise NotFoundError(f"virtualclusterinstance {name} not found in namespace {namespace}",
                                    hint="check --platform-vci and --platform-context") from exc
        vc = change.vcluster
        found = self.gateway.find_instances(cluster_namespace=vc.namespace, vcluster=vc.name)
        if not found:
            raise NotFoundError(
                f"no virtualclusterinstance has spec.clusterRef namespace={vc.namespace} "
                f"virtualCluster={vc.name}",
                hint="name it with --platform-vci NAMESPACE/NAME, or check --platform-context")
        if len(found) > 1:
            names = ", ".join(sorted(i.key for i in found))
            raise UsageError(f"several virtualclusterinstances match vCluster {vc.name}: {names}",
                             hint="choose one with --platform-vci NAMESPACE/NAME")
        return found[0]

    def describe(self, change: CaChange) -> list[str]:
        vc = change.vcluster
        target = f"{self.vci[0]}/{self.vci[1]}" if self.vci else (
            f"the VirtualClusterInstance whose spec.clusterRef is {vc.namespace}/{vc.name}")
        return [f"annotate {target} with {contract.CA_ROTATED_ANNOTATION}=<time of the change> and "
                f"{contract.CA_FINGERPRINT_ANNOTATION}={change.new_ca_fingerprint} (the platform hook then "
                "recycles its NodeClaims)"]

    def preflight(self, change: CaChange) -> None:
        instance = self._find(change)
        # A server-side dry run proves RBAC and admission allow the write before anything changes.
        self.gateway.annotate_instance(instance, mark_annotations(change), dry_run=True)

    def before(self, change: CaChange) -> list[str]:
        return []

    def after(self, change: CaChange) -> list[str]:
        changes = mark_annotations(change)
        try:
            instance = self._find(change)
            # Re-read right before writing: the guarded write fails only on a concurrent change.
            instance = self.gateway.read_instance(instance.namespace, instance.name)
            self.gateway.annotate_instance(instance, changes)
        except VcertsError as exc:
            values = " ".join(f"{k}={v}" for k, v in changes.items())
            return [f"could not mark the VirtualClusterInstance: {exc}",
                    "mark it by hand: kubectl --context <platform> annotate "
                    f"virtualclusterinstances.{contract.MANAGEMENT_GROUP} -n <namespace> <name> "
                    f"--overwrite {values}"]
        return [f"marked virtualclusterinstance {instance.key}: {contract.CA_ROTATED_ANNOTATION}="
                f"{changes[contract.CA_ROTATED_ANNOTATION]}; the platform hook recycles its NodeClaims"]
