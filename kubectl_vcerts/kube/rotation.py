"""`KubeRotationPorts`: the rotation workflow's ports (rotation/ports.py) implemented against a session.

Each method is one small call into kube/backups.py, leases.py, pods.py or workloads.py. Re-discovery
(`refresh`) is passed in, so this module does not depend on how discovery reads the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kubectl_vcerts import contract
from kubectl_vcerts.kube import backups, leases, pods, workloads
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.rotation.model import PodState, VCluster
from kubectl_vcerts.rotation.ports import BackupRecord, CertsState, LeaseRecord, OwnerRef


class KubeRotationPorts:
    """Implements CertsPort, BackupPort, LeasePort, PodPort, WorkloadPort and FollowUpPort."""

    def __init__(self, session: KubeSession, *, refresh: Callable[[VCluster], VCluster]) -> None:
        self.session = session
        self._refresh = refresh
        self._certs_object: Any = None

    # CertsPort (the last object read or written is kept: a write at its resourceVersion needs no re-read)
    def read_certs(self, vcluster: VCluster) -> CertsState:
        state, self._certs_object = backups.read_certs_object(
            self.session, namespace=vcluster.namespace, vcluster=vcluster.name
        )
        return state

    def write_certs(
        self,
        vcluster: VCluster,
        *,
        data: Mapping[str, bytes],
        annotations: Mapping[str, str | None],
        resource_version: str,
    ) -> CertsState:
        state, self._certs_object = backups.write_certs_object(
            self.session,
            namespace=vcluster.namespace,
            vcluster=vcluster.name,
            data=data,
            annotations=annotations,
            resource_version=resource_version,
            current=self._certs_object,
        )
        return state

    # BackupPort
    def create_backup(
        self,
        vcluster: VCluster,
        *,
        name: str,
        data: Mapping[str, bytes],
        operation: str,
        source_resource_version: str,
        ca_fingerprint: str,
        created: datetime,
        owners: Sequence[OwnerRef] = (),
        identity: str = "",
    ) -> BackupRecord:
        return backups.create_backup(
            self.session,
            namespace=vcluster.namespace,
            vcluster=vcluster.name,
            name=name,
            data=data,
            operation=operation,
            source_resource_version=source_resource_version,
            ca_fingerprint=ca_fingerprint,
            created=created,
            owners=owners,
            identity=identity,
        )

    def list_backups(self, vcluster: VCluster) -> list[BackupRecord]:
        return backups.list_backups(self.session, namespace=vcluster.namespace, vcluster=vcluster.name)

    def read_backup(self, vcluster: VCluster, name: str) -> BackupRecord:
        return backups.read_backup(self.session, namespace=vcluster.namespace, name=name)

    def delete_backup(self, vcluster: VCluster, name: str) -> None:
        backups.delete_backup(self.session, namespace=vcluster.namespace, name=name)

    # FollowUpPort (rotation/follow_up.py)
    def vcluster_kubeconfig(self, vcluster: VCluster) -> bytes | None:
        return backups.read_secret_value(
            self.session, namespace=vcluster.namespace, name=contract.kubeconfig_secret_name(vcluster.name),
            key="config",
        )

    # LeasePort
    def read_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        return leases.read_lease(self.session, namespace=namespace, name=name)

    def create_lease(
        self, namespace: str, name: str, *, holder: str, duration_seconds: int, now: datetime
    ) -> LeaseRecord:
        return leases.create_lease(
            self.session,
            namespace=namespace,
            name=name,
            holder=holder,
            duration_seconds=duration_seconds,
            now=now,
        )

    def update_lease(
        self,
        namespace: str,
        name: str,
        *,
        holder: str,
        duration_seconds: int,
        acquired: datetime,
        renewed: datetime,
        resource_version: str,
    ) -> LeaseRecord:
        return leases.update_lease(
            self.session,
            namespace=namespace,
            name=name,
            holder=holder,
            duration_seconds=duration_seconds,
            acquired=acquired,
            renewed=renewed,
            resource_version=resource_version,
        )

    def delete_lease(self, namespace: str, name: str, *, resource_version: str) -> None:
        leases.delete_lease(self.session, namespace=namespace, name=name, resource_version=resource_version)

    # PodPort
    def list_pods(self, vcluster: VCluster) -> tuple[tuple[PodState, ...], tuple[PodState, ...]]:
        # One request for both groups (the wait loop calls this every poll): `app in (vcluster,
        # vcluster-etcd),release=NAME` selects exactly the union of the two equality selectors.
        app = contract.VCLUSTER_APP_LABEL
        grouped = pods.list_pods_by_label(
            self.session,
            namespace=vcluster.namespace,
            selector=f"{app} in ({contract.VCLUSTER_APP_VALUE},{contract.ETCD_APP_VALUE}),"
            f"{contract.RELEASE_LABEL}={vcluster.name}",
            label=app,
        )
        return grouped.get(contract.VCLUSTER_APP_VALUE, ()), grouped.get(contract.ETCD_APP_VALUE, ())

    def delete_pod(self, namespace: str, name: str, *, uid: str) -> None:
        pods.delete_pod(self.session, namespace=namespace, name=name, uid=uid)

    def roll_out(self, vcluster: VCluster, *, at: datetime) -> None:
        workloads.roll_out(self.session, vcluster, at=at)

    # WorkloadPort
    def refresh(self, vcluster: VCluster) -> VCluster:
        return self._refresh(vcluster)

    def finish_interrupted_rotation(self, vcluster: VCluster, *, replicas: int) -> None:
        workloads.finish_interrupted_rotation(self.session, vcluster, replicas=replicas)
