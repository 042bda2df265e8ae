"""vCluster's syncer API on port 8443, the address users, `vc-NAME` and the Service reach, played for the
emulator (loft-sh/vcluster `pkg/server/server.go`, `pkg/server/cert/cert.go`, `pkg/util/certhelper`).

In a vCluster pod kube-apiserver listens on 127.0.0.1 only; clients talk to the syncer, which serves a
certificate of its own, made in memory when it starts (`GenAPIServerServingCerts`):
  * ECDSA P-256, CN `kube-apiserver`, ExtKeyUsage serverAuth, DNS names
    `kubernetes.default.svc.<cluster domain>`, `kubernetes.default.svc`, `kubernetes.default`,
    `kubernetes`, `localhost`, IP 127.0.0.1, plus `controlPlane.proxy.extraSANs`;
  * signed with `server-ca.key` by the FIRST certificate of `server-ca.crt`; NotBefore that CA's,
    NotAfter one year from now (`certhelper.DefaultCertDuration`);
  * served as leaf + that CA certificate;
  * kept while it verifies against the pool of ALL certificates in `server-ca.crt` (checked every ~2 s;
    the file only changes when the pod starts again, so in effect: one certificate per pod start).
Client certificates are requested, not required, at the handshake (SecureServing's RequestClientCert)
and then checked as the x509 authenticator of a fail-on-error union does: one that the pool of every
certificate in `client-ca.crt` verifies (usage clientAuth, at the current time) authenticates; one it
does not verify (another CA, expired) gets HTTP 401 Unauthorized, a Kubernetes Status; without one a
bearer token goes on to the API server, which checks it.

The HTTP side is `syncer-front` (tests/support/syncer_front, Go standard library only, built by
scripts/testbin): Python's ssl cannot ask for a certificate without verifying it at the handshake, so a
refused certificate would end the connection instead of getting the 401 vCluster answers. This module
makes the certificate, writes the key pairs into the generation's work directory (mode 0600) and runs
the binary for as long as the pod's start lasts.

Differences, on purpose:
  * a request with a verified client certificate reaches kube-apiserver as the admin of `admin.conf`
    (the syncer impersonates the certificate's user): the certificate's validity is what is checked,
    not its user's permissions;
  * the serving certificate is made once per start (vCluster re-checks it every ~2 s against
    server-ca.crt, which only changes when the pod starts again).
Test-support code: the key pairs live in the generation's work directory; nothing is printed or logged.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import secrets
import select
import subprocess
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.testbin import binary

SERVING_VALIDITY = timedelta(days=365)
START_TIMEOUT = 10.0


def serving_names(cluster_domain: str, extra_sans: Sequence[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of the syncer's certificate, in vCluster's order, duplicates dropped
    case-insensitively (lo.UniqBy on the lower-cased SANs)."""
    dns = [f"kubernetes.default.svc.{cluster_domain}", "kubernetes.default.svc", "kubernetes.default",
           "kubernetes", "localhost"]
    ips = ["127.0.0.1"]
    for san in extra_sans:
        try:
            address = str(ipaddress.ip_address(san))
        except ValueError:
            if san.lower() not in {d.lower() for d in dns}:
                dns.append(san)
            continue
        if address not in ips:
            ips.append(address)
    return dns, ips


def serving_certificate(server_ca_pem: bytes, server_ca_key_pem: bytes, *, now: datetime,
                        cluster_domain: str = "cluster.local",
                        extra_sans: Sequence[str] = ()) -> tuple[bytes, bytes]:
    """(certificate chain PEM: leaf + issuing CA, private key PEM) as the syncer makes them."""
    ca = x509.load_pem_x509_certificates(server_ca_pem)[0]
    ca_key = serialization.load_pem_private_key(server_ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = serving_names(cluster_domain, extra_sans)
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    names += [x509.DNSName(name) for name in dns]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(secrets.randbelow(2**63 - 1) + 1)
        .not_valid_before(ca.not_valid_before_utc)
        .not_valid_after(now + SERVING_VALIDITY)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    with contextlib.suppress(x509.ExtensionNotFound):  # Go copies the parent's key id
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return chain, key_pem


def _admin_pair(admin_conf: bytes) -> tuple[bytes, bytes]:
    user = (yaml.safe_load(admin_conf)["users"][0] or {})["user"]
    return (base64.b64decode(user["client-certificate-data"]), base64.b64decode(user["client-key-data"]))


def _write_private(path: Path, data: bytes) -> Path:
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)
    return path


class SyncerProxy:
    """The syncer's front for one pod start (`syncer-front`): TLS with the in-memory certificate, the
    client certificate checked against client-ca.crt, HTTP on to kube-apiserver on 127.0.0.1."""

    def __init__(self, pki: Path, workdir: Path, *, upstream_port: int, admin_conf: bytes, now: datetime,
                 cluster_domain: str = "cluster.local", extra_sans: Sequence[str] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        chain, key = serving_certificate((pki / "server-ca.crt").read_bytes(),
                                         (pki / "server-ca.key").read_bytes(), now=now,
                                         cluster_domain=cluster_domain, extra_sans=extra_sans)
        self.served_chain = chain
        admin_cert, admin_key = _admin_pair(admin_conf)
        self._args = [
            "-cert", str(_write_private(workdir / "syncer.crt", chain)),
            "-key", str(_write_private(workdir / "syncer.key", key)),
            "-client-ca", str(pki / "client-ca.crt"),
            "-upstream", f"127.0.0.1:{upstream_port}",
            "-admin-cert", str(_write_private(workdir / "admin.crt", admin_cert)),
            "-admin-key", str(_write_private(workdir / "admin.key", admin_key)),
        ]
        self._log = workdir / "syncer-front.log"
        self.upstream_port = upstream_port
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SyncerProxy:
        with self._log.open("wb") as log:
            # stdin is a pipe held open: the front exits when it closes (with this process at the latest)
            self._process = subprocess.Popen([str(binary("syncer-front")), *self._args],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        assert self._process.stdout is not None
        ready = select.select([self._process.stdout], [], [], START_TIMEOUT)[0]
        line = self._process.stdout.readline().decode() if ready else ""
        if not line.startswith("listening 127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the emulated syncer did not start listening: {line.strip()} "
                               f"{self._log.read_text(errors='replace')[-300:]}".strip())
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Every connection ends with it, as when the pod's container stops."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(timeout=START_TIMEOUT)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
