"""The vCluster PKI described once, as data: the 29 entries of the ``NAME-certs`` secret.

Each entry says which secret key it is, where vCluster writes it under ``/data/pki``
(``pkg/certs/constants.go`` certMap), what kind of object it holds and, for certificates, which CA
entry signs it (in the plain, non-split layout; :mod:`kubectl_vcerts.pki.layout` knows the k3s split).
Inspect, renew, rotate, tables and JSON all iterate this tuple instead of repeating file names.

Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath


class Kind(StrEnum):
    """What a secret entry holds. Stable strings: they appear in JSON output."""

    CA = "ca"  # a CA certificate (first PEM block is the CA; bundles allowed for ca.crt)
    LEAF = "leaf"  # a certificate issued by one of the CAs
    KEY = "key"  # the private key of a CA or leaf certificate (see CatalogueEntry.pair)
    KUBECONFIG = "kubeconfig"  # a kubeconfig with an embedded client certificate and key
    SERVICE_ACCOUNT = "service-account"  # sa.key / sa.pub: token signing keys, never rotated


@dataclass(frozen=True)
class CatalogueEntry:
    """One key of ``NAME-certs``.

    ``issuer`` is the secret key of the CA certificate that signs this certificate (None for CAs,
    keys and service-account files); ``pair`` links a certificate to its private key and back (for
    sa.key/sa.pub: the other half); ``copy_of`` marks server-ca/client-ca, which vCluster fills with
    copies of ``ca.*``.
    """

    secret_key: str
    path: str  # relative to /data/pki
    kind: Kind
    issuer: str | None = None
    pair: str | None = None
    copy_of: str | None = None

    @property
    def filename(self) -> str:
        """Base name, as ``vcluster certs check`` prints it (``ca.crt`` for ca.crt and etcd/ca.crt)."""
        return PurePosixPath(self.path).name


def _cert_and_key(secret_stem: str, path_stem: str, kind: Kind, issuer: str | None,
                  copy_of: str | None = None) -> tuple[CatalogueEntry, CatalogueEntry]:
    crt, key = f"{secret_stem}.crt", f"{secret_stem}.key"
    copy_key = None if copy_of is None else copy_of.replace(".crt", ".key")
    return (
        CatalogueEntry(crt, f"{path_stem}.crt", kind, issuer=issuer, pair=key, copy_of=copy_of),
        CatalogueEntry(key, f"{path_stem}.key", Kind.KEY, pair=crt, copy_of=copy_key),
    )


CATALOGUE: tuple[CatalogueEntry, ...] = (
    *_cert_and_key("ca", "ca", Kind.CA, None),
    *_cert_and_key("server-ca", "server-ca", Kind.CA, None, copy_of="ca.crt"),
    *_cert_and_key("client-ca", "client-ca", Kind.CA, None, copy_of="ca.crt"),
    *_cert_and_key("front-proxy-ca", "front-proxy-ca", Kind.CA, None),
    *_cert_and_key("etcd-ca", "etcd/ca", Kind.CA, None),
    *_cert_and_key("apiserver", "apiserver", Kind.LEAF, "ca.crt"),
    *_cert_and_key("apiserver-kubelet-client", "apiserver-kubelet-client", Kind.LEAF, "ca.crt"),
    *_cert_and_key("front-proxy-client", "front-proxy-client", Kind.LEAF, "front-proxy-ca.crt"),
    *_cert_and_key("apiserver-etcd-client", "apiserver-etcd-client", Kind.LEAF, "etcd-ca.crt"),
    *_cert_and_key("etcd-server", "etcd/server", Kind.LEAF, "etcd-ca.crt"),
    *_cert_and_key("etcd-peer", "etcd/peer", Kind.LEAF, "etcd-ca.crt"),
    *_cert_and_key("etcd-healthcheck-client", "etcd/healthcheck-client", Kind.LEAF, "etcd-ca.crt"),
    CatalogueEntry("admin.conf", "admin.conf", Kind.KUBECONFIG, issuer="ca.crt"),
    CatalogueEntry("controller-manager.conf", "controller-manager.conf", Kind.KUBECONFIG, issuer="ca.crt"),
    CatalogueEntry("scheduler.conf", "scheduler.conf", Kind.KUBECONFIG, issuer="ca.crt"),
    CatalogueEntry("sa.key", "sa.key", Kind.SERVICE_ACCOUNT, pair="sa.pub"),
    CatalogueEntry("sa.pub", "sa.pub", Kind.SERVICE_ACCOUNT, pair="sa.key"),
)

BY_KEY: dict[str, CatalogueEntry] = {entry.secret_key: entry for entry in CATALOGUE}
BY_PATH: dict[str, CatalogueEntry] = {entry.path: entry for entry in CATALOGUE}

# The CAs that are generated (server-ca/client-ca are copies of ca, or the k3s split pair).
ROOT_CAS: tuple[str, ...] = ("ca.crt", "front-proxy-ca.crt", "etcd-ca.crt")
LEAVES: tuple[CatalogueEntry, ...] = tuple(e for e in CATALOGUE if e.kind is Kind.LEAF)
KUBECONFIGS: tuple[CatalogueEntry, ...] = tuple(e for e in CATALOGUE if e.kind is Kind.KUBECONFIG)
CERTIFICATES: tuple[CatalogueEntry, ...] = tuple(e for e in CATALOGUE if e.kind in (Kind.CA, Kind.LEAF))


def entry(secret_key: str) -> CatalogueEntry:
    return BY_KEY[secret_key]
