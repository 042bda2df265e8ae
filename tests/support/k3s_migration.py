"""`NAME-certs` as vCluster's k3s → k8s migration leaves it (loft-sh/vcluster `pkg/k8s/migrate.go`).

A k3s vCluster had a kubeadm-made `NAME-certs` and k3s's own PKI under /data/server/tls. On the first
start as k8s (vCluster >= 0.25) `MigrateK3sToK8s` copies k3s's files over the secret's keys and
annotates it `vcluster.loft.sh/migrated-from-k3s: "true"`:

  apiserver.*            ← serving-kube-apiserver.*  (signed by the k3s server CA)
  server-ca.*            ← server-ca.*               (k3s server CA)
  ca.*, client-ca.*      ← client-ca.*               (k3s client CA)
  front-proxy-ca.*       ← request-header-ca.*
  front-proxy-client.*   ← client-auth-proxy.*
  sa.key                 ← service.current.key;  sa.pub ← service.key (a PRIVATE key, as k3s has it)
  admin.conf, controller-manager.conf, scheduler.conf ← k3s's kubeconfigs, files embedded, server
                           https://127.0.0.1:6443, trusting the k3s server CA

Everything else (etcd-*, apiserver-etcd-client, apiserver-kubelet-client) is the kubeadm secret's own,
so apiserver-kubelet-client is still signed by the pre-migration CA until the leaves are renewed.
k3s makes ECDSA P-256 CAs and leaves, names its CAs `k3s-<kind>-ca@<unix>`, and writes client
certificates as leaf + client CA bundles. This module makes that material with `cryptography`.

Test-support code: never prints or logs key material.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from datetime import datetime, timedelta

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MIGRATED_ANNOTATION = "vcluster.loft.sh/migrated-from-k3s"
Key = ec.EllipticCurvePrivateKey


def _key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str, *, now: datetime) -> tuple[x509.Certificate, Key]:
    key = _key()
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=3250))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(subject: x509.Name, ca: tuple[x509.Certificate, Key], *, server: bool, now: datetime,
          dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> tuple[x509.Certificate, Key]:
    key = _key()
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca[0].subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=335))
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), critical=False)
    )
    if dns or ips:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kubeconfig(server_ca: x509.Certificate, cert: x509.Certificate, client_ca: x509.Certificate,
                key: Key) -> bytes:
    """A k3s kubeconfig after `fillKubeConfig`: files embedded, server https://127.0.0.1:6443."""
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "Default", "preferences": {},
        "clusters": [{"name": "local", "cluster": {"server": "https://127.0.0.1:6443",
                                                   "certificate-authority-data": _b64(_pem(server_ca))}}],
        "contexts": [{"name": "Default", "context": {"cluster": "local", "namespace": "default",
                                                     "user": "user"}}],
        "users": [{"name": "user", "user": {"client-certificate-data": _b64(_pem(cert) + _pem(client_ca)),
                                            "client-key-data": _b64(_key_pem(key))}}],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def migrate_from_k3s(certs: Mapping[str, bytes], *, name: str, service_cidr: str,
                     now: datetime) -> dict[str, bytes]:
    """The kubeadm `certs` of a k3s vCluster with k3s's PKI copied over them, as migrate.go does."""
    stamp = int((now - timedelta(days=400)).timestamp())
    server_ca = _ca(f"k3s-server-ca@{stamp}", now=now)
    client_ca = _ca(f"k3s-client-ca@{stamp}", now=now)
    request_header_ca = _ca(f"k3s-request-header-ca@{stamp}", now=now)
    service_ip = str(next(ipaddress.ip_network(service_cidr.split(",")[0].strip(), strict=False).hosts()))
    serving = _leaf(_name("kube-apiserver"), server_ca, server=True, now=now,
                    dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                         "kubernetes.default.svc.cluster.local", "localhost", name),
                    ips=("127.0.0.1", "::1", service_ip))
    proxy = _leaf(_name("system:auth-proxy"), request_header_ca, server=False, now=now)
    service_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = dict(certs)
    data.update({
        "apiserver.crt": _pem(serving[0]), "apiserver.key": _key_pem(serving[1]),
        "server-ca.crt": _pem(server_ca[0]), "server-ca.key": _key_pem(server_ca[1]),
        "ca.crt": _pem(client_ca[0]), "ca.key": _key_pem(client_ca[1]),
        "client-ca.crt": _pem(client_ca[0]), "client-ca.key": _key_pem(client_ca[1]),
        "front-proxy-ca.crt": _pem(request_header_ca[0]),
        "front-proxy-ca.key": _key_pem(request_header_ca[1]),
        "front-proxy-client.crt": _pem(proxy[0]), "front-proxy-client.key": _key_pem(proxy[1]),
        "sa.key": _key_pem(service_key), "sa.pub": _key_pem(service_key),
    })
    users = {"admin.conf": ("system:admin", "system:masters"),
             "controller-manager.conf": ("system:kube-controller-manager", None),
             "scheduler.conf": ("system:kube-scheduler", None)}
    for conf, (user, org) in users.items():
        cert, key = _leaf(_name(user, org), client_ca, server=False, now=now)
        data[conf] = _kubeconfig(server_ca[0], cert, client_ca[0], key)
    return data
