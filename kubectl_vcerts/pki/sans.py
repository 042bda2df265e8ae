"""The SANs vCluster itself would give a certificate it issues today, and how ours differ.

Renewal clones the old certificate, SANs included, so SANs from an older vCluster or an older config
(a changed `controlPlane.proxy.extraSANs`, cluster domain or service CIDR) would stay for good, while
vCluster's own start-up renewal recomputes them. This module computes vCluster's set from the same
inputs (pkg/certs/ensure.go `GetEtcdExtraSANs`, pkg/kubeadm/config.go `InitKubeadmConfig`, and
kubeadm's `GetAPIServerAltNames` / `getAltNames` in pkiutil/pki_helpers.go):

  apiserver.crt   DNS NAME, kubernetes, kubernetes.default, kubernetes.default.svc,
                  kubernetes.default.svc.DOMAIN; IP: the first address of the (first) service CIDR,
                  127.0.0.1 (advertise address and control-plane endpoint)
  etcd-server.crt DNS NAME, localhost; IP 127.0.0.1, ::1; then GetEtcdExtraSANs (the etcd Service
  etcd-peer.crt   names, the headless wildcards, five member host names for embedded and deployed
                  etcd, then proxy.extraSANs), each an IP when it parses as one, else a DNS name

Pure: a `SanConfig` and PEM data in, names out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509

from kubectl_vcerts.pki.parse import first_certificate

# kubeadm's appendSANsToAltNames: an RFC 1123 subdomain, or one with a leading wildcard label
_DNS = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class SanConfig:
    """The inputs vCluster computes SANs from (vc-config-NAME and the host Service NAME)."""

    name: str
    namespace: str
    service_cidr: str | None  # None: unknown, so apiserver.crt is not compared
    cluster_domain: str = "cluster.local"
    extra_sans: tuple[str, ...] = ()


@dataclass(frozen=True)
class SanDifference:
    secret_key: str
    added: tuple[str, ...]  # what vCluster would add ("DNS:x", "IP:y")
    dropped: tuple[str, ...]  # what ours has and vCluster would not


def _names(values: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for value in values:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            if len(value) <= 253 and _DNS.match(value):
                out.append(x509.DNSName(value))
    return out


def _etcd_extra(config: SanConfig) -> list[str]:
    name, ns, domain = config.name, config.namespace, config.cluster_domain
    etcd = f"{name}-etcd"
    extra = ["localhost", etcd, f"{etcd}-headless", f"{etcd}.{ns}", f"{etcd}.{ns}.svc"]
    for service in (name, etcd):
        headless = f"*.{service}-headless"
        extra += [headless, f"{headless}.{ns}", f"{headless}.{ns}.svc", f"{headless}.{ns}.svc.{domain}"]
    for index in range(5):
        for base in (name, etcd):
            host = f"{base}-{index}"
            extra += [host, f"{host}.{base}-headless", f"{host}.{base}-headless.{ns}"]
    return extra + list(config.extra_sans)


def _unique(names: list[x509.GeneralName]) -> x509.SubjectAlternativeName:
    seen: list[x509.GeneralName] = []
    for item in names:
        if item not in seen:
            seen.append(item)
    return x509.SubjectAlternativeName(seen)


def expected_sans(config: SanConfig) -> dict[str, x509.SubjectAlternativeName]:
    """secret key → the SAN extension vCluster would issue it with (apiserver.crt only when the
    service CIDR is known)."""
    etcd = _unique(_names([config.name, "localhost", "127.0.0.1", "127.0.0.1", "::1", *_etcd_extra(config)]))
    out = {"etcd-server.crt": etcd, "etcd-peer.crt": etcd}
    if config.service_cidr:
        network = ipaddress.ip_network(config.service_cidr.split(",")[0].strip(), strict=False)
        vip = str(network.network_address + 1)
        dns = [config.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               f"kubernetes.default.svc.{config.cluster_domain}"]
        out["apiserver.crt"] = _unique(_names([*dns, vip, "127.0.0.1", "127.0.0.1"]))
    return out


def _label(name: x509.GeneralName) -> str:
    return f"IP:{name.value}" if isinstance(name, x509.IPAddress) else f"DNS:{name.value}"


def _current(pem: bytes) -> set[str]:
    try:
        cert = first_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return set()
    return {_label(n) for n in sans if isinstance(n, x509.DNSName | x509.IPAddress)}


def san_differences(data: Mapping[str, bytes], config: SanConfig) -> tuple[SanDifference, ...]:
    """Where the SANs of the certificates in ``data`` differ from what vCluster would issue."""
    out: list[SanDifference] = []
    for key, wanted in expected_sans(config).items():
        if not data.get(key):
            continue
        want = {_label(n) for n in wanted}
        have = _current(data[key])
        if want != have:
            out.append(SanDifference(key, tuple(sorted(want - have)), tuple(sorted(have - want))))
    return tuple(out)
