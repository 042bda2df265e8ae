"""Find vClusters on the host cluster the way vCluster's CLI does (pkg/cli/find), through a reader port.

Facts: loft-sh/vcluster `pkg/cli/find/find.go` (discovery, version, status) and
`chart/templates/config-secret.yaml` (vc-config-NAME). The functions that
turn records into a `VCluster` are pure (`assemble_vclusters`, `vcluster_status`, `image_version`,
`config_facts`); `find_vcluster` and `list_vclusters` do the reads through `VClusterReader`.

Imports nothing from kube/, cli/, kubernetes, typer or rich.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kubectl_vcerts import contract
from kubectl_vcerts.errors import ForbiddenError, NotFoundError
from kubectl_vcerts.pki.sans import SanConfig
from kubectl_vcerts.rotation.model import BackingStore, Distro, PodState, VCluster, WorkloadKind

if TYPE_CHECKING:  # annotations only (check starts faster without the ports)
    from kubectl_vcerts.rotation.ports import VClusterReader
    from kubectl_vcerts.rotation.records import ListedPod, SecretObject, WorkloadRecord

# vCluster's status strings (pkg/cli/find: type Status string).
STATUS_RUNNING = "Running"
STATUS_PAUSED = "Paused"
STATUS_SLEEPING = "Sleeping (workloads only)"
STATUS_SCALED_DOWN = "ScaledDown"

CONFIG_SELECTOR = f"{contract.VCLUSTER_SELECTOR},{contract.RELEASE_LABEL}"  # chart labels of vc-config-NAME
ETCD_SELECTOR = f"app={contract.ETCD_APP_VALUE}"


def image_version(image: str | None) -> str:
    """The syncer image tag, with vCluster's rule: used only if the image splits on ':' into exactly two
    parts (a registry port or `tag@sha256:` gives three parts and so no version)."""
    if not image:
        return ""
    parts = image.split(":")
    return parts[1] if len(parts) == 2 else ""


@dataclass(frozen=True)
class ConfigFacts:
    """What vc-config-NAME's config.yaml says about the control plane."""

    distro: Distro = Distro.UNKNOWN
    backing_store: BackingStore = BackingStore.EMBEDDED_DATABASE
    private_nodes: bool = False
    # SAN inputs (pki/sans.py): the service CIDR when the config fixes it, cluster domain, extraSANs
    service_cidr: str | None = None
    cluster_domain: str = "cluster.local"
    extra_sans: tuple[str, ...] = ()
    standalone: bool = False


def _enabled(tree: Any, *path: str) -> bool:
    node = tree
    for key in path:
        if not isinstance(node, Mapping):
            return False
        node = node.get(key)
    return node is True or (isinstance(node, str) and node.lower() == "true")


def config_facts(config: SecretObject | None) -> ConfigFacts:
    """Distro, backing store and private nodes from vc-config-NAME.

    Distro uses the old `Config.Distro()` precedence k3s > k0s > k8s, default k8s; no config secret or
    an unreadable config.yaml gives `Distro.UNKNOWN` (checking still works; rotating refuses).
    """
    if config is None:
        return ConfigFacts()
    from kubectl_vcerts import kubeyaml  # parses Helm's config.yaml without importing PyYAML

    store_annotation = config.annotations.get(contract.STORE_ANNOTATION, "")
    try:
        values = kubeyaml.load(config.data.get(contract.CONFIG_SECRET_KEY, b"") or b"")
    except kubeyaml.YamlError:
        values = None
    if not isinstance(values, Mapping):
        store = BackingStore(store_annotation) if store_annotation in set(BackingStore) else None
        return ConfigFacts(backing_store=store or BackingStore.EMBEDDED_DATABASE)
    if _enabled(values, "controlPlane", "distro", "k3s", "enabled"):
        distro = Distro.K3S
    elif _enabled(values, "controlPlane", "distro", "k0s", "enabled"):
        distro = Distro.K0S
    else:
        distro = Distro.K8S
    store_path = ("controlPlane", "backingStore")
    if _enabled(values, *store_path, "etcd", "embedded", "enabled"):
        store = BackingStore.EMBEDDED_ETCD
    elif _enabled(values, *store_path, "etcd", "deploy", "enabled"):
        store = BackingStore.DEPLOYED_ETCD
    elif _enabled(values, *store_path, "etcd", "external", "enabled"):
        store = BackingStore.EXTERNAL_ETCD
    elif _enabled(values, *store_path, "database", "external", "enabled"):
        store = BackingStore.EXTERNAL_DATABASE
    elif store_annotation in set(BackingStore):
        store = BackingStore(store_annotation)
    else:
        store = BackingStore.EMBEDDED_DATABASE
    private_nodes = _enabled(values, "privateNodes", "enabled")
    return ConfigFacts(distro=distro, backing_store=store, private_nodes=private_nodes,
                       **_san_inputs(values, private_nodes=private_nodes))


def _get(tree: Any, *path: str) -> Any:
    node = tree
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _san_inputs(values: Mapping[str, Any], *, private_nodes: bool) -> dict[str, Any]:
    """vCluster's service CIDR rule (pkg/util/servicecidr): the legacy top-level `serviceCIDR`; with
    private nodes `networking.serviceCIDR` or 10.96.0.0/12; else the Service's annotation (read by
    `find_vcluster`). Cluster domain `networking.advanced.clusterDomain`; `controlPlane.proxy.extraSANs`."""
    cidr = _get(values, "serviceCIDR")
    if not (isinstance(cidr, str) and cidr) and private_nodes:
        cidr = _get(values, "networking", "serviceCIDR") or "10.96.0.0/12"
    domain = _get(values, "networking", "advanced", "clusterDomain")
    extra = _get(values, "controlPlane", "proxy", "extraSANs")
    return {
        "service_cidr": cidr if isinstance(cidr, str) and cidr else None,
        "cluster_domain": domain if isinstance(domain, str) and domain else "cluster.local",
        "extra_sans": tuple(str(s) for s in extra) if isinstance(extra, list) else (),
        "standalone": _enabled(values, "controlPlane", "standalone", "enabled"),
    }


def uses_pvc(workload: WorkloadRecord) -> bool:
    """vCluster's `usesPVC`: the syncer mounts `data` and `data` is a claim template or a PVC volume."""
    return "data" in workload.syncer_mounts and (
        "data" in workload.claim_templates or "data" in workload.pvc_volumes
    )


def vcluster_status(workload: WorkloadRecord, config: SecretObject | None, pods: Sequence[PodState]) -> str:
    """vCluster's status algorithm (`getVCluster`): Paused, Sleeping, then the kubectl-printer
    status of each pod in list order — the last one wins — then ScaledDown or "" without pods."""
    if (workload.annotations.get(contract.PAUSED_ANNOTATION) == "true"
            or workload.labels.get(contract.SLEEP_MODE_LABEL) == "true"):
        return STATUS_PAUSED
    if config is not None and contract.SLEEP_TYPE_ANNOTATION in config.annotations:
        return STATUS_SLEEPING  # present, whatever its value (find.go checks `_, ok :=`)
    status = ""
    for pod in pods:
        status = pod.status
    if not pods and workload.replicas == 0:
        return STATUS_SCALED_DOWN
    return status


def assemble_vcluster(workload: WorkloadRecord, *, config: SecretObject | None, pods: Sequence[PodState],
                      etcd_pods: Sequence[PodState] = ()) -> VCluster:
    """One `VCluster` from its workload, its vc-config secret and its pods (all already read)."""
    facts = config_facts(config)
    name, namespace = workload.labels[contract.RELEASE_LABEL], workload.namespace
    san_config = None if facts.standalone else SanConfig(
        name=name, namespace=namespace, service_cidr=facts.service_cidr,
        cluster_domain=facts.cluster_domain, extra_sans=facts.extra_sans)
    return VCluster(
        name=name,
        namespace=namespace,
        kind=workload.kind,
        version=image_version(workload.syncer_image),
        status=vcluster_status(workload, config, pods),
        replicas=workload.replicas,
        persistence=uses_pvc(workload),
        distro=facts.distro,
        backing_store=facts.backing_store,
        private_nodes=facts.private_nodes,
        restoring=workload.annotations.get(contract.RESTORING_ANNOTATION) == "true",
        pods=tuple(pods),
        etcd_pods=tuple(etcd_pods),
        annotations=dict(workload.annotations),
        rollout=workload.rollout,
        san_config=san_config,
        workload_name=workload.name,
        workload_uid=workload.uid,
    )


def assemble_vclusters(workloads: Iterable[WorkloadRecord], *, configs: Iterable[SecretObject],
                       pods: Iterable[ListedPod], etcd_pods: Iterable[ListedPod] = ()) -> list[VCluster]:
    """Pair workloads with their config secrets and pods read by list calls (no per-vCluster reads).

    Workloads without a `release` label do not count (vCluster skips them). Order: as listed
    (StatefulSets before Deployments), which is vCluster's order.
    """
    config_by = {(c.namespace, c.name): c for c in configs}
    pods_by: dict[tuple[str, str], list[PodState]] = {}
    for pod in pods:
        pods_by.setdefault((pod.namespace, pod.release), []).append(pod.state)
    etcd_by: dict[tuple[str, str], list[PodState]] = {}
    for pod in etcd_pods:
        etcd_by.setdefault((pod.namespace, pod.release), []).append(pod.state)
    found: list[VCluster] = []
    for workload in workloads:
        release = workload.labels.get(contract.RELEASE_LABEL)
        if not release:
            continue
        key = (workload.namespace, release)
        config = config_by.get((workload.namespace, contract.config_secret_name(release)))
        found.append(assemble_vcluster(workload, config=config, pods=pods_by.get(key, ()),
                                       etcd_pods=etcd_by.get(key, ())))
    return found


def list_accessible_workloads(reader: VClusterReader, *, namespace: str | None, release: str | None = None,
                              selector: str = "") -> tuple[list[WorkloadRecord], str | None]:
    """List workloads; all namespaces falls back to the context namespace on Forbidden (vCluster's
    getAccessibleNS). Returns the records and the namespace actually listed."""
    try:
        return reader.list_workloads(namespace=namespace, release=release, selector=selector), namespace
    except ForbiddenError:
        if namespace is not None:
            raise
        fallback = reader.default_namespace
        return reader.list_workloads(namespace=fallback, release=release, selector=selector), fallback


def list_vclusters(reader: VClusterReader, *, namespace: str | None) -> list[VCluster]:
    """Every vCluster in `namespace` (None: all namespaces), with five list calls whatever their number:
    StatefulSets, Deployments, vc-config secrets, control-plane pods and deployed-etcd pods."""
    workloads, listed = list_accessible_workloads(reader, namespace=namespace)
    if not workloads:
        return []
    configs = reader.list_secrets(namespace=listed, selector=CONFIG_SELECTOR)
    pods = reader.list_pods(namespace=listed, selector=contract.VCLUSTER_SELECTOR)
    etcd_pods = reader.list_pods(namespace=listed, selector=ETCD_SELECTOR)
    return assemble_vclusters(workloads, configs=configs, pods=pods, etcd_pods=etcd_pods)


def other_namespaces(reader: VClusterReader, *, name: str, namespace: str) -> list[str]:
    """Namespaces other than `namespace` holding a vCluster called `name` ([] when we may not look)."""
    try:
        workloads = reader.list_workloads(namespace=None, release=name)
    except ForbiddenError:
        return []
    return sorted({w.namespace for w in workloads if w.namespace != namespace})


def not_found(reader: VClusterReader, *, name: str, namespace: str) -> NotFoundError:
    """The error for a missing vCluster, naming the namespaces where one of that name exists."""
    elsewhere = other_namespaces(reader, name=name, namespace=namespace)
    if elsewhere:
        return NotFoundError(
            f"vcluster {name} not found in namespace {namespace}; found in: {', '.join(elsewhere)}",
            hint=f"use -n {elsewhere[0]}" if len(elsewhere) == 1 else "use -n NAMESPACE",
        )
    return NotFoundError(
        f"vcluster {name} not found in namespace {namespace}",
        hint="list vClusters with `kubectl vcerts check -A`, or pass -n NAMESPACE",
    )


def find_vcluster(
    reader: VClusterReader, *, name: str, namespace: str, for_rotation: bool = False
) -> VCluster:
    """The vCluster `name` in `namespace` (reads only that vCluster's objects). `for_rotation` (planning
    a rotation) also reads what only a rotation needs: the Service's detected CIDR when vc-config does
    not fix one (the SANs vCluster would issue) and, with deployed etcd, how NAME-etcd replaces pods
    (a restart must not roll out a change staged under OnDelete); `check` does without those requests.

    Raises NotFoundError (listing namespaces where a vCluster of that name exists), ForbiddenError,
    UnreachableError. Works whatever the vCluster's state (crash-looping, scaled down, paused).
    """
    workloads = reader.list_workloads(namespace=namespace, release=name)
    workloads = [w for w in workloads if w.labels.get(contract.RELEASE_LABEL) == name]
    if not workloads:
        raise not_found(reader, name=name, namespace=namespace)
    workload = workloads[0]  # StatefulSet before Deployment, as vCluster lists them
    release_selector = f"{contract.RELEASE_LABEL}={name}"
    config = reader.read_secret(namespace=namespace, name=contract.config_secret_name(name))
    pods = reader.list_pods(namespace=namespace, selector=f"{contract.VCLUSTER_SELECTOR},{release_selector}")
    etcd_pods = reader.list_pods(namespace=namespace, selector=f"{ETCD_SELECTOR},{release_selector}")
    vcluster = assemble_vcluster(workload, config=config, pods=[p.state for p in pods],
                                 etcd_pods=[p.state for p in etcd_pods])
    if for_rotation and etcd_pods:
        rollout = reader.read_rollout(namespace=namespace, name=contract.etcd_statefulset_name(name))
        vcluster = replace(vcluster, etcd_rollout=rollout)
    if for_rotation and vcluster.san_config is not None and vcluster.san_config.service_cidr is None:
        annotations = reader.read_service_annotations(namespace=namespace, name=name) or {}
        cidr = annotations.get(contract.SERVICE_CIDR_ANNOTATION)
        if cidr:
            vcluster = replace(vcluster, san_config=replace(vcluster.san_config, service_cidr=cidr))
    return vcluster


__all__ = [
    "STATUS_PAUSED",
    "STATUS_RUNNING",
    "STATUS_SCALED_DOWN",
    "STATUS_SLEEPING",
    "ConfigFacts",
    "WorkloadKind",
    "assemble_vcluster",
    "assemble_vclusters",
    "config_facts",
    "find_vcluster",
    "image_version",
    "list_accessible_workloads",
    "list_vclusters",
    "not_found",
    "uses_pvc",
    "vcluster_status",
]
