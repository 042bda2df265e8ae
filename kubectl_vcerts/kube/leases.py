"""coordination.k8s.io Leases: the kubectl vcerts lock and vCluster's cert-rotation Lease.

Bodies are plain dicts so that acquireTime/renewTime are sent in the MicroTime format the API expects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import NotFoundError
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.ports import LeaseRecord

RESOURCE = "leases.coordination.k8s.io"


def _micro(when: datetime) -> str:
    return timefmt.rfc3339_micro(when)


def _record(lease: Any) -> LeaseRecord:
    spec = lease.spec

    def utc(value: datetime | None) -> datetime | None:
        return None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC))

    return LeaseRecord(
        name=lease.metadata.name,
        holder=(spec.holder_identity if spec else None) or "",
        duration_seconds=(spec.lease_duration_seconds if spec else None) or 0,
        acquired=utc(spec.acquire_time if spec else None),
        renewed=utc(spec.renew_time if spec else None),
        resource_version=lease.metadata.resource_version,
    )


def _body(
    namespace: str,
    name: str,
    *,
    holder: str,
    duration_seconds: int,
    acquired: datetime,
    renewed: datetime,
    resource_version: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {contract.MANAGED_BY_LABEL: contract.TOOL_NAME},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration_seconds,
            "acquireTime": _micro(acquired),
            "renewTime": _micro(renewed),
        },
    }


def read_lease(session: KubeSession, *, namespace: str, name: str) -> LeaseRecord | None:
    try:
        lease = api_call(
            Target("get", RESOURCE, name, namespace),
            lambda: session.coordination.read_namespaced_lease(name, namespace, **session.kwargs()),
        )
    except NotFoundError:
        return None
    return _record(lease)


def create_lease(
    session: KubeSession, *, namespace: str, name: str, holder: str, duration_seconds: int, now: datetime
) -> LeaseRecord:
    """Create; an existing Lease raises ConflictError (409 AlreadyExists)."""
    body = _body(namespace, name, holder=holder, duration_seconds=duration_seconds, acquired=now, renewed=now)
    lease = api_call(
        Target("create", RESOURCE, name, namespace),
        lambda: session.coordination.create_namespaced_lease(namespace, body, **session.kwargs()),
    )
    return _record(lease)


def update_lease(
    session: KubeSession,
    *,
    namespace: str,
    name: str,
    holder: str,
    duration_seconds: int,
    acquired: datetime,
    renewed: datetime,
    resource_version: str,
) -> LeaseRecord:
    """Replace guarded by resourceVersion: a concurrent taker makes this a ConflictError."""
    body = _body(
        namespace,
        name,
        holder=holder,
        duration_seconds=duration_seconds,
        acquired=acquired,
        renewed=renewed,
        resource_version=resource_version,
    )
    lease = api_call(
        Target("update", RESOURCE, name, namespace),
        lambda: session.coordination.replace_namespaced_lease(name, namespace, body, **session.kwargs()),
    )
    return _record(lease)


def delete_lease(session: KubeSession, *, namespace: str, name: str, resource_version: str) -> None:
    from kubernetes import client as k8s

    body = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version=resource_version))
    try:
        api_call(
            Target("delete", RESOURCE, name, namespace),
            lambda: session.coordination.delete_namespaced_lease(
                name, namespace, body=body, **session.kwargs()
            ),
        )
    except NotFoundError:
        return
