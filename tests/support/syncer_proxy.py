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
Client certificates are verified against every certificate of `client-ca.crt` (a bundle is a pool);
bearer tokens go on to the API server, which checks them.

Differences, on purpose:
  * a client certificate that pool does not verify fails the TLS handshake; the syncer completes the
    handshake and answers 401 (Python's ssl cannot ask for a certificate without verifying it);
  * a request with a verified client certificate reaches kube-apiserver as the admin of `admin.conf`
    (the syncer impersonates the certificate's user): the certificate's validity is what is checked,
    not its user's permissions.
Test-support code: the key pairs live in the generation's work directory; nothing is printed or logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import secrets
import ssl
import threading
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
    """The syncer's TLS front for one pod start: terminates TLS with the in-memory certificate, checks
    client certificates against client-ca.crt and relays the bytes to kube-apiserver on 127.0.0.1."""

    def __init__(self, pki: Path, workdir: Path, *, upstream_port: int, admin_conf: bytes, now: datetime,
                 cluster_domain: str = "cluster.local", extra_sans: Sequence[str] = ()) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        chain, key = serving_certificate((pki / "server-ca.crt").read_bytes(),
                                         (pki / "server-ca.key").read_bytes(), now=now,
                                         cluster_domain=cluster_domain, extra_sans=extra_sans)
        self.served_chain = chain
        # ssl loads key pairs from files only
        self._server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.load_cert_chain(_write_private(workdir / "syncer.crt", chain),
                                     _write_private(workdir / "syncer.key", key))
        self._server.verify_mode = ssl.CERT_OPTIONAL
        self._server.load_verify_locations(cafile=str(pki / "client-ca.crt"))
        admin_cert, admin_key = _admin_pair(admin_conf)
        self._as_admin = self._upstream_context()
        self._as_admin.load_cert_chain(_write_private(workdir / "admin.crt", admin_cert),
                                       _write_private(workdir / "admin.key", admin_key))
        self._anonymous = self._upstream_context()
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda _loop, _context: None)  # failed handshakes are expected
        self._started = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._transports: weakref.WeakSet[asyncio.WriteTransport] = weakref.WeakSet()
        self._server_obj: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._run, name="emulator-syncer", daemon=True)

    @staticmethod
    def _upstream_context() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # kube-apiserver on the pod's loopback
        return context

    def start(self) -> SyncerProxy:
        self._thread.start()
        if not self._started.wait(START_TIMEOUT) or not self.port:
            raise RuntimeError("the emulated syncer did not start listening")
        return self

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._close)
        self._thread.join(timeout=START_TIMEOUT)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server_obj = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._server))
            self.port = int(self._server_obj.sockets[0].getsockname()[1])
        finally:
            self._started.set()
        self._loop.run_forever()
        # let every connection task see its transport aborted and finish before the loop closes
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        if self._server_obj is not None:
            self._loop.run_until_complete(self._server_obj.wait_closed())
        # A TLS transport closes over several loop turns, and a handshake that failed just now (a client
        # that refused our certificate) is closed by asyncio itself: let those callbacks run, and abort
        # whatever is still open, so that no transport is left to the garbage collector.
        for transport in list(self._transports):
            transport.abort()
        for _turn in range(20):
            self._loop.run_until_complete(asyncio.sleep(0.005))
        self._loop.close()

    def _close(self) -> None:
        if self._server_obj is not None:
            self._server_obj.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._loop.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer: Any = writer.get_extra_info("peercert")
        context = self._as_admin if peer else self._anonymous
        self._writers.add(writer)
        self._transports.add(writer.transport)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port, ssl=context)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        self._transports.add(up_writer.transport)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._writers.discard(writer)
            self._writers.discard(up_writer)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
