"""The vCluster PKI as a pure library: inspect, renew leaves, rotate CAs, bring your own CA.

Bytes and ``now`` in, frozen dataclasses out; no I/O, no clock, no Kubernetes, no logging of key
material. Facts: loft-sh/vcluster `pkg/certs/` and its vendored kubeadm `phases/certs`.

Imports only the standard library, ``cryptography``, PyYAML (kubeconfigs) and kubectl_vcerts.errors.
"""

from kubectl_vcerts.pki.byo import CaMaterial, load_ca_material
from kubectl_vcerts.pki.catalogue import CATALOGUE, CatalogueEntry, Kind
from kubectl_vcerts.pki.change import EntryChange, PkiChange
from kubectl_vcerts.pki.inspect import CertInfo, Finding, PkiReport, Reason, Status, inspect_pki
from kubectl_vcerts.pki.layout import ca_fingerprint, from_files, is_split, to_files
from kubectl_vcerts.pki.renew import renew_leaves
from kubectl_vcerts.pki.rotate import rotate_ca

__all__ = [
    "CATALOGUE",
    "CaMaterial",
    "CatalogueEntry",
    "CertInfo",
    "EntryChange",
    "Finding",
    "Kind",
    "PkiChange",
    "PkiReport",
    "Reason",
    "Status",
    "ca_fingerprint",
    "from_files",
    "inspect_pki",
    "is_split",
    "load_ca_material",
    "renew_leaves",
    "rotate_ca",
    "to_files",
]
