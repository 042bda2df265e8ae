"""Both HTTPS paths refuse what kubectl refuses: a real TLS server on loopback presents a certificate from
another CA, for another host name, or expired; the light read client (`check`), the kubernetes client
(`rotate --dry-run`) and the real kubectl all refuse it, and the plugin says the same thing with the same
exit code on both paths, without retrying."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubectl_vcerts.errors import ExitCode
from tests.integration.rotation_support import REPO, cli_env
from tests.support.testbin import binary

pytestmark = pytest.mark.binaries
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Issued:
    cert: bytes
    key: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    *,
    signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    sans: list[x509.GeneralName],
    not_after: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_cert, issuer_key = signer if signer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(not_after)
    )
    if signer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    return Issued(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@contextlib.contextmanager
def _tls_server(tmp_path: Path, served: Issued) -> Iterator[int]:
    (tmp_path / "server.crt").write_bytes(served.cert)
    (tmp_path / "server.key").write_bytes(served.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with contextlib.suppress(OSError), context.wrap_socket(client, server_side=True) as tls:
                tls.recv(1)  # the client refuses the handshake; nothing to serve

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def _kubeconfig(tmp_path: Path, port: int, ca: bytes) -> Path:
    import base64

    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "x",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "certificate-authority-data": base64.b64encode(ca).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}}],
            }
        )
    )
    return path


def _server_cert(case: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> Issued:
    loopback: list[x509.GeneralName] = [x509.IPAddress(ip_address("127.0.0.1"))]
    if case == "another CA":
        stranger = _issue("stranger-ca", signer=None, sans=[], not_after=NOW + timedelta(days=3650))
        return _pem(*_issue("apiserver", signer=stranger, sans=loopback, not_after=NOW + timedelta(days=30)))
    if case == "another host name":
        other: list[x509.GeneralName] = [
            x509.DNSName("other.example"),
            x509.IPAddress(ip_address("127.0.0.2")),
        ]
        return _pem(*_issue("apiserver", signer=ca, sans=other, not_after=NOW + timedelta(days=30)))
    return _pem(*_issue("apiserver", signer=ca, sans=loopback, not_after=NOW - timedelta(days=1)))


@pytest.mark.parametrize(
    ("case", "why", "kubectl_says"),
    [
        pytest.param(
            "another CA",
            "certificate signed by unknown authority",
            "unknown authority",
            id="a server certificate from another CA is refused",
        ),
        pytest.param(
            "another host name",
            "certificate is not valid for the server's host name",
            "is valid for 127.0.0.2, not 127.0.0.1",
            id="a server certificate for another host name is refused",
        ),
        pytest.param(
            "expired", "certificate has expired", "expired", id="an expired server certificate is refused"
        ),
    ],
)
def test_both_clients_refuse_an_untrusted_server_like_kubectl(
    tmp_path: Path, case: str, why: str, kubectl_says: str
) -> None:
    ca = _issue("trusted-ca", signer=None, sans=[], not_after=NOW + timedelta(days=3650))
    with _tls_server(tmp_path, _server_cert(case, ca)) as port:
        config = _kubeconfig(tmp_path, port, _pem(*ca).cert)
        env = cli_env({"KUBECONFIG": str(config)})
        kubectl = subprocess.run(
            [str(binary("kubectl")), "get", "--raw", "/api", "--request-timeout", "10s"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "KUBECONFIG": str(config)},
        )
        results = [
            subprocess.run(
                [sys.executable, "-m", "kubectl_vcerts", *args],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                cwd=REPO,
                check=False,
            )
            for args in (("check", "vc"), ("rotate", "vc", "--dry-run"))
        ]

    assert kubectl.returncode != 0 and kubectl_says in kubectl.stderr, kubectl.stderr
    light, full = results
    assert light.returncode == full.returncode == ExitCode.UNTRUSTED, (light.stderr, full.stderr)
    first_line = [r.stderr.splitlines()[0] for r in results]
    assert first_line[0] == first_line[1], first_line
    assert first_line[0] == (
        f"kubectl vcerts: error: cannot list statefulsets.apps in namespace team-a: "
        f"the API server's certificate is not trusted ({why})"
    )
