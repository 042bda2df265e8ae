"""The emulator's syncer front (tests/support/syncer_proxy.py) follows vCluster's serving rules: its own
certificate from the first serving CA, client certificates checked against the whole client-ca pool.
Loopback sockets only; no cluster."""

from __future__ import annotations

import base64
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
    """A TLS server standing in for kube-apiserver: answers whom the relay authenticated as."""
    (tmp_path / "up.crt").write_bytes(OURS["apiserver.crt"])
    (tmp_path / "up.key").write_bytes(OURS["apiserver.key"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "up.crt", tmp_path / "up.key")
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=OURS["ca.crt"].decode())
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    conn.recv(16)
                    conn.sendall(b"admin" if conn.getpeercert() else b"anonymous")
            except (OSError, ssl.SSLError):
                continue

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def _pki(tmp_path: Path, files: Mapping[str, bytes]) -> Path:
    pki = tmp_path / "pki"
    pki.mkdir()
    for name, data in files.items():
        (pki / name).write_bytes(data)
    return pki


def _ask(proxy: SyncerProxy, trust: bytes, tmp_path: Path, client: bytes | None) -> bytes:
    """What the upstream answered through the proxy; b"" when the proxy closed the connection (under
    TLS 1.3 a refused client certificate ends the connection after the client's handshake)."""
    context = ssl.create_default_context(cadata=trust.decode())
    if client is not None:
        cert, key = _pem_pair(client)
        (tmp_path / "c.crt").write_bytes(cert)
        (tmp_path / "c.key").write_bytes(key)
        context.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"GET")
        return conn.recv(16)


def test_client_certificates_of_any_ca_in_the_client_pool_are_accepted_others_refused(
    tmp_path: Path, upstream: int
) -> None:
    pki = _pki(tmp_path, {"server-ca.crt": OURS["ca.crt"], "server-ca.key": OURS["ca.key"],
                          "client-ca.crt": OURS["ca.crt"] + OTHER["ca.crt"]})
    proxy = SyncerProxy(pki, tmp_path / "syncer", upstream_port=upstream, admin_conf=OURS["admin.conf"],
                        now=NOW).start()
    try:
        assert _ask(proxy, OURS["ca.crt"], tmp_path, OURS["admin.conf"]) == b"admin"
        assert _ask(proxy, OURS["ca.crt"], tmp_path, OTHER["admin.conf"]) == b"admin"  # the bundle's 2nd CA
        assert _ask(proxy, OURS["ca.crt"], tmp_path, None) == b"anonymous"  # a token would go on as is
        (pki / "client-ca.crt").write_bytes(OURS["ca.crt"])
        fresh = SyncerProxy(pki, tmp_path / "syncer2", upstream_port=upstream,
                            admin_conf=OURS["admin.conf"], now=NOW).start()
        try:
            try:
                answer = _ask(fresh, OURS["ca.crt"], tmp_path, OTHER["admin.conf"])
            except (ssl.SSLError, ConnectionError):
                answer = b"refused"
            assert answer in (b"", b"refused"), "a client certificate of a CA not in the pool passed"
        finally:
            fresh.stop()
        with pytest.raises(ssl.SSLCertVerificationError):  # a client trusting only another CA
            _ask(proxy, OTHER["ca.crt"], tmp_path, OURS["admin.conf"])
    finally:
        proxy.stop()
