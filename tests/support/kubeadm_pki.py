"""A vCluster PKI made by the REAL kubeadm, laid out exactly like vCluster's host Secret `NAME-certs`.

`generate_vcluster_pki` runs `kubeadm init phase certs all` and `kubeadm init phase kubeconfig
admin|super-admin|controller-manager|scheduler` with the inputs vCluster gives its vendored kubeadm
(loft-sh/vcluster `pkg/kubeadm/config.go`, `pkg/certs/ensure.go`): node name NAME, control-plane
endpoint 127.0.0.1:6443, bind port 6443, the service CIDR, the cluster domain and the etcd SANs of
`GetEtcdExtraSANs`. It returns the 29-key secret data (`etcd/x` → `etcd-x`, `super-admin.conf` →
`admin.conf`, `server-ca.*`/`client-ca.*` byte copies of `ca.*`).

One unavoidable difference from vCluster: the kubeadm *command* refuses a loopback advertise address
(it replaces it with a global unicast address found on `lo`, and fails when there is none), while
vCluster calls the library and keeps 127.0.0.1. So the advertise address given to kubeadm is the
first service IP (e.g. 10.96.0.1). Consequences, all documented here:
  * `apiserver.crt` is identical to vCluster's (IPs = [first service IP, 127.0.0.1] either way);
  * `etcd-server.crt` and `etcd-peer.crt` carry one extra IP SAN (the first service IP);
  * the `server:` of controller-manager.conf/scheduler.conf (kubeadm writes the local API endpoint)
    is rewritten to https://127.0.0.1:6443 — a text field, no certificate is touched.

`with_expired_leaves` / `with_expired_ca` make the broken variants the tests need by re-issuing
certificates with `cryptography` (same subject, key, extensions; only serial and validity change).

Test-support code: may import anything; never prints or logs key material.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.testbin import binary

KUBERNETES_VERSION_FOR_CONFIG = "v1.36.3"  # only stops kubeadm from asking dl.k8s.io
CONTROL_PLANE_ENDPOINT = "127.0.0.1:6443"
KUBECONFIG_SERVER = "https://127.0.0.1:6443"

# vCluster's certMap (pkg/certs/constants.go): PKI file (relative to /data/pki) → secret key.
FILE_TO_KEY: dict[str, str] = {
    "admin.conf": "admin.conf",
    "controller-manager.conf": "controller-manager.conf",
    "scheduler.conf": "scheduler.conf",
    "apiserver.crt": "apiserver.crt",
    "apiserver.key": "apiserver.key",
    "apiserver-etcd-client.crt": "apiserver-etcd-client.crt",
    "apiserver-etcd-client.key": "apiserver-etcd-client.key",
    "apiserver-kubelet-client.crt": "apiserver-kubelet-client.crt",
    "apiserver-kubelet-client.key": "apiserver-kubelet-client.key",
    "ca.crt": "ca.crt",
    "ca.key": "ca.key",
    "server-ca.crt": "server-ca.crt",
    "server-ca.key": "server-ca.key",
    "client-ca.crt": "client-ca.crt",
    "client-ca.key": "client-ca.key",
    "front-proxy-ca.crt": "front-proxy-ca.crt",
    "front-proxy-ca.key": "front-proxy-ca.key",
    "front-proxy-client.crt": "front-proxy-client.crt",
    "front-proxy-client.key": "front-proxy-client.key",
    "sa.key": "sa.key",
    "sa.pub": "sa.pub",
    "etcd/ca.crt": "etcd-ca.crt",
    "etcd/ca.key": "etcd-ca.key",
    "etcd/healthcheck-client.crt": "etcd-healthcheck-client.crt",
    "etcd/healthcheck-client.key": "etcd-healthcheck-client.key",
    "etcd/peer.crt": "etcd-peer.crt",
    "etcd/peer.key": "etcd-peer.key",
    "etcd/server.crt": "etcd-server.crt",
    "etcd/server.key": "etcd-server.key",
}
KEY_TO_FILE: dict[str, str] = {key: path for path, key in FILE_TO_KEY.items()}
SECRET_KEYS: tuple[str, ...] = tuple(sorted(KEY_TO_FILE))

# Which CA signs each leaf (secret key of the leaf certificate or kubeconfig → secret key of the CA).
LEAF_ISSUER: dict[str, str] = {
    "apiserver.crt": "ca",
    "apiserver-kubelet-client.crt": "ca",
    "front-proxy-client.crt": "front-proxy-ca",
    "apiserver-etcd-client.crt": "etcd-ca",
    "etcd-healthcheck-client.crt": "etcd-ca",
    "etcd-peer.crt": "etcd-ca",
    "etcd-server.crt": "etcd-ca",
    "admin.conf": "ca",
    "controller-manager.conf": "ca",
    "scheduler.conf": "ca",
}
KUBECONFIG_KEYS: tuple[str, ...] = ("admin.conf", "controller-manager.conf", "scheduler.conf")
CA_NAMES: tuple[str, ...] = ("ca", "front-proxy-ca", "etcd-ca")


def etcd_extra_sans(
    name: str, namespace: str, *, cluster_domain: str = "cluster.local", extra_sans: Iterable[str] = ()
) -> list[str]:
    """vCluster's GetEtcdExtraSANs (non-standalone), in its order."""
    etcd = f"{name}-etcd"
    sans = ["localhost", etcd, f"{etcd}-headless", f"{etcd}.{namespace}", f"{etcd}.{namespace}.svc"]
    for service in (name, etcd):
        sans += [
            f"*.{service}-headless",
            f"*.{service}-headless.{namespace}",
            f"*.{service}-headless.{namespace}.svc",
            f"*.{service}-headless.{namespace}.svc.{cluster_domain}",
        ]
    for i in range(5):
        host, etcd_host = f"{name}-{i}", f"{etcd}-{i}"
        sans += [host, f"{host}.{name}-headless", f"{host}.{name}-headless.{namespace}"]
        sans += [etcd_host, f"{etcd_host}.{etcd}-headless", f"{etcd_host}.{etcd}-headless.{namespace}"]
    return sans + list(extra_sans)


def first_service_ip(service_cidr: str) -> str:
    """kubeadm's internal API server virtual IP: the first address of the first service CIDR."""
    network = ipaddress.ip_network(service_cidr.split(",")[0].strip(), strict=False)
    return str(network[1])


def kubeadm_config(
    *,
    name: str,
    namespace: str,
    cert_dir: Path,
    service_cidr: str = "10.96.0.0/12",
    cluster_domain: str = "cluster.local",
    extra_sans: Iterable[str] = (),
) -> str:
    """The kubeadm v1beta4 Init+Cluster configuration carrying vCluster's inputs (YAML text)."""
    sans = etcd_extra_sans(name, namespace, cluster_domain=cluster_domain, extra_sans=extra_sans)
    init = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        # See the module docstring: the kubeadm command rejects 127.0.0.1 here.
        "localAPIEndpoint": {"advertiseAddress": first_service_ip(service_cidr), "bindPort": 6443},
        "nodeRegistration": {"name": name},
    }
    cluster = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "clusterName": "kubernetes",
        "kubernetesVersion": KUBERNETES_VERSION_FOR_CONFIG,
        "controlPlaneEndpoint": CONTROL_PLANE_ENDPOINT,
        "certificatesDir": str(cert_dir),
        "networking": {"serviceSubnet": service_cidr, "dnsDomain": cluster_domain},
        "etcd": {"local": {"serverCertSANs": sans, "peerCertSANs": sans}},
    }
    return yaml.safe_dump_all([init, cluster], sort_keys=False)


def _run_kubeadm(kubeadm: Path, *args: str) -> None:
    result = subprocess.run([str(kubeadm), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # kubeadm's own output names files and phases, never key bytes.
        raise RuntimeError(f"kubeadm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")


def generate_vcluster_pki(
    workdir: Path,
    *,
    name: str,
    namespace: str,
    service_cidr: str = "10.96.0.0/12",
    cluster_domain: str = "cluster.local",
    extra_sans: Iterable[str] = (),
    kubeadm: Path | None = None,
) -> dict[str, bytes]:
    """Run the real kubeadm in `workdir` and return vCluster's 29-key `NAME-certs` data."""
    kubeadm = kubeadm or binary("kubeadm")
    workdir.mkdir(parents=True, exist_ok=True)
    cert_dir = workdir / "pki"
    config = workdir / "kubeadm.yaml"
    config.write_text(
        kubeadm_config(
            name=name,
            namespace=namespace,
            cert_dir=cert_dir,
            service_cidr=service_cidr,
            cluster_domain=cluster_domain,
            extra_sans=extra_sans,
        )
    )
    _run_kubeadm(kubeadm, "init", "phase", "certs", "all", "--config", str(config))
    for phase in ("admin", "super-admin", "controller-manager", "scheduler"):
        _run_kubeadm(
            kubeadm, "init", "phase", "kubeconfig", phase, "--config", str(config),
            "--kubeconfig-dir", str(cert_dir),
        )
    # vCluster renames super-admin.conf over admin.conf (pkg/certs/ensure.go generateCertificates).
    (cert_dir / "super-admin.conf").replace(cert_dir / "admin.conf")
    local_server = f"https://{first_service_ip(service_cidr)}:6443"
    for conf in ("controller-manager.conf", "scheduler.conf"):
        path = cert_dir / conf
        path.write_text(path.read_text().replace(f"server: {local_server}", f"server: {KUBECONFIG_SERVER}"))
    # splitCACert: server-ca.* and client-ca.* are byte copies of ca.* (first PEM block of ca.crt).
    for copy in ("server-ca", "client-ca"):
        (cert_dir / f"{copy}.crt").write_bytes((cert_dir / "ca.crt").read_bytes())
        (cert_dir / f"{copy}.key").write_bytes((cert_dir / "ca.key").read_bytes())
    return {key: (cert_dir / path).read_bytes() for path, key in FILE_TO_KEY.items()}


def materialise(data: Mapping[str, bytes], directory: Path) -> Path:
    """Write secret data in vCluster's /data/pki layout (etcd-x → etcd/x); unknown keys keep their name."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        path = directory / KEY_TO_FILE.get(key, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
        if path.suffix == ".key" or path.suffix == ".conf":
            path.chmod(0o600)
    return directory


def check_expiration_config(directory: Path, *, name: str = "vc") -> Path:
    """A kubeadm config whose certificatesDir is `directory`, for `kubeadm certs check-expiration`."""
    config = directory.parent / f"{directory.name}-kubeadm.yaml"
    config.write_text(kubeadm_config(name=name, namespace="default", cert_dir=directory))
    return config


# --- broken variants (re-issued with cryptography; keys, subjects and extensions unchanged) ------------


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("kubeadm keys are RSA")
    return key


def reissue(
    cert: x509.Certificate, *, issuer_cert: x509.Certificate | None, issuer_key: rsa.RSAPrivateKey,
    not_before: datetime, not_after: datetime,
) -> x509.Certificate:
    """Clone `cert` with a new serial and validity, signed by `issuer_key` (self-signed if no issuer)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else cert.subject)
        .public_key(cast(rsa.RSAPublicKey, cert.public_key()))
        .serial_number(secrets.randbelow(2**63 - 2) + 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _with_kubeconfig_field(conf: bytes, field: str, new_value: bytes) -> bytes:
    """Replace one base64 field of a single-user kubeconfig, keeping the file's text otherwise identical."""
    doc = yaml.safe_load(conf)
    if field == "certificate-authority-data":
        old = doc["clusters"][0]["cluster"][field]
    else:
        old = doc["users"][0]["user"][field]
    return conf.replace(old.encode(), base64.b64encode(new_value))


def with_expired_leaves(
    data: Mapping[str, bytes], *, now: datetime, expired_for: timedelta = timedelta(days=1),
    keys: Iterable[str] | None = None,
) -> dict[str, bytes]:
    """Copy of `data` whose leaf certificates (and kubeconfig client certs) ended `expired_for` before now.

    `keys` limits it to some leaves (secret keys as in LEAF_ISSUER); default all ten.
    """
    out = dict(data)
    not_after = now - expired_for
    not_before = not_after - timedelta(days=365)
    for key in keys if keys is not None else LEAF_ISSUER:
        ca = LEAF_ISSUER[key]
        ca_cert, ca_key = _cert(data[f"{ca}.crt"]), _key(data[f"{ca}.key"])
        if key in KUBECONFIG_KEYS:
            user = yaml.safe_load(data[key])["users"][0]["user"]
            old = _cert(base64.b64decode(user["client-certificate-data"]))
            new = reissue(old, issuer_cert=ca_cert, issuer_key=ca_key, not_before=not_before,
                          not_after=not_after)
            out[key] = _with_kubeconfig_field(data[key], "client-certificate-data", _pem(new))
        else:
            new = reissue(_cert(data[key]), issuer_cert=ca_cert, issuer_key=ca_key, not_before=not_before,
                          not_after=not_after)
            out[key] = _pem(new)
    return out


def with_expired_ca(
    data: Mapping[str, bytes], *, now: datetime, expired_for: timedelta = timedelta(days=1),
    cas: Iterable[str] = ("ca",),
) -> dict[str, bytes]:
    """Copy of `data` whose CA certificate(s) ended `expired_for` before now (same key and subject).

    Leaves keep verifying by signature (same CA key, subject and key identifier) but the chain is
    expired. For `ca` the server-ca/client-ca copies and the kubeconfigs' CA data follow, as in vCluster.
    """
    out = dict(data)
    not_after = now - expired_for
    not_before = not_after - timedelta(days=3650)
    for ca in cas:
        old = _cert(data[f"{ca}.crt"])
        new_pem = _pem(reissue(old, issuer_cert=None, issuer_key=_key(data[f"{ca}.key"]),
                               not_before=not_before, not_after=not_after))
        out[f"{ca}.crt"] = new_pem
        if ca == "ca":
            out["server-ca.crt"] = new_pem
            out["client-ca.crt"] = new_pem
            for conf in KUBECONFIG_KEYS:
                out[conf] = _with_kubeconfig_field(out[conf], "certificate-authority-data", new_pem)
    return out


def kubeconfig_client_cert(conf: bytes) -> x509.Certificate:
    """The client certificate embedded in a kubeconfig from the secret."""
    user = yaml.safe_load(conf)["users"][0]["user"]
    return _cert(base64.b64decode(user["client-certificate-data"]))


def digests(data: Mapping[str, bytes]) -> dict[str, str]:
    """sha256 of every value: compare secret data in assertions without ever printing key bytes."""
    return {key: hashlib.sha256(value).hexdigest()[:16] for key, value in data.items()}


def scratch_dir(prefix: str = "vcerts-pki-") -> Path:
    """A private temporary directory (0700) for kubeadm's output."""
    return Path(tempfile.mkdtemp(prefix=prefix))
