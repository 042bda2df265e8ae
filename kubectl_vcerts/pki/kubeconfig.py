"""The three kubeconfigs of the PKI (admin.conf, controller-manager.conf, scheduler.conf).

kubeadm writes one cluster, one user and one context with embedded ``certificate-authority-data``,
``client-certificate-data`` and ``client-key-data``. We read the entries the current context points
at (or the only ones) and replace only those three values, keeping server, names and every other
field.

Imports only the standard library and kubeyaml (the project's one YAML loader and dumper).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, cast

from kubectl_vcerts import kubeyaml


@dataclass(frozen=True)
class KubeconfigParts:
    server: str
    cluster_name: str
    user_name: str
    context_name: str
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes = field(repr=False)


def _named(items: Any, name: str | None, what: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise ValueError(f"no {what}s")
    entries = [i for i in items if isinstance(i, dict) and isinstance(i.get(what), dict)]
    if name is None:
        if len(entries) != 1:
            raise ValueError(f"no current-context and {len(entries)} {what}s")
        chosen = entries[0]
    else:
        matching = [i for i in entries if i.get("name") == name]
        if not matching:
            raise ValueError(f"{what} {name!r} not found")
        chosen = matching[0]
    return str(chosen.get("name", "")), cast(dict[str, Any], chosen[what])


def _locate(doc: Any) -> tuple[str, str, dict[str, Any], str, dict[str, Any]]:
    if not isinstance(doc, dict):
        raise ValueError("not a kubeconfig mapping")
    current = doc.get("current-context")
    if current:
        context_name, context = _named(doc.get("contexts"), str(current), "context")
        cluster_ref, user_ref = context.get("cluster"), context.get("user")
    else:
        context_name, cluster_ref, user_ref = "", None, None
    cluster_name, cluster = _named(doc.get("clusters"), None if cluster_ref is None else str(cluster_ref),
                                   "cluster")
    user_name, user = _named(doc.get("users"), None if user_ref is None else str(user_ref), "user")
    return context_name, cluster_name, cluster, user_name, user


def _b64(section: dict[str, Any], key: str) -> bytes:
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{key} is not base64") from exc


def _load(raw: bytes) -> Any:
    # kubeyaml parses kubeadm's kubeconfigs without importing PyYAML (which `check` would pay for).
    try:
        return kubeyaml.load_mapping(raw)
    except kubeyaml.YamlError as exc:
        raise ValueError(f"not a kubeconfig: {exc}") from exc


def parse_kubeconfig(raw: bytes) -> KubeconfigParts:
    """The embedded CA, client certificate and key; ``ValueError`` naming what is missing."""
    context_name, cluster_name, cluster, user_name, user = _locate(_load(raw))
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise ValueError("server missing")
    return KubeconfigParts(
        server=server, cluster_name=cluster_name, user_name=user_name, context_name=context_name,
        ca_pem=_b64(cluster, "certificate-authority-data"),
        client_cert_pem=_b64(user, "client-certificate-data"),
        client_key_pem=_b64(user, "client-key-data"),
    )


def replace_credentials(raw: bytes, *, client_cert_pem: bytes, client_key_pem: bytes,
                        ca_pem: bytes | None = None) -> bytes:
    """A copy of the kubeconfig with new client certificate/key (and CA data when given)."""
    doc = _load(raw)
    _, _, cluster, _, user = _locate(doc)
    user["client-certificate-data"] = base64.b64encode(client_cert_pem).decode()
    user["client-key-data"] = base64.b64encode(client_key_pem).decode()
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return kubeyaml.dump(doc)


def replace_ca_data(raw: bytes, ca_pem: bytes) -> bytes:
    """A copy of the kubeconfig trusting ``ca_pem`` (its credentials untouched)."""
    doc = _load(raw)
    _, _, cluster, _, _ = _locate(doc)
    cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    cluster.pop("certificate-authority", None)
    return kubeyaml.dump(doc)
