"""Kubeconfigs after a CA change: who still trusts the old CA, a new admin kubeconfig, updated files.

The user's kubeconfig may be several files (KUBECONFIG=a:b:c); kubectl merges them: the first file that
defines a cluster, user or context of a given name wins, later definitions of that name are ignored.
Which files kubectl reads is kube/kubeconfig.py's job; given their documents in that order,
`contexts_trusting_merged` resolves contexts the way kubectl does and remembers which file defines each
entry, and `update_kubeconfigs` changes each stale entry in that file only.

Pure: parsed kubeconfig documents and PEM bytes in, new documents out (the CLI reads and writes the
files). Certificates are read by pki/, YAML by kubeyaml (the project's one loader).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubectl_vcerts import kubeyaml
from kubectl_vcerts.errors import InvalidInputError, InvalidPkiError
from kubectl_vcerts.pki.kubeconfig import KubeconfigParts, parse_kubeconfig
from kubectl_vcerts.pki.parse import first_certificate_der
from kubectl_vcerts.pki.stage_state import StagedState, bundle_holds_only_old, old_admin_test, staged_state


@dataclass(frozen=True)
class TrustedContext:
    """A context of the user's kubeconfig whose cluster trusts the old CA.

    The *_file fields are indices into the kubeconfig files (in kubectl's order) of the file whose
    definition kubectl uses; 0 when there is only one document."""

    name: str
    cluster: str
    user: str
    uses_old_admin_cert: bool  # its user authenticates with the old admin.conf client certificate
    context_file: int = 0
    cluster_file: int = 0
    user_file: int | None = 0  # None: the user is defined in none of the files


def first_cert_der(pem: bytes) -> bytes | None:
    """DER of the first certificate in a PEM bundle (None when there is none)."""
    return first_certificate_der(pem)


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return b""


def load_kubeconfig(text: bytes, *, where: str) -> dict[str, Any]:
    try:
        return kubeyaml.load_mapping(text)
    except kubeyaml.YamlError as exc:
        raise InvalidInputError(f"{where} is not a kubeconfig ({exc})", hint="check the file") from exc


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


def _admin(data: Mapping[str, bytes]) -> KubeconfigParts:
    try:
        return parse_kubeconfig(data.get("admin.conf", b""))
    except ValueError as exc:
        raise InvalidPkiError(f"admin.conf is unusable: {exc}", hint="restore a complete backup") from exc


def admin_client_cert(data: Mapping[str, bytes]) -> tuple[bytes, bytes]:
    """(client-certificate-data, client-key-data) of admin.conf, decoded (PEM)."""
    parts = _admin(data)
    return parts.client_cert_pem, parts.client_key_pem


def _first_named(docs: Sequence[Mapping[str, Any]], section: str, field: str) -> dict[str, tuple[int, Any]]:
    """name -> (index of the defining file, body) with kubectl's precedence: the first definition wins."""
    out: dict[str, tuple[int, Any]] = {}
    for index, doc in enumerate(docs):
        for item in doc.get(section) or []:
            if isinstance(item, dict) and isinstance(item.get(field), dict):
                out.setdefault(str(item.get("name", "")), (index, item[field]))
    return out


def contexts_trusting_merged(
    docs: Sequence[Mapping[str, Any]], anchors: set[bytes], old_admin_cert: bytes | None, *,
    stale_ca: Callable[[bytes], bool] | None = None, old_admin: Callable[[bytes], bool] | None = None,
) -> list[TrustedContext]:
    """Contexts of the merged kubeconfig whose cluster's certificate-authority-data is one of the old CA
    certificates (or, with `stale_ca`, for which it says so), each cluster and user resolved like kubectl
    (first file that defines the name). A user holds old admin credentials when its certificate is
    `old_admin_cert` (or `old_admin` says so)."""
    clusters = _first_named(docs, "clusters", "cluster")
    users = _first_named(docs, "users", "user")
    old_admin_der = first_cert_der(old_admin_cert) if old_admin_cert else None
    found = []
    for name, (context_file, context) in _first_named(docs, "contexts", "context").items():
        cluster_name = str(context.get("cluster", ""))
        user_name = str(context.get("user", ""))
        if cluster_name not in clusters:
            continue
        cluster_file, cluster = clusters[cluster_name]
        ca_data = _b64(cluster.get("certificate-authority-data"))
        if stale_ca is not None:
            if not stale_ca(ca_data):
                continue
        elif (der := first_cert_der(ca_data)) is None or der not in anchors:
            continue
        user_file: int | None = None
        user: Mapping[str, Any] = {}
        if user_name in users:
            user_file, user = users[user_name]
        user_pem = _b64(user.get("client-certificate-data"))
        user_der = first_cert_der(user_pem)
        found.append(
            TrustedContext(
                name=name,
                cluster=cluster_name,
                user=user_name,
                uses_old_admin_cert=(old_admin_der is not None and user_der == old_admin_der)
                or (old_admin is not None and user_der is not None and old_admin(user_pem)),
                context_file=context_file,
                cluster_file=cluster_file,
                user_file=user_file,
            )
        )
    return found


def contexts_trusting(
    doc: Mapping[str, Any], anchors: set[bytes], old_admin_cert: bytes | None
) -> list[TrustedContext]:
    """`contexts_trusting_merged` of one kubeconfig document."""
    return contexts_trusting_merged([doc], anchors, old_admin_cert)


def _replace_first(items: Any, names: set[str], field: str, values: Mapping[str, str]) -> None:
    """Set `values` in the first entry of each name (the one kubectl reads)."""
    seen: set[str] = set()
    for item in items or []:
        if not isinstance(item, dict) or not isinstance(item.get(field), dict):
            continue
        name = str(item.get("name", ""))
        if name in names and name not in seen:
            seen.add(name)
            item[field].update(values)


def update_kubeconfigs(
    docs: Sequence[Mapping[str, Any]],
    contexts: Sequence[TrustedContext],
    *,
    new_ca: bytes,
    new_admin_cert: bytes,
    new_admin_key: bytes,
) -> dict[int, dict[str, Any]]:
    """New documents for exactly the files that define a stale entry (file index -> document): the CA
    data of the contexts' clusters and, for users of the old admin certificate, their credentials —
    each changed in the file whose definition kubectl uses; shadowed definitions in later files are left
    alone. The inputs are left unchanged."""
    clusters: dict[int, set[str]] = {}
    users: dict[int, set[str]] = {}
    for context in contexts:
        clusters.setdefault(context.cluster_file, set()).add(context.cluster)
        if context.uses_old_admin_cert and context.user_file is not None:
            users.setdefault(context.user_file, set()).add(context.user)
    ca = {"certificate-authority-data": base64.b64encode(new_ca).decode("ascii")}
    credentials = {
        "client-certificate-data": base64.b64encode(new_admin_cert).decode("ascii"),
        "client-key-data": base64.b64encode(new_admin_key).decode("ascii"),
    }
    out: dict[int, dict[str, Any]] = {}
    for index in sorted(set(clusters) | set(users)):
        doc = deepcopy(dict(docs[index]))
        _replace_first(doc.get("clusters"), clusters.get(index, set()), "cluster", ca)
        _replace_first(doc.get("users"), users.get(index, set()), "user", credentials)
        out[index] = doc
    return out


def update_kubeconfig(
    doc: dict[str, Any],
    contexts: list[TrustedContext],
    *,
    new_ca: bytes,
    new_admin_cert: bytes,
    new_admin_key: bytes,
) -> dict[str, Any]:
    """`update_kubeconfigs` of one document (contexts from `contexts_trusting`); a new document."""
    updated = update_kubeconfigs(
        [doc], contexts, new_ca=new_ca, new_admin_cert=new_admin_cert, new_admin_key=new_admin_key
    )
    return updated.get(0) or deepcopy(doc)


@dataclass(frozen=True)
class KubeconfigChanges:
    """What a CA change means for the user's kubeconfig files (documents in kubectl's order)."""

    stale: tuple[TrustedContext, ...]  # contexts that trust only the old CA
    updated: Mapping[int, dict[str, Any]]  # file index -> new document; empty unless asked to update


def stale_in_window(docs: Sequence[Mapping[str, Any]], state: StagedState) -> list[TrustedContext]:
    """The contexts that hold the old CA but not the new one of a staged rotation under way."""
    return contexts_trusting_merged(docs, set(), None, stale_ca=partial(bundle_holds_only_old, state=state))


def kubeconfig_changes(
    docs: Sequence[Mapping[str, Any]], old_data: Mapping[str, bytes], new_data: Mapping[str, bytes], *,
    update: bool,
) -> KubeconfigChanges:
    """The contexts of the merged kubeconfig that trust the old CA (`old_data`, the PKI before the
    change) and, with `update`, the new documents that make them trust `new_data`'s CA — users of the
    old admin certificate getting the new admin credentials."""
    old_cert, _old_key = admin_client_cert(old_data)
    # In a staged rotation a bundle is stale when it lacks the new CA: an old-first bundle from trust
    # verifies the vCluster through finish.
    state = staged_state(old_data) or staged_state(new_data)
    stale_ca = None if state is None else partial(bundle_holds_only_old, state=state)
    old_admin = None if state is None else old_admin_test(
        (old_data.get("ca.crt", b""), new_data.get("ca.crt", b"")), admin_client_cert(new_data)[0], state)
    stale = contexts_trusting_merged(docs, old_trust_anchors(old_data), old_cert, stale_ca=stale_ca,
                                     old_admin=old_admin)
    if not stale or not update:
        return KubeconfigChanges(stale=tuple(stale), updated={})
    new_cert, new_key = admin_client_cert(new_data)
    updated = update_kubeconfigs(docs, stale, new_ca=kubeconfig_ca(new_data), new_admin_cert=new_cert,
                                 new_admin_key=new_key)
    return KubeconfigChanges(stale=tuple(stale), updated=updated)


def admin_kubeconfig(new_data: Mapping[str, bytes], *, server: str | None) -> bytes:
    """The new admin.conf as a kubeconfig for the user, with `server` (from vc-NAME) when known."""
    doc = load_kubeconfig(new_data.get("admin.conf", b""), where="admin.conf")
    if server:
        for item in doc.get("clusters") or []:
            if isinstance(item, dict) and isinstance(item.get("cluster"), dict):
                item["cluster"]["server"] = server
    return kubeyaml.dump(doc)


def kubeconfig_ca(new_data: Mapping[str, bytes]) -> bytes:
    """The CA data the new admin.conf trusts (ca.crt, or server-ca.crt in split mode)."""
    return _admin(new_data).ca_pem


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
