"""`NAME-certs` read and guarded replace, and the backup Secrets `NAME-certs-backup-<unix>`.

The replace keeps everything of NAME-certs we do not mean to change (labels, other annotations,
ownerReferences, type): it reads the object, checks that its resourceVersion is the one the caller
planned from, edits data and annotations and PUTs it with that resourceVersion (409 if it moved).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubectl_vcerts import contract, timefmt
from kubectl_vcerts.errors import ConflictError
from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.ports import BackupRecord, CertsState, OwnerRef
from kubectl_vcerts.rotation.records import SecretData

BACKUP_SELECTOR = f"{contract.BACKUP_LABEL}=true"


def _decode(data: Mapping[str, str] | None) -> SecretData:
    return SecretData({key: base64.b64decode(value or "") for key, value in (data or {}).items()})


def _encode(data: Mapping[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(value).decode("ascii") for key, value in data.items()}


def _read_secret(session: KubeSession, namespace: str, name: str) -> Any:
    return api_call(
        Target("get", "secrets", name, namespace),
        lambda: session.core.read_namespaced_secret(name, namespace, **session.kwargs()),
    )


def _owners(meta: Any) -> tuple[OwnerRef, ...]:
    return tuple(
        OwnerRef(api_version=o.api_version, kind=o.kind, name=o.name, uid=o.uid)
        for o in meta.owner_references or ()
    )


def _state(secret: Any) -> CertsState:
    return CertsState(
        data=_decode(secret.data),
        resource_version=secret.metadata.resource_version,
        annotations=dict(secret.metadata.annotations or {}),
        owners=_owners(secret.metadata),
        uid=secret.metadata.uid or "",
    )


def read_certs_object(session: KubeSession, *, namespace: str, vcluster: str) -> tuple[CertsState, Any]:
    """NAME-certs as a CertsState plus the raw object (kept by callers to replace it without a re-read)."""
    secret = _read_secret(session, namespace, contract.certs_secret_name(vcluster))
    return _state(secret), secret


def read_certs(session: KubeSession, *, namespace: str, vcluster: str) -> CertsState:
    return read_certs_object(session, namespace=namespace, vcluster=vcluster)[0]


def write_certs_object(
    session: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    data: Mapping[str, bytes],
    annotations: Mapping[str, str | None],
    resource_version: str,
    current: Any = None,
) -> tuple[CertsState, Any]:
    """Replace NAME-certs guarded by `resource_version`; `current` is the object read at that version
    (read again when not given). Returns the new state and object."""
    name = contract.certs_secret_name(vcluster)
    secret = current
    if secret is None or secret.metadata.resource_version != resource_version:
        secret = _read_secret(session, namespace, name)
    if secret.metadata.resource_version != resource_version:
        raise ConflictError(f"secret {namespace}/{name} changed since it was read")
    secret = copy.deepcopy(secret)
    merged = dict(secret.metadata.annotations or {})
    for key, value in annotations.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    secret.metadata.annotations = merged
    secret.data = _encode(data)
    secret.string_data = None
    secret.metadata.resource_version = resource_version
    result = api_call(
        Target("update", "secrets", name, namespace),
        lambda: session.core.replace_namespaced_secret(name, namespace, secret, **session.kwargs()),
    )
    return _state(result), result


def write_certs(
    session: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    data: Mapping[str, bytes],
    annotations: Mapping[str, str | None],
    resource_version: str,
) -> CertsState:
    return write_certs_object(
        session,
        namespace=namespace,
        vcluster=vcluster,
        data=data,
        annotations=annotations,
        resource_version=resource_version,
    )[0]


def _parse_time(text: str | None, fallback: datetime | None) -> datetime:
    parsed = timefmt.parse_rfc3339(text) if text else None
    if parsed is not None:
        return parsed
    if fallback is not None:
        return fallback if fallback.tzinfo else fallback.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def _backup_record(secret: Any, *, with_data: bool) -> BackupRecord:
    meta = secret.metadata
    annotations = meta.annotations or {}
    labels = meta.labels or {}
    return BackupRecord(
        name=meta.name,
        namespace=meta.namespace,
        vcluster=labels.get(contract.VCLUSTER_NAME_LABEL, ""),
        created=_parse_time(annotations.get(contract.BACKUP_CREATED_ANNOTATION), meta.creation_timestamp),
        operation=annotations.get(contract.BACKUP_OPERATION_ANNOTATION, ""),
        ca_fingerprint=annotations.get(contract.BACKUP_CA_FINGERPRINT_ANNOTATION, ""),
        source_resource_version=annotations.get(contract.BACKUP_SOURCE_RV_ANNOTATION, ""),
        data=_decode(secret.data) if with_data else None,
        identity=annotations.get(contract.BACKUP_IDENTITY_ANNOTATION, ""),
    )


def create_backup(
    session: KubeSession,
    *,
    namespace: str,
    vcluster: str,
    name: str,
    data: Mapping[str, bytes],
    operation: str,
    source_resource_version: str,
    ca_fingerprint: str,
    created: datetime,
    owners: Sequence[OwnerRef] = (),
    identity: str = "",
) -> BackupRecord:
    """An immutable copy of the full data, owned like NAME-certs (garbage-collected with the vCluster);
    an existing name raises ConflictError (409)."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                contract.MANAGED_BY_LABEL: contract.TOOL_NAME,
                contract.BACKUP_LABEL: "true",
                contract.VCLUSTER_NAME_LABEL: vcluster,
            },
            "annotations": {
                contract.BACKUP_OPERATION_ANNOTATION: operation,
                contract.BACKUP_SOURCE_RV_ANNOTATION: source_resource_version,
                contract.BACKUP_CA_FINGERPRINT_ANNOTATION: ca_fingerprint,
                contract.BACKUP_CREATED_ANNOTATION: timefmt.rfc3339(created),
                **({contract.BACKUP_IDENTITY_ANNOTATION: identity} if identity else {}),
            },
            "ownerReferences": [
                {"apiVersion": o.api_version, "kind": o.kind, "name": o.name, "uid": o.uid} for o in owners
            ],
        },
        "data": _encode(data),
    }
    secret = api_call(
        Target("create", "secrets", name, namespace),
        lambda: session.core.create_namespaced_secret(namespace, body, **session.kwargs()),
    )
    return _backup_record(secret, with_data=False)


def list_backups(session: KubeSession, *, namespace: str, vcluster: str) -> list[BackupRecord]:
    selector = f"{BACKUP_SELECTOR},{contract.VCLUSTER_NAME_LABEL}={vcluster}"
    result = api_call(
        Target("list", "secrets", None, namespace),
        lambda: session.core.list_namespaced_secret(namespace, label_selector=selector, **session.kwargs()),
    )
    records = [_backup_record(s, with_data=False) for s in result.items]
    return sorted(records, key=lambda r: (r.created, r.name), reverse=True)


def read_backup(session: KubeSession, *, namespace: str, name: str) -> BackupRecord:
    return _backup_record(_read_secret(session, namespace, name), with_data=True)


def delete_backup(session: KubeSession, *, namespace: str, name: str) -> None:
    api_call(
        Target("delete", "secrets", name, namespace),
        lambda: session.core.delete_namespaced_secret(name, namespace, **session.kwargs()),
    )


def read_secret_value(session: KubeSession, *, namespace: str, name: str, key: str) -> bytes | None:
    """One decoded key of a Secret; None when the Secret or the key does not exist."""
    from kubectl_vcerts.errors import NotFoundError

    try:
        secret = _read_secret(session, namespace, name)
    except NotFoundError:
        return None
    return _decode(secret.data).get(key)
