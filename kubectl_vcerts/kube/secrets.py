"""Secrets: small verb-named functions returning plain `SecretObject`s (data base64-decoded).

Every function takes the session first and keyword-only arguments after it; every request goes through
`api_call`, so callers only ever see our errors:
  NotFoundError (404), ConflictError (409: exists / resourceVersion changed), ForbiddenError (403/401,
  naming the verb and resource), UnreachableError (after bounded retries), ApiError.

    get_secret(session, *, namespace, name) -> SecretObject
    list_secrets(session, *, label_selector, namespace=None) -> list[SecretObject]   (None: all namespaces)
    create_secret(session, *, namespace, name, data, labels=None, annotations=None, immutable=False,
                  type="Opaque", owner_references=()) -> SecretObject
    replace_secret(session, *, namespace, name, data, resource_version, labels=None, annotations=None,
                   type="Opaque", owner_references=()) -> SecretObject      (PUT guarded by resourceVersion)
    delete_secret(session, *, namespace, name, resource_version=None) -> bool  (False: already gone)

Reads ask for the raw JSON (`_preload_content=False`) and decode it here: the client's model
deserialiser is several times slower than `json.loads` on large lists (check -A over hundreds of
vClusters). Secret values never appear in messages. Imports kubernetes only inside functions.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubectl_vcerts.kube.client import KubeSession
from kubectl_vcerts.kube.translate import Target, api_call
from kubectl_vcerts.rotation.records import SecretData, SecretObject

RESOURCE = "secrets"


def secret_from_json(obj: Mapping[str, Any]) -> SecretObject:
    """A `SecretObject` from the API's JSON form of a Secret."""
    meta = obj.get("metadata") or {}
    raw = obj.get("data") or {}
    return SecretObject(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        data=SecretData({key: base64.b64decode(value or "") for key, value in raw.items()}),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        resource_version=meta.get("resourceVersion", ""),
        uid=meta.get("uid", ""),
        immutable=bool(obj.get("immutable")),
        type=obj.get("type") or "Opaque",
        owner_references=tuple(meta.get("ownerReferences") or ()),
    )


def _json(response: Any) -> Any:
    """Body of a `_preload_content=False` response, parsed."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def get_secret(session: KubeSession, *, namespace: str, name: str) -> SecretObject:
    body = api_call(
        Target("get", RESOURCE, name, namespace),
        lambda: _json(session.core.read_namespaced_secret(
            name, namespace, _preload_content=False, **session.kwargs())),
    )
    return secret_from_json(body)


def list_secrets(session: KubeSession, *, label_selector: str,
                 namespace: str | None = None) -> list[SecretObject]:
    """One list call; `namespace=None` lists every namespace."""
    if namespace is None:
        body = api_call(
            Target("list", RESOURCE),
            lambda: _json(session.core.list_secret_for_all_namespaces(
                label_selector=label_selector, _preload_content=False, **session.kwargs())),
        )
    else:
        body = api_call(
            Target("list", RESOURCE, None, namespace),
            lambda: _json(session.core.list_namespaced_secret(
                namespace, label_selector=label_selector, _preload_content=False, **session.kwargs())),
        )
    return [secret_from_json(item) for item in body.get("items") or ()]


def _body(*, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str] | None,
          annotations: Mapping[str, str] | None, type: str, owner_references: Sequence[Mapping[str, Any]],
          resource_version: str | None = None, immutable: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                            "annotations": dict(annotations or {})}
    if owner_references:
        meta["ownerReferences"] = [dict(ref) for ref in owner_references]
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": type,
        "data": {key: base64.b64encode(value).decode("ascii") for key, value in data.items()},
    }
    if immutable:
        body["immutable"] = True
    return body


def create_secret(session: KubeSession, *, namespace: str, name: str, data: Mapping[str, bytes],
                  labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None,
                  immutable: bool = False, type: str = "Opaque",
                  owner_references: Sequence[Mapping[str, Any]] = ()) -> SecretObject:
    """Create; an existing Secret of that name raises ConflictError and is left alone."""
    body = _body(namespace=namespace, name=name, data=data, labels=labels, annotations=annotations,
                 type=type, owner_references=owner_references, immutable=immutable)
    created = api_call(
        Target("create", RESOURCE, name, namespace),
        lambda: _json(session.core.create_namespaced_secret(
            namespace, body, _preload_content=False, **session.kwargs())),
    )
    return secret_from_json(created)


def replace_secret(session: KubeSession, *, namespace: str, name: str, data: Mapping[str, bytes],
                   resource_version: str, labels: Mapping[str, str] | None = None,
                   annotations: Mapping[str, str] | None = None,
                   type: str = "Opaque",
                   owner_references: Sequence[Mapping[str, Any]] = ()) -> SecretObject:
    """Replace the whole Secret (data exactly `data`; labels, annotations and owner references as given)
    guarded by `resource_version`: if anyone changed it since that version, ConflictError and nothing is
    written. Pass back what you read for the fields you do not mean to change."""
    body = _body(namespace=namespace, name=name, data=data, labels=labels, annotations=annotations,
                 type=type, owner_references=owner_references, resource_version=resource_version)
    replaced = api_call(
        Target("update", RESOURCE, name, namespace),
        lambda: _json(session.core.replace_namespaced_secret(
            name, namespace, body, _preload_content=False, **session.kwargs())),
    )
    return secret_from_json(replaced)


def delete_secret(session: KubeSession, *, namespace: str, name: str,
                  resource_version: str | None = None) -> bool:
    """Delete, guarded by `resource_version` when given (a changed Secret raises ConflictError and is
    kept). Returns False when it was already gone."""
    from kubectl_vcerts.errors import NotFoundError

    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
    if resource_version is not None:
        body["preconditions"] = {"resourceVersion": resource_version}
    try:
        api_call(
            Target("delete", RESOURCE, name, namespace),
            lambda: _json(session.core.delete_namespaced_secret(
                name, namespace, body=body, _preload_content=False, **session.kwargs())),
        )
    except NotFoundError:
        return False
    return True
