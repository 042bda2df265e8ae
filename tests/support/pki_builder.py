"""An independent, kubeadm-like vCluster PKI generator for pure unit tests (no binaries).

Deliberately shares no code with kubectl_vcerts.pki: it builds the 29-key `NAME-certs` layout from the
profiles of vCluster's vendored kubeadm (`phases/certs/certlist.go`) and of vCluster < 0.26
(`pkg/certs/cert_list.go`) directly with `cryptography`, so tests of our renewal and
rotation compare against certificates our own issuing code did not make. Variants: ECDSA keys, the
pre-0.26 ("legacy") profiles, and the k3s split-CA layout (server-ca ≠ ca). The real-kubeadm
fixture is tests/support/kubeadm_pki.py; this one is for fast, binary-free tests.

Test-support code: never prints or logs key material.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from types import MappingProxyType

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Options:
    name: str = "vc"
    namespace: str = "team-a"
    now: datetime = NOW
    key_type: str = "rsa"  # "rsa" (2048) or "ecdsa" (P-256)
    legacy: bool = False  # certificates as vCluster < 0.26 made them
    split: bool = False  # k3s-migrated: server-ca differs from ca
    leaf_validity: timedelta = timedelta(days=365)
    ca_validity: timedelta = timedelta(days=3650)


def new_key(key_type: str = "rsa") -> Key:
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str, *, key: Key, not_before: datetime, not_after: datetime) -> x509.Certificate:
    """kubeadm NewSelfSignedCACert: KU digitalSignature|keyEncipherment|keyCertSign, CA:TRUE, DNS SAN = CN."""
    return (
        x509.CertificateBuilder()
        .subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
        .serial_number(secrets.randbelow(2**63 - 2) + 1)
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        .sign(key, hashes.SHA256())
    )


def issuing_ca_under_root(*, now: datetime = NOW) -> tuple[bytes, bytes]:
    """(bundle, key) of an intermediate: an issuing CA (CA:TRUE, keyCertSign) signed by a root, the root
    after it in the bundle, as a company PKI hands it out."""
    root_key = new_key()
    root = make_ca("corp-root", key=root_key, not_before=now - timedelta(days=9),
                   not_after=now + timedelta(days=900))
    key = new_key()
    cert = (x509.CertificateBuilder().subject_name(name("corp-issuing")).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(11)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=800))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(root_key, hashes.SHA256()))
    return cert_pem(cert) + cert_pem(root), key_pem(key)


def _eku(usages: list[x509.ObjectIdentifier]) -> x509.ExtensionType:
    """The EKU extension; an empty one (malformed: RFC 5280 wants 1..MAX) as raw DER, since
    cryptography >= 51 refuses to build it."""
    if usages:
        return x509.ExtendedKeyUsage(usages)
    return x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00")  # SEQUENCE {}


def make_leaf(subject: x509.Name, *, key: Key, ca: x509.Certificate, ca_key: Key,
              eku: list[x509.ObjectIdentifier], dns: list[str] | None = None, ips: list[str] | None = None,
              not_before: datetime, not_after: datetime) -> x509.Certificate:
    """kubeadm NewSignedCert: KU digitalSignature|keyEncipherment, CA:FALSE, EKU, AKI from the CA."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(secrets.randbelow(2**63 - 2) + 1)
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(_eku(eku), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    signer_hash = hashes.SHA256()
    return builder.sign(ca_key, signer_hash)


def kubeconfig(*, user: str, server: str, ca: x509.Certificate, cert: x509.Certificate, key: Key,
               cluster: str = "kubernetes") -> bytes:
    """kubeadm CreateWithCerts: one cluster, one user, context USER@CLUSTER."""
    doc = {
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(cert_pem(ca)).decode(),
                                  "server": server}, "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": f"{user}@{cluster}"}],
        "current-context": f"{user}@{cluster}",
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": {
            "client-certificate-data": base64.b64encode(cert_pem(cert)).decode(),
            "client-key-data": base64.b64encode(key_pem(key)).decode()}}],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def build_pki(options: Options = Options()) -> dict[str, bytes]:
    """A complete 29-key vCluster secret data mapping."""
    o = options
    start = o.now - timedelta(minutes=5)
    ca_end = o.now + o.ca_validity
    leaf_end = o.now + (timedelta(days=3650) if o.legacy else o.leaf_validity)
    data: dict[str, bytes] = {}
    cas: dict[str, tuple[x509.Certificate, Key]] = {}
    ca_names = {"ca": "kubernetes", "front-proxy-ca": "front-proxy-ca", "etcd-ca": "etcd-ca"}
    if o.split:
        ca_names = {**ca_names, "ca": "k3s-client-ca@1700000000", "server-ca": "k3s-server-ca@1700000000"}
    for stem, cn in ca_names.items():
        key = new_key(o.key_type)
        cert = make_ca(cn, key=key, not_before=start, not_after=ca_end)
        cas[stem] = (cert, key)
        data[f"{stem}.crt"], data[f"{stem}.key"] = cert_pem(cert), key_pem(key)
    if not o.split:
        cas["server-ca"] = cas["ca"]
        data["server-ca.crt"], data["server-ca.key"] = data["ca.crt"], data["ca.key"]
    data["client-ca.crt"], data["client-ca.key"] = data["ca.crt"], data["ca.key"]

    leaf_start = cas["ca"][0].not_valid_before_utc if o.legacy else start
    masters = "system:masters" if o.legacy else None
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    etcd_dns = sorted({o.name, "localhost", f"{o.name}-etcd", f"{o.name}-etcd.{o.namespace}",
                       f"*.{o.name}-headless.{o.namespace}"})
    leaves = {
        "apiserver": ("server-ca", name("kube-apiserver"), [server_auth],
                      sorted([o.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                              "kubernetes.default.svc.cluster.local"]), ["10.96.0.1", "127.0.0.1"]),
        "apiserver-kubelet-client": ("ca", name("kube-apiserver-kubelet-client",
                                                masters or "kubeadm:cluster-admins"), [client_auth], [], []),
        "front-proxy-client": ("front-proxy-ca", name("front-proxy-client"), [client_auth], [], []),
        "apiserver-etcd-client": ("etcd-ca", name("kube-apiserver-etcd-client", masters), [client_auth],
                                  [], []),
        "etcd-healthcheck-client": ("etcd-ca", name("kube-etcd-healthcheck-client", masters), [client_auth],
                                    [], []),
        "etcd-server": ("etcd-ca", name(o.name), [server_auth, client_auth], etcd_dns, ["127.0.0.1", "::1"]),
        "etcd-peer": ("etcd-ca", name(o.name), [server_auth, client_auth], etcd_dns, ["127.0.0.1", "::1"]),
    }
    for stem, (issuer, subject, eku, dns, ips) in leaves.items():
        ca, ca_key = cas[issuer]
        key = new_key(o.key_type)
        cert = make_leaf(subject, key=key, ca=ca, ca_key=ca_key, eku=eku, dns=dns, ips=ips,
                         not_before=leaf_start, not_after=leaf_end)
        data[f"{stem}.crt"], data[f"{stem}.key"] = cert_pem(cert), key_pem(key)

    admin = ("kubernetes-admin" if o.legacy else "kubernetes-super-admin", "system:masters")
    users = {
        "admin.conf": admin,
        "controller-manager.conf": ("system:kube-controller-manager", None),
        "scheduler.conf": ("system:kube-scheduler", None),
    }
    ca, ca_key = cas["ca"]
    for conf, (user, org) in users.items():
        key = new_key(o.key_type)
        cert = make_leaf(name(user, org), key=key, ca=ca, ca_key=ca_key, eku=[client_auth],
                         not_before=ca.not_valid_before_utc, not_after=leaf_end)
        data[conf] = kubeconfig(user=user, server="https://127.0.0.1:6443", ca=cas["server-ca"][0], cert=cert,
                                key=key)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data["sa.key"] = key_pem(sa)
    data["sa.pub"] = sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


@cache
def cached_pki(options: Options = Options()) -> Mapping[str, bytes]:
    """build_pki, once per options value (RSA keygen is slow); read-only: copy before changing."""
    return MappingProxyType(build_pki(options))


def first_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem)[0]


def kubeconfig_cert(conf: bytes) -> x509.Certificate:
    user = yaml.safe_load(conf)["users"][0]["user"]
    return first_cert(base64.b64decode(user["client-certificate-data"]))


def profile_of(cert: x509.Certificate) -> tuple[object, ...]:
    """What a renewal must keep: subject, every extension but the key identifiers, key algorithm/size."""
    exts = tuple(sorted(
        ((e.oid.dotted_string, e.critical, e.value) for e in cert.extensions
         if not isinstance(e.value, x509.SubjectKeyIdentifier | x509.AuthorityKeyIdentifier)),
        key=lambda item: item[0]))
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        key: tuple[object, ...] = ("rsa", public.key_size)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key = ("ecdsa", public.curve.name)
    else:
        key = (type(public).__name__,)
    return (cert.subject.rfc4514_string(), exts, key)
