"""Kubeconfigs after a CA change: who still trusts the old CA, a new admin kubeconfig, an updated file.

Pure: parsed kubeconfig documents and PEM bytes in, new documents out (the CLI reads and writes the
files). Imports yaml and cryptography only (plus errors).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kubectl_vcerts.errors import InvalidInputError, InvalidPkiError


@dataclass(frozen=True)
class TrustedContext:
    """A context of the user's kubeconfig whose cluster trusts the old CA."""

    name: str
    cluster: str
    user: str
    uses_old_admin_cert: bool  # its user authenticates with the old admin.conf client certificate


def first_cert_der(pem: bytes) -> bytes | None:
    """DER of the first certificate in a PEM bundle (None when there is none)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return None
    return certs[0].public_bytes(Encoding.DER) if certs else None


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return b""


def load_kubeconfig(text: bytes, *, where: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{where} is not valid YAML", hint="check the file") from exc
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{where} is not a kubeconfig", hint="check the file")
    return doc


def _named(doc: Mapping[str, Any], section: str, field: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in doc.get(section) or []:
        if isinstance(item, dict) and isinstance(item.get(field), dict):
            out[str(item.get("name", ""))] = item[field]
    return out


def old_trust_anchors(old_data: Mapping[str, bytes]) -> set[bytes]:
    """DER of the old CA certificates a client may have pinned (ca.crt; server-ca.crt when split)."""
    anchors = set()
    for key in ("ca.crt", "server-ca.crt"):
        der = first_cert_der(old_data.get(key, b""))
        if der is not None:
            anchors.add(der)
    return anchors


def admin_client_cert(data: Mapping[str, bytes]) -> tuple[bytes, bytes]:
    """(client-certificate-data, client-key-data) of admin.conf, decoded (PEM)."""
    doc = load_kubeconfig(data.get("admin.conf", b""), where="admin.conf")
    users = _named(doc, "users", "user")
    if not users:
        raise InvalidPkiError("admin.conf has no user", hint="restore a complete backup")
    user = next(iter(users.values()))
    return _b64(user.get("client-certificate-data")), _b64(user.get("client-key-data"))


def contexts_trusting(
    doc: Mapping[str, Any], anchors: set[bytes], old_admin_cert: bytes | None
) -> list[TrustedContext]:
    """Contexts whose cluster's certificate-authority-data is one of the old CA certificates."""
    clusters = _named(doc, "clusters", "cluster")
    users = _named(doc, "users", "user")
    old_admin_der = first_cert_der(old_admin_cert) if old_admin_cert else None
    found = []
    for item in doc.get("contexts") or []:
        if not isinstance(item, dict) or not isinstance(item.get("context"), dict):
            continue
        cluster_name = str(item["context"].get("cluster", ""))
        user_name = str(item["context"].get("user", ""))
        der = first_cert_der(_b64(clusters.get(cluster_name, {}).get("certificate-authority-data")))
        if der is None or der not in anchors:
            continue
        user_der = first_cert_der(_b64(users.get(user_name, {}).get("client-certificate-data")))
        found.append(
            TrustedContext(
                name=str(item.get("name", "")),
                cluster=cluster_name,
                user=user_name,
                uses_old_admin_cert=old_admin_der is not None and user_der == old_admin_der,
            )
        )
    return found


def update_kubeconfig(
    doc: dict[str, Any],
    contexts: list[TrustedContext],
    *,
    new_ca: bytes,
    new_admin_cert: bytes,
    new_admin_key: bytes,
) -> dict[str, Any]:
    """Replace the CA data of the contexts' clusters and, for users of the old admin certificate, their
    credentials. Returns a new document; the input is left unchanged."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(doc))
    clusters = {c.cluster for c in contexts}
    users = {c.user for c in contexts if c.uses_old_admin_cert}
    encoded_ca = base64.b64encode(new_ca).decode("ascii")
    for item in out.get("clusters") or []:
        if isinstance(item, dict) and item.get("name") in clusters and isinstance(item.get("cluster"), dict):
            item["cluster"]["certificate-authority-data"] = encoded_ca
    for item in out.get("users") or []:
        if isinstance(item, dict) and item.get("name") in users and isinstance(item.get("user"), dict):
            item["user"]["client-certificate-data"] = base64.b64encode(new_admin_cert).decode("ascii")
            item["user"]["client-key-data"] = base64.b64encode(new_admin_key).decode("ascii")
    return out


def admin_kubeconfig(new_data: Mapping[str, bytes], *, server: str | None) -> bytes:
    """The new admin.conf as a kubeconfig for the user, with `server` (from vc-NAME) when known."""
    doc = load_kubeconfig(new_data.get("admin.conf", b""), where="admin.conf")
    if server:
        for item in doc.get("clusters") or []:
            if isinstance(item, dict) and isinstance(item.get("cluster"), dict):
                item["cluster"]["server"] = server
    return yaml.safe_dump(doc, sort_keys=False).encode()


def kubeconfig_ca(new_data: Mapping[str, bytes]) -> bytes:
    """The CA data the new admin.conf trusts (ca.crt, or server-ca.crt in split mode)."""
    doc = load_kubeconfig(new_data.get("admin.conf", b""), where="admin.conf")
    clusters = _named(doc, "clusters", "cluster")
    for cluster in clusters.values():
        data = _b64(cluster.get("certificate-authority-data"))
        if data:
            return data
    return new_data.get("ca.crt", b"")


def server_of(kubeconfig_text: bytes) -> str | None:
    """The server of the first cluster of a kubeconfig (vc-NAME's `config`), if any."""
    try:
        doc = load_kubeconfig(kubeconfig_text, where="vc secret")
    except InvalidInputError:
        return None
    for cluster in _named(doc, "clusters", "cluster").values():
        server = cluster.get("server")
        if isinstance(server, str) and server:
            return server
    return None
