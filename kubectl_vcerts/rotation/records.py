"""Plain records of host objects that kube/ fills in and rotation/ reads: Secrets, workloads, pods.

kube/discovery.py and kube/secrets.py build them from raw API objects; rotation/discovery.py and
rotation/check.py turn them into `VCluster` and reports. Plain data only: no client objects. Kept apart
from the Protocols in rotation/ports.py because `check` needs only these (and starts faster without
the rest). Imports only the standard library and rotation.model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubectl_vcerts.rotation.model import PodState, Rollout, WorkloadKind


class SecretData(dict[str, bytes]):
    """Secret data (holds private keys) whose repr names only the keys, so that tracebacks, logs and
    test failures never show key material. Use it for every copy of NAME-certs data."""

    def __repr__(self) -> str:
        return f"<secret data: {len(self)} keys>"


# --- discovery and check (read side) -----------------------------------------------------------------
# kube/discovery.py and kube/secrets.py fill these in from raw API objects; rotation/discovery.py and
# rotation/check.py turn them into `VCluster` and reports. Plain data only: no client objects.


@dataclass(frozen=True)
class SecretObject:
    """A Secret as read: `data` is base64-decoded (holds keys: never logged, repr hides it)."""

    name: str
    namespace: str
    data: dict[str, bytes] = field(repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    resource_version: str = ""
    uid: str = ""
    immutable: bool = False
    type: str = "Opaque"
    owner_references: tuple[dict[str, Any], ...] = field(default=(), compare=False)  # raw JSON (camelCase)


@dataclass(frozen=True)
class WorkloadRecord:
    """A control-plane StatefulSet or Deployment labelled app=vcluster, reduced to what discovery reads."""

    kind: WorkloadKind
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    replicas: int  # spec.replicas (1 when unset, as the API defaults it)
    syncer_image: str | None  # image of the pod-template container named `syncer`
    syncer_mounts: tuple[str, ...] = ()  # volumeMount names of the syncer container
    claim_templates: tuple[str, ...] = ()  # StatefulSet volumeClaimTemplates names
    pvc_volumes: tuple[str, ...] = ()  # pod-template volumes backed by a persistentVolumeClaim
    rollout: Rollout = field(default_factory=Rollout)
    uid: str = ""  # metadata.uid: what Events about the vCluster name (involvedObject)


@dataclass(frozen=True)
class ListedPod:
    """A pod with the labels discovery groups by (`release`) and its kubectl-printer state."""

    namespace: str
    release: str
    state: PodState
