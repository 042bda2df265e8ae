"""In-memory `VClusterReader` and record builders for the discovery and check unit tests.

The fake answers like the API would (label selectors on the listed objects, NotFound as None), counts
calls so that tests can assert "one list call, not one per vCluster", and can deny verbs (Forbidden).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from kubectl_vcerts.errors import ForbiddenError
from kubectl_vcerts.rotation.model import PodState, Rollout, WorkloadKind
from kubectl_vcerts.rotation.records import ListedPod, SecretObject, WorkloadRecord


def matches(labels: Mapping[str, str], selector: str) -> bool:
    """Equality-based selectors and bare `key` existence, as the tests use them."""
    for term in filter(None, selector.split(",")):
        key, sep, value = term.partition("=")
        if sep and labels.get(key) != value:
            return False
        if not sep and key not in labels:
            return False
    return True


def workload(
    name: str = "vc",
    namespace: str = "team-a",
    *,
    kind: WorkloadKind = WorkloadKind.STATEFULSET,
    image: str | None = "ghcr.io/loft-sh/vcluster-pro:0.36.1",
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    pvc: bool = True,
    release: str | None = None,
) -> WorkloadRecord:
    base = {"app": "vcluster", "release": release if release is not None else name}
    if release == "":
        del base["release"]
    return WorkloadRecord(
        kind=kind,
        name=name,
        namespace=namespace,
        labels={**base, **(labels or {})},
        annotations=dict(annotations or {}),
        replicas=replicas,
        syncer_image=image,
        syncer_mounts=("data", "vcluster-config"),
        claim_templates=("data",) if pvc and kind is WorkloadKind.STATEFULSET else (),
    )


def pod(name: str, status: str = "Running", *, ready: bool = True) -> PodState:
    return PodState(name=name, uid=f"uid-{name}", status=status, ready=ready, phase="Running")


def config_secret(
    name: str = "vc",
    namespace: str = "team-a",
    *,
    yaml_text: str = "",
    annotations: dict[str, str] | None = None,
) -> SecretObject:
    return SecretObject(
        name=f"vc-config-{name}",
        namespace=namespace,
        data={"config.yaml": yaml_text.encode()},
        labels={"app": "vcluster", "release": name},
        annotations=dict(annotations or {}),
    )


def certs_secret(
    data: Mapping[str, bytes], name: str = "vc", namespace: str = "team-a", *, labelled: bool = True
) -> SecretObject:
    labels = {"app": "vcluster", "vcluster-name": name} if labelled else {}
    return SecretObject(name=f"{name}-certs", namespace=namespace, data=dict(data), labels=labels)


@dataclass
class FakeReader:
    """Implements VClusterReader over lists of records."""

    workloads: list[WorkloadRecord] = field(default_factory=list)
    pods: list[tuple[str, dict[str, str], PodState]] = field(
        default_factory=list
    )  # (namespace, labels, state)
    secrets: list[SecretObject] = field(default_factory=list)
    services: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # annotations
    rollouts: dict[tuple[str, str], Rollout] = field(default_factory=dict)  # other StatefulSets
    namespace: str = "team-a"
    forbid_all_namespaces: set[str] = field(default_factory=set)  # methods denied cluster-wide
    forbid: set[str] = field(default_factory=set)  # methods denied everywhere
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def default_namespace(self) -> str:
        return self.namespace

    def _guard(self, method: str, resource: str, namespace: str | None) -> None:
        self.calls[method] += 1
        if method in self.forbid or (namespace is None and method in self.forbid_all_namespaces):
            where = "" if namespace is None else f" in namespace {namespace}"
            raise ForbiddenError(
                f"forbidden: cannot list {resource}{where}",
                hint=f"ask for RBAC permission to list {resource}",
            )

    def close(self) -> None:
        """Like JsonReader.close: the CLI releases the reader's connection when done."""
        self.calls["close"] += 1

    def add_pod(self, namespace: str, release: str, state: PodState, app: str = "vcluster") -> None:
        self.pods.append((namespace, {"app": app, "release": release}, state))

    def list_workloads(self, *, namespace: str | None, release: str | None = None,
                       selector: str = "") -> list[WorkloadRecord]:
        self._guard("list_workloads", "statefulsets.apps", namespace)
        selector = ",".join(p for p in ("app=vcluster", f"release={release}" if release is not None else "",
                                        selector) if p)
        return [
            w
            for w in self.workloads
            if (namespace is None or w.namespace == namespace) and matches(w.labels, selector)
        ]

    def list_pods(self, *, namespace: str | None, selector: str) -> list[ListedPod]:
        self._guard("list_pods", "pods", namespace)
        return [
            ListedPod(namespace=ns, release=labels.get("release", ""), state=state)
            for ns, labels, state in self.pods
            if (namespace is None or ns == namespace) and matches(labels, selector)
        ]

    def read_secret(self, *, namespace: str, name: str) -> SecretObject | None:
        self._guard("read_secret", "secrets", namespace)
        return next((s for s in self.secrets if s.namespace == namespace and s.name == name), None)

    def read_service_annotations(self, *, namespace: str, name: str) -> dict[str, str] | None:
        return self.services.get((namespace, name))

    def read_rollout(self, *, namespace: str, name: str) -> Rollout | None:
        self._guard("read_rollout", "statefulsets.apps", namespace)
        return self.rollouts.get((namespace, name))

    def list_secrets(self, *, namespace: str | None, selector: str,
                     keep: Callable[[str], bool] | None = None) -> list[SecretObject]:
        self._guard("list_secrets", "secrets", namespace)
        return [
            s
            for s in self.secrets
            if (namespace is None or s.namespace == namespace) and matches(s.labels, selector)
            and (keep is None or keep(s.name))
        ]

    def iter_secrets(self, *, namespace: str | None, selector: str,
                     keep: Callable[[str], bool] | None = None) -> Iterator[SecretObject]:
        yield from self.list_secrets(namespace=namespace, selector=selector, keep=keep)
