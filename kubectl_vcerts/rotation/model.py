"""Domain nouns of the workflow: a vCluster as the host cluster shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubectl_vcerts.pki.sans import SanConfig


class WorkloadKind(StrEnum):
    STATEFULSET = "StatefulSet"
    DEPLOYMENT = "Deployment"


class Distro(StrEnum):
    K8S = "k8s"
    K3S = "k3s"
    K0S = "k0s"
    UNKNOWN = "unknown"


class BackingStore(StrEnum):
    EMBEDDED_DATABASE = "embedded-database"
    EXTERNAL_DATABASE = "external-database"
    EMBEDDED_ETCD = "embedded-etcd"
    DEPLOYED_ETCD = "deployed-etcd"
    EXTERNAL_ETCD = "external-etcd"


@dataclass(frozen=True)
class PodState:
    name: str
    uid: str
    status: str  # kubectl-printer status: Running, Pending, CrashLoopBackOff, Terminating, ...
    ready: bool
    phase: str
    # when its running PKI was read: the syncer container's start (kube.pods.pki_loaded_at); None
    # while that container is not running
    started: datetime | None = field(default=None, compare=False)
    # its `data` volume (the chart's name for /data and /var/lib/etcd) is an emptyDir: deleting the
    # pod deletes what it stores there
    ephemeral: bool = field(default=False, compare=False)
    # the StatefulSet revision it was made from (label controller-revision-hash; "" for other pods)
    revision: str = field(default="", compare=False)


@dataclass(frozen=True)
class Rollout:
    """How a workload's controller replaces pods: what decides between a template rollout and
    deleting pods, and whether deleting one would apply a template change staged under OnDelete."""

    strategy: str = "RollingUpdate"  # StatefulSet updateStrategy.type / Deployment strategy.type
    paused: bool = False  # Deployment spec.paused: template changes are not rolled out
    update_revision: str = ""  # StatefulSet status.updateRevision: what a recreated pod is made from


@dataclass(frozen=True)
class VCluster:
    """One virtual cluster found on the host (pkg/cli/find semantics)."""

    name: str
    namespace: str
    kind: WorkloadKind
    version: str  # tag of the syncer image; "" when not parsable (digest, registry port)
    status: str  # Running, Paused, ScaledDown, CrashLoopBackOff, ... ("" when no pods)
    replicas: int  # spec.replicas of the control-plane workload
    persistence: bool  # /data is a PVC (StatefulSet volumeClaimTemplates or a PVC volume)
    distro: Distro = Distro.K8S
    backing_store: BackingStore = BackingStore.EMBEDDED_DATABASE
    private_nodes: bool = False
    restoring: bool = False  # loft.sh/restoring left on the workload by an interrupted rotation
    pods: tuple[PodState, ...] = ()
    etcd_pods: tuple[PodState, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    rollout: Rollout = field(default_factory=Rollout, compare=False)  # of the control-plane workload
    etcd_rollout: Rollout | None = field(default=None, compare=False)  # of NAME-etcd (None: not read)
    # what vCluster computes SANs from (vc-config-NAME, the Service); None: unknown (standalone)
    san_config: SanConfig | None = field(default=None, compare=False)
    # the control-plane StatefulSet or Deployment itself (Events about the vCluster are recorded on it)
    workload_name: str = field(default="", compare=False)
    workload_uid: str = field(default="", compare=False)

    @property
    def is_running(self) -> bool:
        """vCluster's IsRunning(): status is exactly Running (Ready is not required)."""
        return self.status == "Running"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"
