"""Secret keys ↔ ``/data/pki`` files, the server-ca/client-ca copies and the k3s split-CA layout.

vCluster downloads ``NAME-certs`` into ``/data/pki`` (certMap keys mapped back to paths, unknown keys
written under their key name) and then ``splitCACert`` copies the first certificate of ``ca.crt`` and
``ca.key`` to ``server-ca.*`` and ``client-ca.*`` when those files do not exist. A cluster migrated from
k3s keeps a *split*: ``server-ca.*`` is the old k3s server CA and differs from ``ca.*`` (the client CA);
then ``apiserver.crt`` is signed by server-ca and the kubeconfigs trust server-ca
(loft-sh/vcluster `pkg/certs/ensure.go`).

Imports only the standard library, ``cryptography`` and the errors module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from cryptography import x509

from kubectl_vcerts.errors import InvalidPkiError
from kubectl_vcerts.pki.catalogue import BY_KEY, BY_PATH
from kubectl_vcerts.pki.parse import cert_pem, fingerprint, first_certificate

_HINT_RESTORE = ("restore a complete PKI (`kubectl vcerts restore`) or create a new CA "
                 "(`kubectl vcerts rotate-ca`)")


def first_ca_pem(ca_crt: bytes) -> bytes:
    """The first certificate of a ca.crt bundle, re-encoded as one PEM block (what vCluster copies)."""
    return cert_pem(first_certificate(ca_crt))


def is_split(data: Mapping[str, bytes]) -> bool:
    """True when server-ca.crt holds a different certificate than the first one of ca.crt.

    Missing or unparseable server-ca.crt is not a split: vCluster would fill it from ca.crt.
    """
    server, ca = data.get("server-ca.crt"), data.get("ca.crt")
    if not server or not ca:
        return False
    try:
        return first_certificate(server) != first_certificate(ca)
    except ValueError:
        return False


def fill_ca_copies(data: Mapping[str, bytes]) -> dict[str, bytes]:
    """``data`` with empty or absent ``server-ca.*``/``client-ca.*`` filled as ``splitCACert`` fills them
    (the first certificate of ca.crt, and ca.key). vCluster itself refuses to start on an empty value
    ("secret is missing server-ca.crt") and copies an absent one only where /data/pki has no such file,
    so on a persistent volume a stale copy would stay in use: what we write always carries both.
    A key is filled only beside a certificate that is (now) the copy of ca; ca.crt that cannot be read
    leaves everything as it is (the write is refused elsewhere)."""
    out = dict(data)
    ca_crt, ca_key = data.get("ca.crt"), data.get("ca.key")
    if not ca_crt or not ca_crt.strip():
        return out
    try:
        first = first_ca_pem(ca_crt)
    except ValueError:
        return out
    for copy in ("server-ca", "client-ca"):
        if not (out.get(f"{copy}.crt") or b"").strip():
            out[f"{copy}.crt"] = first
        if ca_key and not (out.get(f"{copy}.key") or b"").strip() and _same_first(out[f"{copy}.crt"], first):
            out[f"{copy}.key"] = ca_key
    return out


def _same_first(a: bytes, b: bytes) -> bool:
    try:
        return first_certificate(a) == first_certificate(b)
    except ValueError:
        return False


def serving_ca_key(data: Mapping[str, bytes]) -> str:
    """Secret key of the CA that signs apiserver.crt and that kubeconfigs trust."""
    return "server-ca.crt" if is_split(data) else "ca.crt"


def ca_certificate(data: Mapping[str, bytes]) -> x509.Certificate:
    raw = data.get("ca.crt")
    if not raw:
        raise InvalidPkiError("ca.crt is missing from the PKI", hint=_HINT_RESTORE)
    try:
        return first_certificate(raw)
    except ValueError as exc:
        raise InvalidPkiError(f"ca.crt cannot be parsed ({exc})", hint=_HINT_RESTORE) from exc


def ca_fingerprint(data: Mapping[str, bytes]) -> str:
    """``sha256:<hex>`` of the first certificate of ca.crt; InvalidPkiError when absent or corrupt."""
    return fingerprint(ca_certificate(data))


def to_files(data: Mapping[str, bytes]) -> dict[str, bytes]:
    """Secret data → files relative to /data/pki, as vCluster's downloadCertsFromSecret + splitCACert.

    Unknown keys keep their key as file name; empty server-ca/client-ca entries are filled from
    ca.crt/ca.key (first certificate only).
    """
    files: dict[str, bytes] = {}
    for key, value in data.items():
        entry = BY_KEY.get(key)
        files[entry.path if entry else key] = value
    ca_crt, ca_key = data.get("ca.crt"), data.get("ca.key")
    for copy in ("server-ca", "client-ca"):
        if ca_crt and not files.get(f"{copy}.crt"):
            try:
                files[f"{copy}.crt"] = first_ca_pem(ca_crt)
            except ValueError:
                files[f"{copy}.crt"] = ca_crt  # vCluster would fail on it too; keep it visible
        if ca_key and not files.get(f"{copy}.key"):
            files[f"{copy}.key"] = ca_key
    return files


def from_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """Files relative to a PKI directory → secret data. Only catalogue paths are taken (a directory
    may hold backups or other files that do not belong in the secret)."""
    data: dict[str, bytes] = {}
    for path, value in files.items():
        entry = BY_PATH.get(PurePosixPath(path.replace("\\", "/")).as_posix())
        if entry is not None:
            data[entry.secret_key] = value
    return data
