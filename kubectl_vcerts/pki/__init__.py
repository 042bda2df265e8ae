"""The vCluster PKI as a pure library: inspect, renew leaves, rotate CAs, bring your own CA.

Bytes and ``now`` in, frozen dataclasses out; no I/O, no clock, no Kubernetes, no logging of key
material. Facts: loft-sh/vcluster `pkg/certs/` and its vendored kubeadm `phases/certs`.

Imports only the standard library, ``cryptography``, kubectl_vcerts.kubeyaml (kubeconfigs) and
kubectl_vcerts.errors (the `lint-imports` contracts in pyproject.toml hold it to that).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubectl_vcerts.pki.byo import CaMaterial, load_ca_material
    from kubectl_vcerts.pki.catalogue import CATALOGUE, CatalogueEntry, Kind
    from kubectl_vcerts.pki.change import EntryChange, PkiChange
    from kubectl_vcerts.pki.inspect import CertInfo, Finding, PkiReport, Reason, Status, inspect_pki
    from kubectl_vcerts.pki.layout import ca_fingerprint, from_files, is_split, to_files
    from kubectl_vcerts.pki.renew import renew_leaves
    from kubectl_vcerts.pki.rotate import rotate_ca
    from kubectl_vcerts.pki.sans import SanConfig, SanDifference, san_differences

# Where each public name lives. Resolved on first use (PEP 562), so that `check` — which needs only
# inspect — does not pay for importing issuing, renewing and CA-rotation code at every start.
_HOME = {
    "CaMaterial": "byo",
    "load_ca_material": "byo",
    "CATALOGUE": "catalogue",
    "CatalogueEntry": "catalogue",
    "Kind": "catalogue",
    "EntryChange": "change",
    "PkiChange": "change",
    "CertInfo": "inspect",
    "Finding": "inspect",
    "PkiReport": "inspect",
    "Reason": "inspect",
    "Status": "inspect",
    "inspect_pki": "inspect",
    "ca_fingerprint": "layout",
    "from_files": "layout",
    "is_split": "layout",
    "to_files": "layout",
    "renew_leaves": "renew",
    "rotate_ca": "rotate",
    "SanConfig": "sans",
    "SanDifference": "sans",
    "san_differences": "sans",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


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
    "SanConfig",
    "SanDifference",
    "Status",
    "ca_fingerprint",
    "from_files",
    "inspect_pki",
    "is_split",
    "load_ca_material",
    "renew_leaves",
    "rotate_ca",
    "san_differences",
    "to_files",
]
