"""The emulator's syncer front (tests/support/syncer_proxy.py) follows vCluster's serving rules: its own
certificate from the first serving CA, client certificates checked against the whole client-ca pool and
a 401 for one it does not verify. Runs the REAL `syncer-front` binary (scripts/testbin) on loopback
sockets only; no cluster."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.pki_builder import Options, cached_pki
from tests.support.syncer_proxy import SyncerProxy, serving_certificate, serving_names

NOW = datetime(2026, 12, 1, tzinfo=UTC)
OURS = cached_pki(Options(key_type="ecdsa"))
OTHER = cached_pki(Options(name="other", key_type="ecdsa"))  # another CA altogether


def test_the_serving_certificate_is_issued_by_the_first_serving_ca_and_sent_with_it() -> None:
    bundle = OTHER["ca.crt"] + OURS["ca.crt"]  # new CA first, as a CA change would stage it
    chain, key = serving_certificate(bundle, OTHER["ca.key"], now=NOW,
                                     extra_sans=("vc.example.com", "10.0.0.9"))
    leaf, sent_ca = x509.load_pem_x509_certificates(chain)
    first = x509.load_pem_x509_certificates(bundle)[0]
    assert sent_ca == first
    leaf.verify_directly_issued_by(first)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and b"PRIVATE KEY" in key
    assert leaf.not_valid_before_utc == first.not_valid_before_utc
    assert (leaf.not_valid_after_utc - NOW).days == 365
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    assert "vc.example.com" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.0.0.9"}


def test_extra_sans_are_deduplicated_case_insensitively() -> None:
    dns, ips = serving_names("corp.local", ("LOCALHOST", "127.0.0.1", "api.example.com"))
    assert dns[0] == "kubernetes.default.svc.corp.local" and dns.count("localhost") == 1
    assert "LOCALHOST" not in dns and dns[-1] == "api.example.com" and ips == ["127.0.0.1"]


def _pem_pair(conf: bytes) -> tuple[bytes, bytes]:
    user = yaml.safe_load(conf)["users"][0]["user"]
    return base64.b64decode(user["client-certificate-data"]), base64.b64decode(user["client-key-data"])


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server standing in for kube-apiserver: answers whom the front sent the request as (its
    client certificate, else the Authorization header it passed on, else anonymous)."""
    (tmp_path / "up.crt").write_bytes(OURS["apiserver.crt"])
    (tmp_path / "up.key").write_bytes(OURS["apiserver.key"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "up.crt", tmp_path / "up.key")
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=OURS["ca.crt"].decode())

    class Whoami(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            who = b"admin" if peer else (self.headers.get("Authorization") or "anonymous").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(who)))
            self.end_headers()
            self.wfile.write(who)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Whoami)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _pki(tmp_path: Path, files: Mapping[str, bytes]) -> Path:
    pki = tmp_path / "pki"
    pki.mkdir()
    for name, data in files.items():
        (pki / name).write_bytes(data)
    return pki


def _ask(proxy: SyncerProxy, trust: bytes, tmp_path: Path, client: bytes | None,
         token: str | None = None) -> tuple[int, bytes]:
    """(HTTP status, body) of GET / through the front, as a client trusting `trust` with the client
    certificate of the kubeconfig `client` (or none) and a bearer `token` (or none)."""
    context = ssl.create_default_context(cadata=trust.decode())
    if client is not None:
        cert, key = _pem_pair(client)
        (tmp_path / "c.crt").write_bytes(cert)
        (tmp_path / "c.key").write_bytes(key)
        context.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=context, timeout=10)
    try:
        conn.request("GET", "/", headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.binaries  # syncer-front
def test_client_certificates_of_any_ca_in_the_client_pool_are_accepted_others_get_401(
    tmp_path: Path, upstream: int
) -> None:
    pki = _pki(tmp_path, {"server-ca.crt": OURS["ca.crt"], "server-ca.key": OURS["ca.key"],
                          "client-ca.crt": OURS["ca.crt"] + OTHER["ca.crt"]})
    proxy = SyncerProxy(pki, tmp_path / "syncer", upstream_port=upstream, admin_conf=OURS["admin.conf"],
                        now=NOW).start()
    try:
        assert _ask(proxy, OURS["ca.crt"], tmp_path, OURS["admin.conf"]) == (200, b"admin")
        assert _ask(proxy, OURS["ca.crt"], tmp_path, OTHER["admin.conf"]) == (200, b"admin")  # 2nd CA
        assert _ask(proxy, OURS["ca.crt"], tmp_path, None) == (200, b"anonymous")
        assert _ask(proxy, OURS["ca.crt"], tmp_path, None, token="t0ken") == (200, b"Bearer t0ken")
        (pki / "client-ca.crt").write_bytes(OURS["ca.crt"])
        fresh = SyncerProxy(pki, tmp_path / "syncer2", upstream_port=upstream,
                            admin_conf=OURS["admin.conf"], now=NOW).start()
        try:
            # a client certificate of a CA not in the pool: the handshake completes, the answer is the
            # API server's 401 Status, and nothing reaches kube-apiserver (a token does not help)
            status, body = _ask(fresh, OURS["ca.crt"], tmp_path, OTHER["admin.conf"], token="t0ken")
            assert status == 401
            assert json.loads(body) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Failure", "message": "Unauthorized",
                                        "reason": "Unauthorized", "code": 401}
        finally:
            fresh.stop()
        with pytest.raises(ssl.SSLCertVerificationError):  # a client trusting only another CA
            _ask(proxy, OTHER["ca.crt"], tmp_path, OURS["admin.conf"])
    finally:
        proxy.stop()


@pytest.mark.binaries  # syncer-front
def test_the_front_serves_the_certificate_it_was_made_with_and_stops_with_its_start(
    tmp_path: Path, upstream: int
) -> None:
    pki = _pki(tmp_path, {"server-ca.crt": OURS["ca.crt"], "server-ca.key": OURS["ca.key"],
                          "client-ca.crt": OURS["ca.crt"]})
    proxy = SyncerProxy(pki, tmp_path / "syncer", upstream_port=upstream, admin_conf=OURS["admin.conf"],
                        now=NOW).start()
    served = ssl.get_server_certificate(("127.0.0.1", proxy.port))
    assert x509.load_pem_x509_certificate(served.encode()) == x509.load_pem_x509_certificates(
        proxy.served_chain)[0]
    proxy.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
