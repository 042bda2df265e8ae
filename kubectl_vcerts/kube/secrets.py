"""Secrets: small verb-named functions returning plain `SecretObject`s (data base64-decoded).

Every function takes the session first and keyword-only arguments after it; every request goes through
`api_call`, so callers only ever see our errors:
  NotFoundError (404), ConflictError (409: exists / resourceVersion changed), ForbiddenError (403/401,
  naming the verb and resource), UnreachableError (after bounded retries), ApiError.

    get_secret(session, *, namespace, name) -> SecretObject
    secret_from_json(obj) -> SecretObject   (the one decoder: readers and backups use it too)

Reads ask for the raw JSON (`_preload_content=False`) and decode it here: the client's model
deserialiser is several times slower than `json.loads` on large lists (check -A over hundreds of
vClusters). Secret values never appear in messages. Imports kubernetes only inside functions.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
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
